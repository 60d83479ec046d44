"""What the terminal shows by default: one line per stage, per trial and per epoch of the final training.

Stages and components call :func:`progress`; the CLI routes this one logger to stdout (TTY or not) and
every other library log to the log file under the state folder (``-v`` brings those back).
"""

from __future__ import annotations

import logging

LOGGER = "medpipe.progress"


def progress(message: str, *args: object) -> None:
    logging.getLogger(LOGGER).info(message, *args)
