"""Stages that touch every image read a split in fixed-size batches (components.data.batches): from shards
they give the same numbers as from the in-memory ``.npz`` split, with one batch of pixels in memory.

The sharded copy of BreastMNIST stores its images in another order than its index (several shards,
shuffled), so a stage that forgot to put its per-image results back in index order fails here."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from components.data import shards
from components.data.batches import split_batches
from components.data.dataset import MANIFEST, SPLITS, load_split
from medpipe.config import PipelineConfig


def write_shards(data: dict[str, tuple[np.ndarray, np.ndarray]], out: Path, max_bytes: int = 64 * 1024) -> Path:
    """``split -> (uint8 (N, S, S, C) images, labels)`` as shards of ``max_bytes`` in ``out``, the images
    stored in a shuffled order (the index keeps each split's order)."""
    out.mkdir(parents=True, exist_ok=True)
    splits, items, pixels = {}, {}, {}
    for split, (images, labels) in data.items():
        keys = [shards.image_key(f"{split}/{i}".encode() + img.tobytes()) for i, img in enumerate(images)]
        splits[split] = {"keys": keys, "labels": [int(x) for x in labels]}
        for key, img in zip(keys, images, strict=True):
            pixels[key] = img
            items[key] = {"size": [img.shape[1], img.shape[0]], **shards.item_stats(img)}
    writer = shards.ShardWriter(out, max_bytes=max_bytes)
    for key in np.random.default_rng(1).permutation(sorted(pixels)):
        writer.write(str(key), pixels[str(key)])
    _, size, _, channels = next(iter(data.values()))[0].shape
    conform = {"image_size": int(size), "channels": int(channels), "policy": {}}
    shards.write_index(out, shards.ShardIndex(conform=conform, shards=writer.close(), items=items, splits=splits))
    return out


def write_sharded_copy(prepared: Path, out: Path) -> Path:
    """``prepared`` (npz splits) as shuffled shards, with its manifest."""
    write_shards({s: (load_split(prepared, s).images, load_split(prepared, s).labels) for s in SPLITS}, out)
    shutil.copy(prepared / MANIFEST, out / MANIFEST)
    return out


@pytest.fixture(scope="module")
def sharded(prepared_breastmnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sharded_copy(prepared_breastmnist, tmp_path_factory.mktemp("sharded") / "prepared")


def test_batches_hold_the_split_in_index_order_with_bounded_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (150, 96, 96, 3), dtype=np.uint8)  # 4 MB of pixels, a few kB of index
    labels = rng.integers(0, 2, 150)
    folder = write_shards({"train": (images, labels)}, tmp_path / "prepared", max_bytes=512 * 1024)
    assert len(shards.read_index(folder).shards) > 3
    batches = split_batches(folder, "train", batch_size=16)
    assert np.array_equal(batches.labels, labels)
    sizes = []
    for b in batches:
        sizes.append(len(b.images))
        assert np.array_equal(b.images, images[b.positions]) and np.array_equal(b.labels, labels[b.positions])
    assert max(sizes) == 16 and sum(sizes) == 150 and len(batches) == 150
    tracemalloc.start()
    try:
        n = sum(len(b.images) for b in batches)  # a second pass (a SplitBatches can be read again), traced
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    batch_bytes = 16 * images[0].nbytes
    # the fill buffer, the batch handed out and the one before it (+ one shard member): not the split
    assert n == 150 and peak < 4 * batch_bytes < images.nbytes / 2, f"peak {peak} B for {batch_bytes} B batches"
    first = split_batches(folder, "train", batch_size=16, limit=40)
    assert np.array_equal(first.scatter((b.positions, b.images) for b in first), images[:40])


@pytest.mark.slow  # trains and exports the session's model
def test_gate_evaluation_operating_point_and_parity_equal_the_in_memory_path(
    sharded: Path, prepared_breastmnist: Path, served_cnn_dir: Path, trained_cnn_dir: Path
) -> None:
    from components.deploy.parity import check_parity
    from components.evaluation.evaluate import evaluate_served
    from components.evaluation.served import choose_for_graph

    cfg = PipelineConfig()
    onnx = served_cnn_dir / "model.onnx"
    streamed = evaluate_served(onnx, sharded, registry=cfg.registry, export=cfg.export)
    in_memory = evaluate_served(onnx, prepared_breastmnist, registry=cfg.registry, export=cfg.export)
    np.testing.assert_allclose(streamed.probs, in_memory.probs, atol=1e-6)
    assert np.array_equal(streamed.labels, in_memory.labels)
    assert streamed.flat() == pytest.approx(in_memory.flat(), abs=1e-9)

    op_s = choose_for_graph(onnx, sharded, cfg.registry, cfg.export).operating_point
    op_m = choose_for_graph(onnx, prepared_breastmnist, cfg.registry, cfg.export).operating_point
    assert op_s is not None and op_m is not None and op_s.threshold == pytest.approx(op_m.threshold, abs=1e-6)

    p_s = check_parity(trained_cnn_dir, onnx, sharded, cfg.export, latency_repeats=2)
    p_m = check_parity(trained_cnn_dir, onnx, prepared_breastmnist, cfg.export, latency_repeats=2)
    assert p_s.passed and p_m.passed and p_s.n_images == p_m.n_images == len(load_split(sharded, "test"))
    assert (p_s.accuracy_onnx, p_s.accuracy_torch, p_s.top1_agreement) == (
        p_m.accuracy_onnx,
        p_m.accuracy_torch,
        p_m.top1_agreement,
    )
    assert p_s.max_abs_diff == pytest.approx(p_m.max_abs_diff, abs=1e-6)


def test_drift_reference_and_split_window_equal_the_in_memory_path(
    sharded: Path, prepared_breastmnist: Path, served_cnn_dir: Path, medpipe_home: Path
) -> None:
    from components.serving.model_source import load_model
    from medpipe.settings import get_settings
    from monitoring.check import Champion, onnx_embed_fn, split_window
    from monitoring.reference import build_reference

    cfg = PipelineConfig()
    embed = onnx_embed_fn(load_model(str(served_cnn_dir), cfg.export, get_settings()))
    splits = ("val", "test")
    streamed = build_reference(sharded, embed, cfg.monitoring, splits)
    in_memory = build_reference(prepared_breastmnist, embed, cfg.monitoring, splits)
    assert len(streamed.frame) == len(load_split(sharded, "val")) + len(load_split(sharded, "test"))
    a, b = streamed.frame.drop(columns=["split", "label"]), in_memory.frame.drop(columns=["split", "label"])
    np.testing.assert_allclose(a.select_dtypes("number"), b.select_dtypes("number"), atol=1e-5)
    assert list(streamed.frame["split"]) == list(in_memory.frame["split"])
    assert list(streamed.frame["label"]) == list(in_memory.frame["label"])
    assert list(a["predicted_class"]) == list(b["predicted_class"])
    assert np.array_equal(streamed.thumbnails, in_memory.thumbnails)
    assert streamed.atc_threshold == pytest.approx(in_memory.atc_threshold, abs=1e-6)
    assert (streamed.image_size, streamed.channels) == (28, 1)

    champion = Champion(embed, in_memory, "1", "models:/m/1")
    w_s, w_m = split_window(champion, sharded), split_window(champion, prepared_breastmnist)
    np.testing.assert_allclose(w_s.frame.select_dtypes("number"), w_m.frame.select_dtypes("number"), atol=1e-5)
    assert list(w_s.frame["label"]) == list(w_m.frame["label"]) and len(w_s.frame) == len(load_split(sharded, "test"))
    assert np.array_equal(w_s.images, w_m.images) and np.array_equal(w_m.images, load_split(sharded, "test").images)
