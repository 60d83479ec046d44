"""``model_card.md`` for a registered version, in the order of the CLAIM checklist: intended use; data (source,
version, de-identification, splits, class balance); model and training; operating point, metrics with CIs,
calibration and subgroups; export; the change record against the previous champion; limitations.

Pure rendering from plain inputs. Registration writes a first card; the promotion gate rewrites it from the one
evaluation of the served graph (:mod:`components.evaluation`), so the card shows the figures the gate used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medpipe.config import RegistryConfig
from medpipe.imaging.preprocessing import Preprocessing
from medpipe.metrics import HEADLINE, SEED_FIGURES, SEED_PREFIX, OperatingPoint, class_key
from medpipe.settings import Settings

FILENAME = "model_card.md"
MAX_DESCRIPTION = 4900  # MLflow keeps model-version descriptions up to 5000 characters
PER_CLASS = ("precision", "recall", "f1", "auc", "support")
LABELS = {
    "auc": "ROC AUC",
    "sensitivity": "sensitivity (recall of {pos})",
    "specificity": "specificity",
    "ppv": "PPV (precision of {pos})",
    "npv": "NPV",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "ece": "ECE (15 bins, top label)",
    "brier": "Brier score ({pos})",
}


@dataclass(frozen=True)
class ChangeRecord:
    """What changed against the previous champion, how it was validated, and the outcome."""

    champion: str
    lineage: Mapping[str, tuple[str, str]]  # key -> (champion's, this version's), only those that differ
    params: Mapping[str, tuple[str, str]]  # training param -> (champion's, this version's), only those that differ
    validated: str
    outcome: str
    reason: str


@dataclass
class CardContent:
    """Everything a card shows; fields left empty are rendered as 'not evaluated' / 'not recorded'."""

    name: str
    version: str | None
    run_id: str | None
    preprocessing: Preprocessing | None
    lineage: Mapping[str, str] = field(default_factory=dict)
    train_params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_source: str = "not evaluated yet"
    cis: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    class_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    reliability: Sequence[tuple[float, float, float, int]] = ()
    gate_markdown: str | None = None
    export: Mapping[str, str] = field(default_factory=dict)
    explanation: Mapping[str, str] = field(default_factory=dict)  # the version's explain.* tags (ROAD faithfulness)
    operating_point: OperatingPoint | None = None
    subgroups: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)  # attr -> group -> m
    change: ChangeRecord | None = None
    manifest: Mapping[str, Any] = field(default_factory=dict)
    seeds: Mapping[str, float] = field(default_factory=dict)  # seeds_* run metrics (train.seeds > 1)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _ci(ci: tuple[float, float] | None) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""


def _data(card: CardContent) -> list[str]:
    lin, man = card.lineage, card.manifest
    source = man.get("source") or {}
    out = [
        "## 1. Data",
        f"- source: `{lin.get('medpipe.dataset', source.get('name', 'not recorded'))}`"
        + (f" ({source.get('kind')}, {source.get('items')} items)" if source else ""),
        f"- data version (DVC): `{lin.get('medpipe.data_version', 'not recorded')}`",
        "- de-identification: "
        + str(
            man.get("deidentification")
            or "the prepared dataset holds pixel arrays and labels only (no patient metadata, no file headers)"
        ),
    ]
    split = man.get("split")
    if split:
        out.append(f"- splits: `{split}`")
    if card.class_counts:
        splits = list(card.class_counts)
        names = list(next(iter(card.class_counts.values())))
        out += ["", "| class | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
        for name in names:
            out.append(f"| {name} | " + " | ".join(str(card.class_counts[s].get(name, 0)) for s in splits) + " |")
    return out


def _model(card: CardContent) -> list[str]:
    pre = card.preprocessing
    out = ["## 2. Model and training"]
    if pre is not None:
        out += [
            f"- architecture: `{pre.model_name}`; input {pre.channels}x{pre.image_size}x{pre.image_size} raw pixels "
            f"(resized to {pre.train_image_size} inside the graph)"
            + ("; test-time augmentation (h-flip average) inside the graph" if pre.tta else ""),
            f"- classes (label order): {', '.join(f'`{c}`' for c in pre.class_names)}",
            f"- normalisation (0..1 scale): mean {[round(m, 4) for m in pre.mean]}, "
            f"std {[round(s, 4) for s in pre.std]}",
        ]
    out.append(f"- MLflow run: `{card.run_id or 'n/a'}`; code: `{card.lineage.get('medpipe.git_commit', 'n/a')}`")
    if card.train_params:
        out += ["", "<details><summary>training parameters</summary>", ""]
        out += [f"- {k}: `{v}`" for k, v in sorted(card.train_params.items())]
        out += ["", "</details>"]
    return out


def _performance(card: CardContent, registry: RegistryConfig) -> list[str]:
    op = card.operating_point
    pos = (op.positive_class if op else None) or "positive class"
    out = ["## 3. Operating point and performance"]
    if op is not None:
        out.append(f"- decision: {op.describe()}")
        if op.val_sensitivity is not None:
            out.append(
                f"- on validation: sensitivity {_fmt(op.val_sensitivity)}, specificity {_fmt(op.val_specificity)}"
            )
    out += ["", f"### Test metrics ({card.metrics_source})", ""]
    if not card.metrics:
        return [*out, "not evaluated yet"]
    out += ["| metric | value | 95% CI |", "|---|---:|---|"]
    for key in HEADLINE:
        if key in card.metrics and not (key != "auc" and math.isnan(card.metrics[key])):
            label = LABELS.get(key, key).format(pos=pos)
            out.append(f"| {label} | {_fmt(card.metrics[key])} | {_ci(card.cis.get(key))} |")
    n = card.metrics.get("n")
    if n:
        out.append(f"\n{int(n)} test images; CIs: stratified bootstrap (percentile).")
    names = card.preprocessing.class_names if card.preprocessing else []
    rows = [c for c in names if any(f"{m}.{class_key(c)}" in card.metrics for m in PER_CLASS)]
    if rows:
        out += ["", "### Per class (at the operating point)", "", "| class | " + " | ".join(PER_CLASS) + " |"]
        out.append("|---|" + "---:|" * len(PER_CLASS))
        for c in rows:
            vals = [_fmt(card.metrics.get(f"{m}.{class_key(c)}", float("nan"))) for m in PER_CLASS]
            out.append(f"| {c} | " + " | ".join(vals) + " |")
    out += ["", "### Calibration", ""]
    if "ece" in card.metrics:
        out.append(f"ECE {_fmt(card.metrics['ece'])} (gate limit {registry.max_ece}).")
    if card.reliability:
        out += ["", "| predicted bin | mean predicted | observed rate | n |", "|---|---:|---:|---:|"]
        out += [f"| {lo:.1f}-{lo + 0.1:.1f} | {p:.3f} | {o:.3f} | {n} |" for lo, p, o, n in card.reliability]
    out += ["", "### Subgroups", ""]
    if not card.subgroups:
        out.append("no subgroup attributes in the data (add attribute columns to the manifest to report them)")
    for attr, groups in card.subgroups.items():
        out += [f"**{attr}**", "", "| group | n | AUC [95% CI] | sensitivity [95% CI] |", "|---|---:|---|---|"]
        for g, s in groups.items():
            auc_ci = (s.get("auc_ci_low", math.nan), s.get("auc_ci_high", math.nan))
            sens_ci = (s.get("sensitivity_ci_low", math.nan), s.get("sensitivity_ci_high", math.nan))
            out.append(
                f"| {g} | {int(s.get('n', 0))} | {_fmt(s.get('auc', math.nan))} {_ci(auc_ci)} | "
                f"{_fmt(s.get('sensitivity', math.nan))} {_ci(sens_ci)} |"
            )
        out.append("")
    return out


def seed_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The ``seeds_*`` metrics of a run (mean, sd and per-member figures of a ``train.seeds > 1`` run)."""
    return {k: v for k, v in metrics.items() if k.startswith(SEED_PREFIX)}


