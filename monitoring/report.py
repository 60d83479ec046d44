"""The drift report a person reads: one self-contained HTML page per check.

Verdict first (status, model version, window, source, each signal with its value, threshold and p-value),
then the evidence: reference vs current thumbnails, intensity histograms overlaid, the 2-D embedding view,
and per-statistic distributions (constant statistics are left out; nothing is plotted against row index).
Figures are matplotlib PNGs embedded as data URIs, so the file can be mailed or attached as it is.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from medpipe.imaging.features import FEATURE_COLUMNS
from monitoring.detectors import constant_columns
from monitoring.reference import ReferenceProfile, pc_columns
from monitoring.summary import DriftSummary

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{margin-bottom:4px} .verdict{font-size:1.4em;padding:10px 14px;border-radius:6px;display:inline-block}
.drift{background:#fde2e1;color:#9b1c1c} .ok{background:#def7ec;color:#03543f} .not_enough_data{background:#fdf6b2}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f4f6} .DRIFT{color:#9b1c1c;font-weight:bold} .WARN{color:#92400e;font-weight:bold}
.grid{display:flex;gap:24px;flex-wrap:wrap} figure{margin:0} figcaption{font-size:.9em;color:#555}
"""


def _png(fig) -> str:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _thumb_grid(images: np.ndarray, columns: int = 8, scale: int = 3) -> str:
    """uint8 (N, H, W, C) -> one PNG grid, each image upscaled ``scale`` x (nearest)."""
    from PIL import Image

    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + 2), columns * (w + 2), c), 255, np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, columns)
        canvas[r * (h + 2) : r * (h + 2) + h, q * (w + 2) : q * (w + 2) + w] = img
    pil = Image.fromarray(canvas[..., 0] if c == 1 else canvas[..., :3])
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "–"
    return f"{x:.2e}" if 0 < abs(x) < 10 ** -(digits - 1) else f"{x:.{digits}g}"


def verdict_html(summary: DriftSummary) -> str:
    """The header: status, model version, window, source, and the signal table."""
    status = summary.status
    label = {"drift": "DRIFT DETECTED", "ok": "NO DRIFT", "not_enough_data": "NOT ENOUGH DATA"}[status]
    window = f"{summary.window_size} images"
    if summary.window_start:
        window += f", {summary.window_start} .. {summary.window_end}"
    rows = []
    for s in summary.signals:
        mark = ("DRIFT" if s.kind != "estimate" else "WARN") if s.drifted else "ok"
        p = _fmt(s.p_value) if s.kind == "test" else "–"
        threshold = f"p &lt; {_fmt(s.threshold, 3)}" if s.kind == "test" else f"&lt; {s.threshold:.3f}"
        rows.append(
            f"<tr><td>{html.escape(s.name)}</td><td>{_fmt(s.value)}</td><td>{p}</td><td>{threshold}</td>"
            f"<td class='{mark}'>{mark}</td><td>{html.escape(s.detail)}</td></tr>"
        )
    est = summary.estimated_accuracy
    facts = [
        ("model version", summary.model_version or "unknown"),
        ("window", window),
        ("source", summary.source or "–"),
        ("reference", f"{summary.reference_size} held-out images, accuracy {_fmt(summary.reference_accuracy, 3)}"),
        ("estimated accuracy (ATC, label-free)", _fmt(est, 3)),
        ("false-alarm rate of this check", f"alpha = {summary.alpha} (Bonferroni over the test families)"),
    ]
    if summary.accuracy is not None:
        facts.append(("accuracy on feedback labels", f"{summary.accuracy:.3f} on {summary.labelled} images"))
    fact_rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    table = (
        "<table id='signals'><tr><th>signal</th><th>value</th><th>p-value</th><th>drift if</th><th>verdict</th>"
        f"<th>detail</th></tr>{''.join(rows)}</table>"
        if rows
        else f"<p>{html.escape(summary.message)}</p>"
    )
    return (
        f"<h1>medpipe drift check</h1><div class='verdict {status}' id='verdict'>{label}</div>"
        f"<p>{html.escape(summary.message)}</p><table id='facts'>{fact_rows}</table><h2>Signals</h2>{table}"
    )


