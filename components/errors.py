"""Re-export of :mod:`medpipe.errors` (the errors live in the core so that every layer can raise them)."""

from medpipe.errors import DataError, GateError, MedpipeError, RegistryError

__all__ = ["DataError", "GateError", "MedpipeError", "RegistryError"]
