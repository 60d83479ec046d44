"""Markdown for the Prefect artifacts each flow publishes (presentation only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medpipe.settings import Settings

if TYPE_CHECKING:
    from pipelines.results import TrainingSummary


def mlflow_ui_base(settings: Settings, host: str = "127.0.0.1", port: int = 5000) -> str:
    """Where the MLflow UI answers: the tracking server itself, or `medpipe ui mlflow` for the embedded store."""
    uri = settings.tracking_uri
    return uri.rstrip("/") if uri.startswith("http") else f"http://{host}:{port}"


def run_link(settings: Settings, run_id: str) -> str:
    return f"{mlflow_ui_base(settings)}/#/runs/{run_id}"


def headline_table(metrics: dict[str, float]) -> str:
    """The headline figures with their 95% CIs (keys of EvaluationResult.flat()), in the order of the card."""
    from medpipe.metrics import headline_rows

    rows = ["| metric | value | 95% CI |", "| --- | --- | --- |"]
    return "\n".join(rows + [f"| {k} | {v} | {ci} |" for k, v, ci in headline_rows(metrics)])


def training_markdown(s: TrainingSummary, settings: Settings) -> str:
    params = "\n".join(f"- `{k}` = {v!r}" for k, v in s.best_params.items()) or "- (no search: params.yaml values)"
    return "\n\n".join(
        [
            f"# Training: {s.model_name} v{s.version} — {'PROMOTED' if s.promoted else 'not promoted'}",
            f"- data version: `{s.data_version}`\n- champion now: v{s.champion}\n"
            f"- final run: [{s.run_id}]({run_link(settings, s.run_id)})"
            + (f"\n- search run: [{s.search_run_id}]({run_link(settings, s.search_run_id)})" if s.search_run_id else "")
            + f"\n- ONNX parity gate: {'passed' if s.parity_passed else 'FAILED'} (`{s.onnx_path}`)",
            "## Best params\n" + params,
            "## Test metrics (served ONNX graph)\n"
            + f"- operating point: {s.operating_point}\n\n"
            + headline_table(s.test_metrics)
            + (f"\n\nvariance across seeds: {s.seeds}" if s.seeds else ""),
            s.gate_markdown,
        ]
    )


def kv_markdown(title: str, values: dict[str, Any]) -> str:
    return f"# {title}\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in values.items())


def drift_markdown(summary, paths: dict[str, str]) -> str:  # noqa: ANN001 - DriftSummary
    """The monitoring flow's artifact: verdict, window, report path and every signal against its threshold."""
    rows = ["| signal | score | threshold | drifted |", "| --- | --- | --- | --- |"]
    rows += [
        f"| {s.name} | {s.score:.4f} | {s.threshold:.4f} | {'YES' if s.drifted else 'no'} |" for s in summary.signals
    ]
    est = summary.estimated_accuracy
    return "\n".join(
        [
            f"# Drift check: {summary.status.upper()}",
            f"- window: {summary.window_size} images; estimated accuracy: {est if est is None else f'{est:.3f}'}",
            f"- report: `{paths.get('html')}`",
            "",
            *rows,
        ]
    )
