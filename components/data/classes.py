"""Class checks that need the split: every class in every split, and no rare class that was not there before.

A typo in a label column (``benigh`` on 5 rows) would otherwise become a class of its own. Two rules:

- every class has images in train, val and test (a class missing from a split cannot be learnt or tested);
- when the source keeps every class of the previous data version, a class that version did not have
  with fewer than ``data.min_images_per_class`` images in some split is an error that names its rows.
  A real new class is accepted by listing every class in ``data.class_names`` (then labels outside
  that list are errors already).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.data.dataset import MANIFEST, SPLITS
from medpipe.config import DataConfig
from medpipe.errors import DataError


def previous_class_names(candidates: Sequence[Path]) -> tuple[str, ...] | None:
    """The class names of the first previous prepared folder that has a manifest, or None (first version)."""
    for folder in candidates:
        manifest = Path(folder) / MANIFEST
        if manifest.is_file():
            return tuple(json.loads(manifest.read_text()).get("class_names", ()))
    return None


def check_class_splits(
    names: Sequence[str],
    labels: np.ndarray,
    assignment: np.ndarray,
    cfg: DataConfig,
    where: str,
    previous: Sequence[str] | None,
    locations: dict[str, str],
) -> None:
    """Raise :class:`DataError` when a class lacks a split, or is new since ``previous`` and rare."""
    counts = {s: np.bincount(labels[assignment == s], minlength=len(names)) for s in SPLITS}
    # Only a source that keeps every previous class adds to it; one without them is another dataset.
    grows = previous is not None and cfg.class_names is None and set(previous) <= set(names)
    problems = []
    for i, name in enumerate(names):
        per_split = {s: int(counts[s][i]) for s in SPLITS}
        shown = ", ".join(f"{s} {n}" for s, n in per_split.items())
        where_it_is = locations.get(name, where)
        if absent := [s for s, n in per_split.items() if n == 0]:
            problems.append(f"class {name!r} has no images in {'/'.join(absent)} ({shown}; {where_it_is})")
        elif grows and name not in previous and min(per_split.values()) < cfg.min_images_per_class:
            problems.append(
                f"class {name!r} is new since the previous data version (classes {list(previous)}) and rare "
                f"({shown}; {where_it_is}): a typo in a label?"
            )
    if problems:
        raise DataError(
            f"{where}: " + "; ".join(problems) + ". Fix the labels; to add a real new class, list every class in "
            f"data.class_names and give it at least data.min_images_per_class={cfg.min_images_per_class} images "
            "per split."
        )
