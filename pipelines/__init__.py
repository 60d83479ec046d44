"""Prefect flows (thin: they call components). Importing this package points Prefect at the state folder."""

from medpipe.settings import prepare_environment

prepare_environment()
