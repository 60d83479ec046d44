"""Monitoring counts the served decision: a binary model's stored threshold, not argmax (multi-class: argmax)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medpipe.metrics import OperatingPoint
from monitoring.detectors import softmax_shift

OP = OperatingPoint(rule="sensitivity", target=0.9, positive_class="b", positive_index=1, threshold=0.25)


def test_predicted_class_counts_use_the_threshold() -> None:
    rng = np.random.default_rng(0)
    p_ref, p_cur = rng.uniform(0.05, 0.24, 200), rng.uniform(0.26, 0.45, 200)  # argmax says "a" for all of them
    ref, cur = np.stack([1 - p_ref, p_ref], 1), np.stack([1 - p_cur, p_cur], 1)
    by_argmax = softmax_shift(ref, cur, ["a", "b"])
    assert "predicted_class" not in by_argmax.parts  # one class predicted on both sides: nothing to count
    served = softmax_shift(ref, cur, ["a", "b"], OP.predict)  # served: every current image is "b"
    assert served.parts["predicted_class"] < 1e-6


@pytest.mark.slow  # builds a reference profile of the val split (~60 s on the shared box)
def test_reference_and_log_window_decide_with_the_stored_threshold(
    prepared_breastmnist: Path, embed_fn, mon_cfg, tmp_path: Path
) -> None:
    from components.data.dataset import load_split
    from monitoring.reference import ReferenceProfile, build_reference
    from monitoring.window import window_from_log

    val_probs, _ = embed_fn(load_split(prepared_breastmnist, "val").images)
    threshold = float(np.median(val_probs[:, 1]))  # half of the images on each side, whatever argmax says
    op = OP.model_copy(update={"positive_class": "normal_or_benign", "threshold": threshold})
    built = build_reference(prepared_breastmnist, embed_fn, mon_cfg, operating_point=op)
    profile = ReferenceProfile.load(built.save(tmp_path / "reference"))
    assert profile.operating_point == op  # stored with the profile
    probs = profile.frame[["prob_0", "prob_1"]].to_numpy()
    served = np.where(probs[:, 1] >= threshold, "normal_or_benign", "malignant")
    assert (served != np.array(profile.class_names)[probs.argmax(1)]).any()  # the two decisions differ here
    assert profile.frame["predicted_class"].tolist() == served.tolist()
    labels = profile.frame["label"].to_numpy()
    assert profile.reference_accuracy == np.mean(served == labels)
    rows = pd.DataFrame({"features": [{}] * 5, "probabilities": list(probs[:5]), "predicted_class": [None] * 5})
    assert window_from_log(rows, profile)["predicted_class"].tolist() == served[:5].tolist()
    multi = OperatingPoint(rule="argmax", note="multi-class model (3 classes): argmax")
    three = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    as_multi = dataclasses.replace(profile, operating_point=multi)
    assert as_multi.decide(three).tolist() == [2, 0]  # no threshold: argmax
