"""Helpers for the data tests: generated images and a temp git + DVC project."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]


def png_bytes(seed: int, size: tuple[int, int] = (20, 20), mode: str = "L") -> bytes:
    """A unique random image (no accidental duplicates between files)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def corrupt_png(seed: int) -> bytes:
    data = bytearray(png_bytes(seed))
    for i in range(len(data) // 3, len(data) // 3 + 40):
        data[i] ^= 0xFF
    return bytes(data)


def truncated_png(seed: int) -> bytes:
    data = png_bytes(seed)
    return data[: len(data) // 2]


def git(project: Path, *args: str) -> str:
    """git in the test's own temporary repository."""
    cmd = ["git", "-C", str(project), "-c", "user.name=medpipe-test", "-c", "user.email=test@localhost", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def make_project(root: Path) -> Path:
    """A fresh git repo holding the project's params/profiles/services.yaml, dvc.yaml and the prepare stage's code
    (+ the core)."""
    project = root / "project"
    project.mkdir(parents=True)
    git(project, "init", "-q")
    for name in ("params.yaml", "profiles.yaml", "services.yaml", "dvc.yaml"):
        shutil.copy(REPO_ROOT / name, project / name)
    (project / "components").mkdir()
    shutil.copy(REPO_ROOT / "components" / "__init__.py", project / "components" / "__init__.py")
    shutil.copytree(
        REPO_ROOT / "components" / "data", project / "components" / "data", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO_ROOT / "medpipe", project / "medpipe", ignore=shutil.ignore_patterns("__pycache__"))
    return project
