"""`medpipe data ingest` end to end on a growing folder: only new images are decoded, a new data version
stores about the new images, and the old version can still be checked out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from components.data.dataset import SPLITS, load_split
from components.data.prepare import prepare
from components.data.versioning import checkout, data_version, dir_md5, ingest_and_version
from medpipe.config import load_config
from tests.helpers.project import git, png_bytes

N_PER_CLASS = 60
SIZE = (48, 48)


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _cfg(project: Path, folder: Path):
    params = project / "params.yaml"
    doc = yaml.safe_load(params.read_text())
    doc["data"].update(source=str(folder), image_size=32, min_images_per_class=3)
    params.write_text(yaml.safe_dump(doc, sort_keys=False))  # in params.yaml: recorded in dvc.lock
    return load_config(params).data


def test_reingest_decodes_only_added_images_and_versions_them_incrementally(dvc_project, make_folder) -> None:
    settings = dvc_project
    project = settings.project_dir
    folder = make_folder({"benign": N_PER_CLASS, "malignant": N_PER_CLASS}, size=SIZE)
    cfg = _cfg(project, folder)

    first = ingest_and_version(cfg, settings)
    assert first.recorded and first.decoded == 2 * N_PER_CLASS  # validation decodes; dvc repro reuses its shards
    old_version = data_version(project)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "version 1")
    cache_before = _du(settings.dvc_cache_dir)

    added = 0
    for cls, n in (("benign", 3), ("malignant", 2)):
        for i in range(n):
            (folder / cls / f"added_{i}.png").write_bytes(png_bytes(777_000 + added, SIZE))
            added += 1
    second = ingest_and_version(cfg, settings)
    assert second.decoded == added == 5  # the 2 x 60 images prepared before were reused, not decoded again
    assert second.data_version == data_version(project) != old_version
    assert sum(sum(c.values()) for c in second.counts.values()) == 2 * N_PER_CLASS + added

    # the cache grew by about the new images (raw + their shard + the small index files), not a second copy
    growth = _du(settings.dvc_cache_dir) - cache_before
    one_image = _du(folder) / (2 * N_PER_CLASS + added)
    assert added * one_image < growth < 0.2 * cache_before, (growth, cache_before)

    # the incremental version holds the same pixels and labels as a from-scratch prepare of the same files
    scratch = prepare(project / "data" / "raw", settings.home / "scratch", cfg, workers=1)
    for split in SPLITS:
        a, b = load_split(project / "data" / "prepared", split), load_split(scratch.path, split)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)

    # the old version still checks out
    git(project, "checkout", "-q", "HEAD", "--", "data/raw.dvc", "dvc.lock")
    checkout(settings)
    assert dir_md5(project / "data" / "prepared") == old_version
    assert sum(1 for _ in (project / "data" / "raw").rglob("*.png")) == 2 * N_PER_CLASS
