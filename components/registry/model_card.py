"""``model_card.md`` for a registered version: what it is for, what it was trained on, how well it does.

Pure rendering from plain inputs; registration writes a first card (training metrics), the promotion
gate rewrites it with the metrics on the current test set, their confidence intervals, per-class
metrics, calibration and the gate decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medpipe.config import RegistryConfig
from medpipe.imaging.preprocessing import Preprocessing
from medpipe.metrics import HEADLINE, class_key

FILENAME = "model_card.md"
MAX_DESCRIPTION = 4900  # MLflow keeps model-version descriptions up to 5000 characters
PER_CLASS = ("precision", "recall", "f1", "auc", "support")


@dataclass
class CardContent:
    """Everything a card shows; fields left empty are rendered as 'not evaluated'."""

    name: str
    version: str | None
    run_id: str | None
    preprocessing: Preprocessing
    lineage: Mapping[str, str] = field(default_factory=dict)
    train_params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_source: str = "training run (test split)"
    cis: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    class_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    reliability: Sequence[tuple[float, float, float, int]] = ()
    gate_markdown: str | None = None
    export: Mapping[str, str] = field(default_factory=dict)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def render_model_card(card: CardContent, registry: RegistryConfig) -> str:
    """The card as markdown (renders in the MLflow UI as the version description and as an artifact)."""
    pre = card.preprocessing
    title = f"{card.name} v{card.version}" if card.version else card.name
    out = [f"# Model card: {title}", ""]
    out += [
        "## Intended use",
        registry.intended_use,
        "",
        "## Out of scope",
        registry.out_of_scope,
        "",
        "## Model",
        f"- architecture: `{pre.model_name}`; input {pre.channels}x{pre.image_size}x{pre.image_size} raw pixels "
        f"(resized to {pre.train_image_size} inside the model)",
        f"- classes (label order): {', '.join(f'`{c}`' for c in pre.class_names)}",
        f"- normalisation (0..1 scale): mean {[round(m, 4) for m in pre.mean]}, std {[round(s, 4) for s in pre.std]}",
        f"- MLflow run: `{card.run_id or 'n/a'}`",
        "",
        "## Data and lineage",
    ]
    out += [f"- {k.removeprefix('medpipe.')}: `{v}`" for k, v in sorted(card.lineage.items())] or ["- not recorded"]
    if card.class_counts:
        splits = list(card.class_counts)
        out += ["", "| class | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
        for name in pre.class_names:
            out.append(f"| {name} | " + " | ".join(str(card.class_counts[s].get(name, 0)) for s in splits) + " |")
    out += ["", "## Training parameters"]
    if card.train_params:
        out += [f"- {k}: `{v}`" for k, v in sorted(card.train_params.items())]
    else:
        out.append("- not recorded")
    out += ["", f"## Test metrics ({card.metrics_source})"]
    if card.metrics:
        out += ["| metric | value | 95% CI |", "|---|---:|---|"]
        for key in HEADLINE:
            if key in card.metrics:
                ci = card.cis.get(key)
                ci_text = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""
                label = key
                if key in ("sensitivity", "specificity", "ppv", "npv"):
                    label = f"{key} ({_positive_name(registry, pre)})"
                out.append(f"| {label} | {_fmt(card.metrics[key])} | {ci_text} |")
        rows = [c for c in pre.class_names if any(f"{m}.{_key(c)}" in card.metrics for m in PER_CLASS)]
        if rows:
            out += ["", "### Per class", "", "| class | " + " | ".join(PER_CLASS) + " |", "|---|" + "---:|" * 5]
            for c in rows:
                vals = [_fmt(card.metrics.get(f"{m}.{_key(c)}", float("nan"))) for m in PER_CLASS]
                out.append(f"| {c} | " + " | ".join(vals) + " |")
    else:
        out.append("not evaluated yet")
    out += ["", "## Calibration"]
    if "ece" in card.metrics:
        out.append(
            f"Expected calibration error (15 bins, top label): {_fmt(card.metrics['ece'])} (limit {registry.max_ece})."
        )
    if card.reliability:
        out += ["", "| confidence bin | mean confidence | accuracy | n |", "|---|---:|---:|---:|"]
        out += [f"| {lo:.1f}-{lo + 0.1:.1f} | {c:.3f} | {a:.3f} | {n} |" for lo, c, a, n in card.reliability]
    if "ece" not in card.metrics and not card.reliability:
        out.append("not evaluated yet")
    out += ["", "## Export (ONNX parity)"]
    out += [f"- {k}: `{v}`" for k, v in sorted(card.export.items())] or ["- not evaluated"]
    out += ["", "## Promotion gate", card.gate_markdown or "not evaluated yet (the version is a challenger)."]
    out += ["", "## Known limitations", registry.limitations, ""]
    return "\n".join(out)


def _key(name: str) -> str:
    return class_key(name)


def _positive_name(registry: RegistryConfig, pre: Preprocessing) -> str:
    from components.registry.positive_class import positive_index

    if registry.positive_class is None and len(pre.class_names) > 2:
        return "none (multi-class: macro one-vs-rest AUC)"
    try:
        return pre.class_names[positive_index(registry.positive_class, pre.class_names)]
    except Exception:  # noqa: BLE001 - a card never fails on a label
        return str(registry.positive_class)


def download_model_card(settings, run_id: str, version: str, dest_dir: Path) -> Path:  # noqa: ANN001 - Settings
    """Fetch the (gate-refreshed) card of ``version`` from its run's artifacts into ``dest_dir``."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    got = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"model_cards/v{version}/{FILENAME}", dst_path=str(dest_dir)
    )
    return Path(got)


def publish_card(client: Any, name: str, version: str, run_id: str, text: str) -> None:
    """The card as a run artifact (``model_cards/v<N>/model_card.md``) and as the version's description."""
    client.log_text(run_id, text, f"model_cards/v{version}/{FILENAME}")
    description = text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION] + "\n\n(truncated; see artifact)"
    client.update_model_version(name, version, description=description)
