"""Which class is "positive" for the gate and the card: ``registry.positive_class`` as a class index."""

from __future__ import annotations

from medpipe import metrics as mx
from medpipe.errors import GateError


def positive_index(positive: str | int | None, class_names: list[str] | tuple[str, ...]) -> int:
    """``registry.positive_class`` as a class index (:func:`medpipe.metrics.positive_index`), as a GateError."""
    try:
        return mx.positive_index(positive, class_names)
    except mx.MetricsError as err:
        raise GateError(str(err)) from None
