"""Where output goes, set once at the entry point: progress lines to stdout, library logs to a file.

Quiet by default: Prefect, Lightning, MLflow, Optuna, DVC and Python warnings go to
``<state folder>/logs/medpipe.log``; the terminal shows medpipe's progress lines and the final summary.
``-v`` adds every library log (and tracebacks) on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from medpipe.progress import LOGGER as PROGRESS

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _NotProgress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(PROGRESS)


def configure(home: Path, verbose: bool) -> Path:
    """Route logs for this process; returns the log file. Must run before Prefect/MLflow/Lightning import."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # mlflow logs propagate to the root handlers
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    log_file = home / "logs" / "medpipe.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root, progress = logging.getLogger(), logging.getLogger(PROGRESS)
    for logger in (root, progress):  # idempotent: one set of our handlers per process
        for handler in [h for h in logger.handlers if getattr(h, "_medpipe", False)]:
            logger.removeHandler(handler)
    root.setLevel(logging.INFO)
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter(FORMAT))
    _add(root, to_file)  # a user handler on root: Prefect's logging setup then leaves root alone
    if verbose:
        to_terminal = logging.StreamHandler(sys.stderr)
        to_terminal.setFormatter(logging.Formatter(FORMAT))
        to_terminal.addFilter(_NotProgress())
        _add(root, to_terminal)
    logging.captureWarnings(True)  # numpy/torch/pydantic warnings: into the log, not the terminal
    progress.setLevel(logging.INFO)
    line = logging.StreamHandler(sys.stdout)  # flushed per line: visible when stdout is a pipe too
    line.setFormatter(logging.Formatter("%(message)s"))
    _add(progress, line)
    return log_file


def _add(logger: logging.Logger, handler: logging.Handler) -> None:
    handler._medpipe = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


def route_training_libraries() -> None:
    """Optuna and Lightning print through handlers of their own, added when they are imported: hand their
    records to ours instead (for the commands that train; both are imported by training anyway)."""
    import lightning
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    for handler in list(logging.getLogger(lightning.__name__).handlers):  # lightning's own "INFO: ..." console
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            logging.getLogger(lightning.__name__).removeHandler(handler)
