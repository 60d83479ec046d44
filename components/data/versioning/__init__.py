"""Data versioning with DVC: ingest a source into ``data/raw``, reproduce ``prepare``, push, pull, status.

The project directory (``settings.project_dir``) is a git + DVC repo. Raw data is tracked with
``dvc add data/raw``; the prepared data is the ``prepare`` stage's output in ``dvc.yaml``, so its md5
in ``dvc.lock`` is the **data version** every later stage tags its runs and models with.

DVC is driven through its Python API (``dvc.repo.Repo``, in-process) with every call serialised by a
file lock (``filelock``): two DVC commands in one repo fail on DVC's own repo lock. The cache and the default remote
are set in ``.dvc/config.local`` (never committed) from :class:`~medpipe.settings.Settings`.

Modules: :mod:`.repo` (lock, DVC API, init/config), :mod:`.versions` (md5s), :mod:`.ingest` (ingest, push,
pull, checkout, repro), :mod:`.status`.
"""

from components.data.versioning.ingest import (
    IngestResult,
    checkout,
    ingest_and_version,
    pull,
    push,
    repro,
    summary_markdown,
    validation_report,
)
from components.data.versioning.repo import (
    DATA_TARGETS,
    PREPARED,
    RAW,
    RAW_DVC,
    REMOTE_NAME,
    STAGE,
    DvcError,
    configure,
    dvc_lock,
    ensure_project,
    open_repo,
    run_dvc,
)
from components.data.versioning.status import DataStatus, data_status
from components.data.versioning.versions import data_version, dir_md5, params_differences, raw_version

__all__ = [
    "DATA_TARGETS",
    "PREPARED",
    "RAW",
    "RAW_DVC",
    "REMOTE_NAME",
    "STAGE",
    "DataStatus",
    "DvcError",
    "IngestResult",
    "checkout",
    "configure",
    "data_status",
    "data_version",
    "dir_md5",
    "dvc_lock",
    "ensure_project",
    "ingest_and_version",
    "open_repo",
    "params_differences",
    "pull",
    "push",
    "raw_version",
    "repro",
    "run_dvc",
    "summary_markdown",
    "validation_report",
]
