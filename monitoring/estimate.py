"""Label-free accuracy estimate: ATC, average thresholded confidence (Garg et al., ICLR 2022).

Fitted on held-out labelled images (the reference, which the model did not train on): the threshold ``t``
on the max class probability is chosen so that the share of held-out images above ``t`` equals the
held-out accuracy. On a new window the estimate is the share of images whose confidence exceeds ``t``.
"""

from __future__ import annotations

import numpy as np


def fit_atc_threshold(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The confidence threshold ``t`` with mean(confidence > t) == mean(correct) on held-out data."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if len(confidence) == 0 or len(confidence) != len(correct):
        raise ValueError(f"ATC needs matching, non-empty confidence/correct arrays ({len(confidence)}, {len(correct)})")
    errors = 1.0 - correct.mean()
    # the errors-quantile of the confidences: that share sits at or below t, the rest above it
    return float(np.quantile(confidence, errors, method="lower")) if errors > 0 else float(confidence.min()) - 1e-12


def atc_estimate(confidence: np.ndarray, threshold: float) -> float | None:
    """Estimated accuracy of a window: share of confidences above the ATC threshold (None for no rows)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    return float((confidence > threshold).mean()) if len(confidence) else None
