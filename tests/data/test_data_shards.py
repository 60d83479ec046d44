"""Sharded prepared data: content-addressed shards, incremental prepare, named errors for bad shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.data import shards
from components.data.dataset import load_split
from components.data.prepare import VALIDATION_REPORT, prepare
from medpipe.config import DataConfig
from medpipe.errors import DataError
from tests.helpers.project import png_bytes


def cfg(**kw) -> DataConfig:
    return DataConfig(**{"min_images_per_class": 3, "image_size": 16, **kw})


def _shard_files(folder: Path) -> set[str]:
    return {p.name for p in (folder / shards.SHARDS_DIR).glob("*.tar")}


def _add_images(root: Path, cls: str, n: int, start: int) -> None:
    for i in range(n):
        (root / cls / f"new_{i:03d}.png").write_bytes(png_bytes(900_000 + start + i, (20, 20)))


def test_adding_images_decodes_and_stores_only_the_new_ones(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 40, "malignant": 40})
    out = tmp_path / "prepared"
    first = prepare(root, out, cfg(), workers=2)
    report = json.loads((out / VALIDATION_REPORT).read_text())
    assert (report["decoded"], report["reused"]) == (80, 0)
    old_shards = _shard_files(out)
    old_bytes = sum((out / "shards" / n).stat().st_size for n in old_shards)
    assert len(load_split(first.path, "train")) == sum(first.counts["train"].values())

    _add_images(root, "benign", 3, 0)
    _add_images(root, "malignant", 2, 10)
    second = prepare(root, out, cfg(), workers=2)
    report = json.loads((out / VALIDATION_REPORT).read_text())
    assert (report["decoded"], report["reused"]) == (5, 80)  # only the new files were decoded
    assert old_shards < _shard_files(out)  # the old shards were carried over byte for byte
    new_bytes = sum((out / "shards" / n).stat().st_size for n in _shard_files(out) - old_shards)
    assert new_bytes < 0.25 * old_bytes  # 5 of 85 images (plus tar padding), not a full copy
    assert sum(sum(c.values()) for c in second.counts.values()) == 85

    # the incremental result holds the same pixels as preparing from scratch
    scratch = prepare(root, tmp_path / "scratch", cfg(), workers=1)
    for split in ("train", "val", "test"):
        a, b = load_split(second.path, split), load_split(scratch.path, split)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_a_changed_size_decodes_everything_again(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 6, "malignant": 6})
    out = tmp_path / "prepared"
    prepare(root, out, cfg())
    prepare(root, out, cfg(image_size=24))
    report = json.loads((out / VALIDATION_REPORT).read_text())
    assert (report["decoded"], report["reused"]) == (12, 0)
    assert load_split(out, "train").images.shape[1:] == (24, 24, 1)


def test_shard_names_are_their_sha256_and_prepare_is_deterministic(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 8, "malignant": 8})
    a = prepare(root, tmp_path / "a", cfg(), workers=2)
    b = prepare(root, tmp_path / "b", cfg(), workers=1)
    assert _shard_files(a.path) == _shard_files(b.path)
    assert (a.path / shards.INDEX).read_bytes() == (b.path / shards.INDEX).read_bytes()
    shards.verify(a.path)  # every name matches its content


def test_missing_or_corrupt_shard_is_named_and_the_good_version_stays(make_folder, tmp_path: Path) -> None:
    root = make_folder({"benign": 6, "malignant": 6})
    good = prepare(root, tmp_path / "prepared", cfg()).path
    backup = tmp_path / "backup"
    shutil.copytree(good, backup)
    (shard,) = (good / "shards").glob("*.tar")

    data = bytearray(shard.read_bytes())
    data[600:700] = b"\xff" * 100
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"shard {shard} is corrupt"):
        shards.verify(good)

    shard.write_bytes(shard.read_bytes()[:300])  # truncated mid-member: the reader names the shard too
    with pytest.raises(DataError, match=rf"shard {shard}"):
        load_split(good, "train")

    shard.unlink()
    with pytest.raises(DataError, match=rf"shard {shard} is missing"):
        load_split(good, "train")

    # a later prepare never reuses a damaged shard: it decodes those images again
    shutil.copytree(backup / "shards", good / "shards", dirs_exist_ok=True)
    (shard,) = (good / "shards").glob("*.tar")
    shard.write_bytes(b"garbage")
    prepare(root, good, cfg())
    report = json.loads((good / VALIDATION_REPORT).read_text())
    assert (report["decoded"], report["reused"]) == (12, 0)
    assert _shard_files(good) == _shard_files(backup)