def _figures(reference: ReferenceProfile, window: pd.DataFrame, images: np.ndarray | None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = reference.frame
    figures = []
    if images is not None and reference.thumbnails is not None and len(images):
        fig, ax = plt.subplots(figsize=(5, 3))
        bins = np.arange(257)
        ax.hist(reference.thumbnails.ravel(), bins=bins, density=True, histtype="step", label="reference sample")
        ax.hist(images.ravel(), bins=bins, density=True, histtype="step", label="current window")
        ax.set(xlabel="pixel intensity", ylabel="density", title="Pixel intensities")
        ax.legend()
        figures.append(("Pixel-intensity histograms, reference vs current", _png(fig)))
    pcs = pc_columns(reference.n_components)[:2]
    if all(c in window for c in pcs) and window[pcs].notna().all(axis=None) and len(pcs) == 2:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(ref[pcs[0]], ref[pcs[1]], s=8, alpha=0.5, label="reference")
        ax.scatter(window[pcs[0]], window[pcs[1]], s=8, alpha=0.5, label="current")
        ax.set(xlabel="embedding PC 1 (whitened)", ylabel="embedding PC 2", title="Model embeddings, 2-D view")
        ax.legend()
        figures.append(("Model embeddings: first two principal components of the reference", _png(fig)))
    columns = [c for c in FEATURE_COLUMNS if c not in constant_columns(ref, window, list(FEATURE_COLUMNS))]
    if columns:
        cols = 3
        fig, axes = plt.subplots(-(-len(columns) // cols), cols, figsize=(10, 2.4 * -(-len(columns) // cols)))
        for ax, col in zip(np.ravel(axes), columns, strict=False):
            ax.hist(ref[col].dropna(), bins=20, density=True, alpha=0.5, label="reference")
            ax.hist(window[col].dropna(), bins=20, density=True, alpha=0.5, label="current")
            ax.set_title(col, fontsize=9)
        for ax in np.ravel(axes)[len(columns) :]:
            ax.set_visible(False)
        np.ravel(axes)[0].legend(fontsize=8)
        fig.tight_layout()
        figures.append(("Image statistics (per image), reference vs current", _png(fig)))
    return figures


def render_report(
    summary: DriftSummary, reference: ReferenceProfile, window: pd.DataFrame, images: np.ndarray | None = None
) -> str:
    """The whole page. ``images``: the window's uint8 images when the source has pixels (folder, arrays)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>medpipe drift: {summary.status}</title>"]
    parts += [f"<style>{_CSS}</style></head><body>", verdict_html(summary)]
    if summary.status != "not_enough_data":
        thumbs = []
        if reference.thumbnails is not None:
            thumbs.append(("reference", _thumb_grid(reference.thumbnails[:32])))
        if images is not None and len(images):
            pick = np.random.default_rng(0).permutation(len(images))[:32]
            thumbs.append(("current", _thumb_grid(images[np.sort(pick)])))
        parts.append("<h2>Images</h2><div class='grid' id='thumbnails'>")
        for name, uri in thumbs:
            parts.append(f"<figure><img alt='{name} thumbnails' src='{uri}'><figcaption>{name}</figcaption></figure>")
        if images is None:
            parts.append("<p>The inference log keeps no pixels: only the reference sample is shown.</p>")
        parts.append("</div><h2>Evidence</h2><div class='grid'>")
        for caption, uri in _figures(reference, window, images):
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='{uri}'><figcaption>{caption}</figcaption>")
            parts.append("</figure>")
        parts.append("</div>")
        if summary.feature_scores:
            rows = "".join(
                f"<tr><td>{c}</td><td>{_fmt(p)}</td></tr>"
                for c, p in sorted(summary.feature_scores.items(), key=lambda x: x[1])
            )
            parts.append(f"<h2>Image statistics: K-S, Holm-adjusted p-values</h2><table>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(
    path: Path,
    summary: DriftSummary,
    reference: ReferenceProfile,
    window: pd.DataFrame,
    images: np.ndarray | None = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(summary, reference, window, images), encoding="utf-8")
    return path
