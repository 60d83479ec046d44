"""A rerun works offline: a MedMNIST name resolves to the project's DVC-versioned data/raw copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.sources import resolve_source, source_from_path, stage_raw
from medpipe.errors import DataError
from medpipe.settings import Settings


def test_a_medmnist_name_resolves_to_the_versioned_raw_copy_offline(
    tmp_path: Path, monkeypatch, breastmnist_npz
) -> None:
    monkeypatch.setenv("MEDPIPE_OFFLINE", "1")
    settings = Settings(home=tmp_path / "state", project_dir=tmp_path / "project", data_dir=None)
    with pytest.raises(DataError, match="MEDPIPE_DATA_DIR"):  # nothing ingested yet: says where to put the file
        resolve_source("breastmnist", settings)

    stage_raw(source_from_path(breastmnist_npz, origin="breastmnist"), tmp_path / "project" / "data" / "raw")
    source = resolve_source("breastmnist", settings)  # no MEDPIPE_DATA_DIR, no network: the versioned copy
    assert source.kind == "npz" and source.path.is_relative_to(tmp_path / "project" / "data" / "raw")
    assert source.origin == "breastmnist"
    with pytest.raises(DataError):  # another dataset is not silently replaced by what data/raw holds
        resolve_source("pneumoniamnist", settings)
