"""The streamed path: shards through DataLoader workers, DDP shares per rank, the size threshold."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from components.data import shards
from components.data.dataset import load_prepared, load_split
from components.data.prepare import prepare
from components.training.data import LoaderSettings
from components.training.streaming import ShardStream, StreamedSplit, StreamingDataModule, load_splits
from medpipe.config import DataConfig
from medpipe.errors import DataError


def _png(seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-class ImageFolder of 120 images prepared into many small shards (~12 images each)."""
    root = tmp_path_factory.mktemp("folder")
    for c, cls in enumerate(("benign", "malignant")):
        (root / cls).mkdir()
        for i in range(60):
            (root / cls / f"{i:03d}.png").write_bytes(_png(c * 1000 + i))
    out = tmp_path_factory.mktemp("prep") / "prepared"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(shards, "SHARD_BYTES", 12 * 1600)
        prepare(root, out, DataConfig(image_size=16, min_images_per_class=3), workers=1)
    assert len(shards.read_index(out).shards) >= 8
    return out


def _digests(images) -> Counter:
    return Counter(hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() for x in images)


def _stream(prepared: Path, split: str, train: bool, size: int = 16) -> ShardStream:
    return ShardStream(StreamedSplit(prepared, shards.read_index(prepared), split), size, train=train, seed=7)


def test_eval_stream_yields_the_split_once_and_matches_memory(sharded: Path) -> None:
    memory = load_split(sharded, "train")
    samples = list(_stream(sharded, "train", train=False))
    assert len(samples) == len(memory)
    streamed = [x.permute(1, 2, 0).numpy() for x, _ in samples]
    assert _digests(streamed) == _digests(memory.images)
    assert Counter(int(y) for _, y in samples) == Counter(memory.labels.tolist())


def test_training_epochs_shuffle_differently_through_two_workers(sharded: Path) -> None:
    split = StreamedSplit(sharded, shards.read_index(sharded), "train")
    loader = LoaderSettings(batch_size=8, train_size=16, seed=7)
    dm = StreamingDataModule({"train": split}, loader, num_workers=2, mean=[0.5], std=[0.25], augment=None)
    epochs, batches = [], dm.train_dataloader()  # Lightning builds it once and iterates it every epoch
    for _ in range(2):
        xs = [x for x, _ in batches]
        epochs.append(torch.cat(xs))
    n = len(split) // 8 * 8  # drop_last per worker can drop at most a partial batch per worker
    assert all(n - 16 <= len(e) <= len(split) for e in epochs)
    assert epochs[0].dtype == torch.uint8
    first = [hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in epochs[0][:20]]
    second = [hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in epochs[1][:20]]
    assert first != second  # a new order every epoch


def test_workers_resize_to_the_training_size(sharded: Path) -> None:
    x, _ = next(iter(_stream(sharded, "val", train=False, size=32)))
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0


def test_size_threshold_picks_the_path_and_checks_shards(sharded: Path) -> None:
    prepared = load_prepared(sharded)
    assert isinstance(load_splits(prepared, stream_above_mb=1e6)["train"].images, np.ndarray)
    assert isinstance(load_splits(prepared, stream_above_mb=0.0)["train"], StreamedSplit)


def test_a_missing_shard_fails_before_training_naming_it(sharded: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "prepared"
    shutil.copytree(sharded, copy)
    victim = sorted((copy / "shards").glob("*.tar"))[3]
    victim.unlink()
    with pytest.raises(DataError, match=rf"shard {victim} is missing"):
        load_splits(load_prepared(copy), stream_above_mb=0.0)


@pytest.mark.slow  # two DDP processes, each importing torch
def test_ddp_ranks_read_disjoint_shares_that_cover_the_split(sharded: Path, tmp_path: Path) -> None:
    from tests.helpers.ddp import read_share
    from tests.helpers.engines import free_port

    out = tmp_path / "seen.pt"
    mp.spawn(read_share, args=(2, free_port(), str(sharded), str(out)), nprocs=2, join=True)
    result = torch.load(out)
    everything = _digests(load_split(sharded, "train").images)
    for train, (a, b) in result.items():
        assert not set(a) & set(b), "ranks overlap"
        union = Counter(a) + Counter(b)
        if train:  # every rank the same length (lockstep); at most world-1 images left out of an epoch
            assert len(a) == len(b) and sum(everything.values()) - len(a) - len(b) <= 1
            assert not union - everything
        else:
            assert union == everything


def test_train_model_runs_end_to_end_through_the_streamed_path(sharded: Path, settings, monkeypatch) -> None:
    """The smoke profile with the threshold at 0 MB: final training, validation metrics and the model folder all
    come from shards read by a DataLoader worker (the in-memory loader is never built)."""
    from components.models.artifacts import load_model_dir
    from components.training import data as data_mod
    from components.training.train import train_model
    from tests.helpers.configs import smoke_training

    def no_memory(*a, **k):
        raise AssertionError("the in-memory path was used")

    monkeypatch.setattr(data_mod.InMemoryDataModule, "setup", no_memory)
    cfg = smoke_training("search.enabled=false", "train.epochs=2", "train.stream_above_mb=0", "train.num_workers=1")
    result = train_model(cfg, load_prepared(sharded), settings, out_dir=settings.home / "model")
    assert {"auc", "accuracy"} <= set(result.val_metrics)  # validation streamed too (test is the served graph's job)
    _, pre = load_model_dir(result.model_dir)
    memory = load_split(sharded, "train").images.astype(np.float64) / 255
    assert pre.mean == pytest.approx([memory.mean()], abs=1e-6) and pre.std == pytest.approx([memory.std()], abs=1e-6)
