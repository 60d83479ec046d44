"""Pre-flight: every consistency check between the config and the data, before any training.

Runs in the first seconds of a training flow (right after the data is prepared): class names vs
``registry.positive_class``, the prepared size and channels vs ``data.*``, and the class list of the
registered model the run would publish under. All problems come back in one message that says what to
set. It also resolves a null ``registry.positive_class`` (binary data: the rarer class of the training
split) and returns the resolved ``registry`` section, so every later stage sees one concrete value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medpipe import metrics as mx
from medpipe.errors import MedpipeError

if TYPE_CHECKING:
    from components.data.dataset import PreparedData
    from medpipe.config import DataConfig, MonitoringConfig, RegistryConfig
    from medpipe.settings import Settings

CLASS_NAMES_TAG = "medpipe.class_names"  # on the registered model: the class list every version shares


class PreflightError(MedpipeError):
    """Config and data do not fit together; the message lists every problem and what to set."""


@dataclass(frozen=True)
class Preflight:
    registry: RegistryConfig  # the registry section with positive_class resolved
    notes: list[str] = field(default_factory=list)  # one line each, printed by the flow


def resolve_positive_class(
    positive: str | int | None, class_names: Sequence[str], train_counts: Mapping[str, int]
) -> tuple[str | None, str | None]:
    """``registry.positive_class`` as a class name (or None for multi-class data without one), plus a one-line
    note when it was chosen here. Raises :class:`PreflightError` when it is not a class of the data."""
    names = list(class_names)
    if positive is not None:
        try:
            return names[mx.positive_index(positive, names)], None
        except mx.MetricsError as err:
            raise PreflightError(f"{err}; set -S registry.positive_class=<one of {names}> or null") from None
    if len(names) == 2:
        name = mx.rarer_class(names, train_counts)
        n, total = int(train_counts.get(name, 0)), sum(int(v) for v in train_counts.values())
        return name, (
            f"registry.positive_class not set: using {name!r}, the rarer class of the training split "
            f"({n} of {total} images)"
        )
    return None, (
        f"{len(names)} classes and no registry.positive_class: the gate uses macro one-vs-rest AUC and no "
        "sensitivity rule (set registry.positive_class to add one)"
    )


def registered_class_names(client: Any, name: str) -> list[str] | None:
    """The class list recorded on registered model ``name`` (None: no such model, or none recorded)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if getattr(err, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(err).lower():
            return None
        raise
    raw = (model.tags or {}).get(CLASS_NAMES_TAG)
    return json.loads(raw) if raw else None


def class_list_problem(registered: list[str] | None, name: str, class_names: Sequence[str]) -> str | None:
    if registered is None or list(registered) == list(class_names):
        return None
    return (
        f"registered model {name!r} has classes {registered}, but this data has {list(class_names)}: a model is "
        f"never registered under a name with another class list; set -S registry.model_name=<a new name> "
        "(or project.name), or point --data at the dataset that model was trained on"
    )


def preflight(
    prepared: PreparedData,
    settings: Settings,
    *,
    data: DataConfig,
    registry: RegistryConfig,
    monitoring: MonitoringConfig,
) -> Preflight:
    """Check the ``data``, ``registry`` and ``monitoring`` sections against the data and the registry before any
    training; raise one :class:`PreflightError` listing every problem, else return the registry section with the
    positive class resolved and the notes to print."""
    from components.tracking import mlflow_client

    problems, notes = [], []
    names = list(prepared.class_names)
    if prepared.channels != data.channels or prepared.image_size != data.image_size:
        problems.append(
            f"the prepared data {prepared.path} is {prepared.image_size}px x {prepared.channels} channel(s) but "
            f"data.image_size={data.image_size}, data.channels={data.channels}; prepare it again "
            "(`medpipe data ingest`) or set data.image_size / data.channels to match"
        )
    splits = monitoring.reference_splits
    held_out = sum(sum(int(v) for v in prepared.counts.get(s, {}).values()) for s in splits)
    if held_out < monitoring.min_window:
        problems.append(
            f"the drift reference splits {list(splits)} hold {held_out} images, fewer than monitoring.min_window="
            f"{monitoring.min_window}; add images, raise data.split.val, or lower monitoring.min_window"
        )
    positive = registry.positive_class
    try:
        positive, note = resolve_positive_class(positive, names, prepared.counts.get("train", {}))
        if note:
            notes.append(note)
    except PreflightError as err:
        problems.append(str(err))
    problem = class_list_problem(
        registered_class_names(mlflow_client(settings), registry.model_name), registry.model_name, names
    )
    if problem:
        problems.append(problem)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise PreflightError(f"pre-flight check failed before any training ({len(problems)} problem(s)):\n{listed}")
    if positive is not None and positive != registry.positive_class:
        registry = registry.model_copy(update={"positive_class": positive})
    return Preflight(registry, notes)
