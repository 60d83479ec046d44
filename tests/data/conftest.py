"""Fixtures for the data tests: generated image folders / CSVs and a real temp git + DVC project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.project import make_project, png_bytes


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """``make_folder({"benign": 8, "malignant": 8}, name="imgs", size=(20, 20))`` -> an ImageFolder root."""

    def make(classes: dict[str, int], name: str = "imgs", size: tuple[int, int] = (20, 20), seed: int = 0) -> Path:
        root = tmp_path / name
        for c, (cls, n) in enumerate(sorted(classes.items())):
            folder = root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / f"img_{i:03d}.png").write_bytes(png_bytes(seed * 100_000 + c * 1000 + i, size))
        return root

    return make


@pytest.fixture
def make_csv(tmp_path: Path) -> Callable[..., Path]:
    """A CSV manifest ``path,label,group`` over generated images: ``patients`` groups, ``per_patient`` images each."""

    def make(patients: int = 12, per_patient: int = 3, name: str = "cohort", with_group: bool = True) -> Path:
        base = tmp_path / name
        (base / "scans").mkdir(parents=True)
        lines = ["path,label,group" if with_group else "path,label"]
        for p in range(patients):
            label = "malignant" if p % 2 else "benign"
            for k in range(per_patient):
                rel = f"scans/p{p:02d}_{k}.png"
                (base / rel).write_bytes(png_bytes(50_000 + p * 10 + k))
                lines.append(f"{rel},{label},patient-{p:02d}" if with_group else f"{rel},{label}")
        csv_path = base / "labels.csv"
        csv_path.write_text("\n".join(lines) + "\n")
        return csv_path

    return make


@pytest.fixture
def dvc_project(tmp_path: Path, medpipe_home: Path, breastmnist_npz: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for a temp git project (cwd), real data in MEDPIPE_DATA_DIR, no downloads."""
    from medpipe.settings import get_settings

    project = make_project(tmp_path)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MEDPIPE_PROJECT_DIR", str(project))
    monkeypatch.setenv("MEDPIPE_DATA_DIR", str(breastmnist_npz.parent))
    monkeypatch.setenv("MEDPIPE_OFFLINE", "1")
    monkeypatch.delenv("MEDPIPE_DVC_REMOTE", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