def _seeds(card: CardContent) -> list[str]:
    s = card.seeds
    out = ["### Variance across seeds", ""]
    n = int(s.get(f"{SEED_PREFIX}n", 0))
    if n < 2:
        return [*out, "one seed trained (set `train.seeds: N` to measure the variance)"]
    summary = ", ".join(
        f"{k} {_fmt(s.get(f'{SEED_PREFIX}{k}_mean', math.nan))} ± {_fmt(s.get(f'{SEED_PREFIX}{k}_sd', math.nan))}"
        for k in SEED_FIGURES
    )
    ensemble = str(card.train_params.get("train.ensemble")).lower() == "true"
    model = "this model is their ensemble (mean probabilities)" if ensemble else "this model is member 1"
    out += [f"{n} seeds of the same config, each served graph at its own operating point (mean ± sd): "
            f"{summary}; {model}.", "", "| member | seed | threshold | AUC [95% CI] | sensitivity [95% CI] | "
            "specificity [95% CI] |", "|---|---:|---:|---|---|---|"]  # fmt: skip
    for i in range(1, n + 1):
        m = f"{SEED_PREFIX}member{i}_"
        cis = {k: (s.get(m + k + "_ci_low", math.nan), s.get(m + k + "_ci_high", math.nan)) for k in SEED_FIGURES}
        cells = [f"{_fmt(s.get(m + k, math.nan))} {_ci(cis[k])}" for k in SEED_FIGURES]
        seed = int(s[m + "seed"]) if m + "seed" in s else "?"
        out.append(f"| {i} | {seed} | {_fmt(s.get(m + 'threshold', math.nan))} | " + " | ".join(cells) + " |")
    return out


