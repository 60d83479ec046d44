"""Moved to :mod:`medpipe.errors` (the core layer); kept as an alias while open branches still import it."""

from medpipe.errors import DataError, GateError, MedpipeError, RegistryError, TransientError, is_transient

__all__ = ["DataError", "GateError", "MedpipeError", "RegistryError", "TransientError", "is_transient"]
