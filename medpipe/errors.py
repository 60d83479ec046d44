"""Errors a user can act on. The CLI prints their message (no traceback) and exits non-zero."""


class MedpipeError(Exception):
    """Base for expected, user-facing failures: the message names the input and what to do."""


class DataError(MedpipeError):
    """Bad input data (unreadable file, too few classes, ...). The message names the file."""


class RegistryError(MedpipeError):
    """The model registry cannot answer (unreachable server, missing alias, ...)."""


class GateError(MedpipeError):
    """A promotion/export gate refused a model."""