def _explanation(card: CardContent) -> list[str]:
    e = card.explanation
    out = ["### Explanations (Grad-CAM faithfulness)", ""]
    if "explain.road" not in e:
        return [*out, "- not evaluated (registered without a test set, or `registry.faithfulness_images: 0`)"]
    return [
        *out,
        f"`/v1/explain` and `medpipe predict --explain` return Grad-CAM maps ({e.get('explain.method', 'Grad-CAM')}).",
        f"ROAD on {e.get('explain.road_images', '?')} test images (pixels removed: "
        f"{e.get('explain.road_percentiles', '?')} %, at {e.get('explain.road_side', '?')} px): "
        f"**{e['explain.road']}** (MoRF {e.get('explain.road_morf', '?')}, LeRF {e.get('explain.road_lerf', '?')}).",
        "",
        "ROAD removes the pixels a map ranks most relevant (MoRF) or least relevant (LeRF), fills them by noisy "
        "linear imputation and measures the change of the explained class's probability; the score is "
        "(LeRF - MoRF) / 2. Above 0 the maps point at pixels the prediction depends on, about 0 is what random "
        "maps score, below 0 they mislead. It says how faithful the maps are to the model, not whether the model "
        "looks at clinically right regions.",
    ]


def _change(card: CardContent) -> list[str]:
    out = ["## 5. Change record"]
    c = card.change
    if c is None:
        return [*out, "first evaluated version (no previous champion to compare with)" if card.metrics else "n/a"]
    out.append(f"Against the previous champion v{c.champion}:")
    out.append("- code and data: " + ("; ".join(f"{k} `{a}` -> `{b}`" for k, a, b in _triples(c.lineage)) or "same"))
    out.append("- params: " + ("; ".join(f"{k} `{a}` -> `{b}`" for k, a, b in _triples(c.params)) or "same"))
    out.append(f"- validated: {c.validated}")
    out.append(f"- outcome: **{c.outcome}**: {c.reason}")
    return out


def _triples(d: Mapping[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    return [(k, a, b) for k, (a, b) in sorted(d.items())]


def render_model_card(card: CardContent, registry: RegistryConfig) -> str:
    """The card as markdown (renders in the MLflow UI as the version description and as an artifact)."""
    title = f"{card.name} v{card.version}" if card.version else card.name
    out = [f"# Model card: {title}", "", "## 0. Intended use", registry.intended_use, "", "Out of scope:"]
    out += [registry.out_of_scope, "", *_data(card), "", *_model(card), "", *_performance(card, registry), ""]
    if card.seeds:
        out += [*_seeds(card), ""]
    out += ["## 4. Export (ONNX parity) and explanations"]
    out += [f"- {k}: `{v}`" for k, v in sorted(card.export.items())] or ["- not evaluated"]
    out += ["", *_explanation(card)]
    out += ["", *_change(card), "", "## 6. Promotion gate"]
    out += [card.gate_markdown or "not evaluated yet (the version is a challenger).", ""]
    out += ["## 7. Limitations", registry.limitations, ""]
    return "\n".join(out)


def download_model_card(settings: Settings, run_id: str, version: str, dest_dir: Path) -> Path:
    """Fetch the (gate-refreshed) card of ``version`` from its run's artifacts into ``dest_dir``."""
    import mlflow.artifacts

    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    got = mlflow.artifacts.download_artifacts(
        run_id=run_id,
        artifact_path=f"model_cards/v{version}/{FILENAME}",
        dst_path=str(dest_dir),
        tracking_uri=settings.tracking_uri,
    )
    return Path(got)


def publish_card(client: Any, name: str, version: str, run_id: str, text: str) -> None:
    """The card as a run artifact (``model_cards/v<N>/model_card.md``) and as the version's description."""
    client.log_text(run_id, text, f"model_cards/v{version}/{FILENAME}")
    description = text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION] + "\n\n(truncated; see artifact)"
    client.update_model_version(name, version, description=description)
