"""The detectors' arithmetic against the libraries that define it."""

from __future__ import annotations

import numpy as np

from monitoring.detectors import embedding_mmd, holm, softmax_shift
from monitoring.estimate import atc_estimate, fit_atc_threshold


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    cases = [rng.uniform(size=m) ** 3 for m in (1, 2, 5, 14)] + [np.array([0.01, 0.04, 0.03, 0.005])]
    # (each multipletests call runs gc.collect(): a hundred of them took minutes late in a full, loaded run)
    for p in cases:
        assert np.allclose(holm(p), multipletests(p, method="holm")[1])
    assert np.allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])  # by hand: 4p, 3p, 2p, max


def test_mmd_separates_a_mean_shift_and_bounds_p() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(150, 8))
    shifted = embedding_mmd(ref, rng.normal(size=(80, 8)) + 0.5, permutations=199)
    assert shifted.p_value == 1 / 200  # nothing in the null beats it: (0 + 1) / (199 + 1)
    same = embedding_mmd(ref, ref[:80], permutations=199)
    assert same.p_value > 0.5


def test_softmax_chi2_catches_a_prevalence_flip() -> None:
    ref = np.tile([[0.8, 0.2]], (100, 1))
    cur = np.concatenate([np.tile([[0.8, 0.2]], (20, 1)), np.tile([[0.3, 0.7]], (80, 1))])
    res = softmax_shift(ref, cur, ["a", "b"])
    assert res.p_value < 1e-6 and set(res.parts) == {"p(b)", "predicted_class"}


def test_atc_reproduces_the_calibration_accuracy() -> None:
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.5, 1.0, 500)
    correct = rng.uniform(size=500) < conf
    t = fit_atc_threshold(conf, correct)
    assert abs(atc_estimate(conf, t) - correct.mean()) <= 1 / 500
    assert atc_estimate(conf[:0], t) is None
