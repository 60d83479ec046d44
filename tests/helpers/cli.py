"""The real ``medpipe`` console entry in a fresh interpreter, and which libraries it imported on the way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# What a refusal must not pay for: each costs seconds of CPU to import here (torch, ONNX Runtime and MLflow most).
HEAVY = frozenset({"torch", "lightning", "onnxruntime", "mlflow", "prefect", "evidently", "dvc", "optuna",
                   "sklearn", "pandas", "fastapi", "uvicorn"})  # fmt: skip


def run_medpipe(
    args: Sequence[str], *, env: dict[str, str], cwd: Path, timeout_s: float = 120
) -> tuple[subprocess.CompletedProcess[str], frozenset[str]]:
    """``python -X importtime -m medpipe ARGS``: the finished process (its stderr without the import-time lines)
    and the top-level packages it imported."""
    cmd = [sys.executable, "-X", "importtime", "-m", "medpipe", *args]
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    imported, rest = set(), []
    for line in out.stderr.splitlines():
        if line.startswith("import time:"):  # "import time: self [us] | cumulative | <indent>package.module"
            imported.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
        else:
            rest.append(line)
    return subprocess.CompletedProcess(cmd, out.returncode, out.stdout, "\n".join(rest)), frozenset(imported)
