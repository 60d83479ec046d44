"""Helpers for the data tests: generated images and a temp git + DVC project."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
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


@contextmanager
def project_of_its_own(base: Path, **env: str) -> Iterator[Path]:
    """Work in a project of its own under ``base`` (cwd, state folder ``base/state``, plus ``env``), with the
    settings read again on entry and exit, so its runs never touch another test's data; yields ``base``."""
    from medpipe.settings import get_settings

    root = make_project(base)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MEDPIPE_HOME", str(base / "state"))
        mp.setenv("MEDPIPE_PROJECT_DIR", str(root))
        for name, value in env.items():
            mp.setenv(name, value)
        get_settings.cache_clear()
        yield base
    get_settings.cache_clear()
