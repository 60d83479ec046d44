"""Prefect flows: thin wiring of component functions into module-level tasks. Importing it does nothing."""
