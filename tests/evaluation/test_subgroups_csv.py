"""Attribute columns of a CSV manifest (here a synthetic ``site``) travel through prepare into the test split's
metadata, in image order, and the evaluation of a served graph reports each subgroup with n and CIs; the gate's
per-subgroup floor then names the weaker site."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.data import CLASS_NAMES

pytestmark = pytest.mark.slow  # the session's quick CNN is trained for the served graph (~30-60 s here)


def _site_csv(npz_path: Path, out: Path) -> Path:
    """BreastMNIST PNGs (150 train, all val and test) with ``path,label,split,site,truth``: site B's images are
    noisy, as from a worse scanner; ``truth`` repeats the label so the order of the metadata can be checked."""
    rng = np.random.default_rng(0)
    lines = ["path,label,split,site,truth"]
    (out / "images").mkdir(parents=True)
    with np.load(npz_path) as npz:
        for split in ("train", "val", "test"):
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"].ravel()
            for i in range(150 if split == "train" else len(images)):
                site = "C" if split == "test" and i < 8 else "AB"[i % 2]  # C: too small for a floor
                img = images[i].astype(float)
                if site == "B":
                    img = img + rng.normal(0, 70, img.shape)
                name = f"images/{split}-{i:03d}.png"
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out / name)
                label = CLASS_NAMES[labels[i]]
                lines.append(f"{name},{label},{split},{site},{label}")
    (out / "labels.csv").write_text("\n".join(lines) + "\n")
    return out / "labels.csv"


def test_csv_site_column_reaches_subgroup_report_and_gate(
    breastmnist_npz: Path, served_cnn_dir: Path, tmp_path: Path
) -> None:
    from components.data.dataset import load_split, read_manifest
    from components.data.prepare import prepare
    from components.evaluation.evaluate import evaluate_served
    from components.evaluation.subgroups import flat_groups
    from components.registry.gate.rules import floor_checks
    from medpipe.config import PipelineConfig

    cfg = PipelineConfig().with_overrides({"registry.positive_class": "malignant", "registry.bootstrap_samples": 200})
    prepared = tmp_path / "prepared"
    prepare(_site_csv(breastmnist_npz, tmp_path / "raw"), prepared, cfg.data)

    manifest = read_manifest(prepared)
    test = load_split(prepared, "test")
    columns = manifest["attributes"]["test"]
    assert sorted(columns) == ["site", "truth"]
    assert columns["truth"] == [CLASS_NAMES[y] for y in test.labels]  # one value per image, in split order
    assert len(manifest["attributes"]["train"]["site"]) == 150

    result = evaluate_served(served_cnn_dir / "model.onnx", prepared, registry=cfg.registry, export=cfg.export)
    sites = result.subgroups["site"]
    assert {g: int(s["n"]) for g, s in sites.items()} == {"A": 74, "B": 74, "C": 8}
    for s in sites.values():
        assert s["auc_ci_low"] <= s["auc"] <= s["auc_ci_high"]
        assert s["sensitivity_ci_low"] <= s["sensitivity"] <= s["sensitivity_ci_high"]
    assert sites["A"]["auc"] > sites["B"]["auc"]  # the noisy site is worse

    floor = (sites["A"]["auc"] + sites["B"]["auc"]) / 2
    reg = cfg.with_overrides({"registry.subgroup_min_auc": floor, "registry.subgroup_min_n": 20}).registry
    check = {c.name: c for c in floor_checks(reg, result.metrics, "true", flat_groups(result.subgroups))}
    detail = check["subgroup_auc_min"].detail
    assert not check["subgroup_auc_min"].passed and "site=B" in detail and "site=C" not in detail
