"""Rich rendering of stage results for the CLI (one function per result type; no logic)."""

from __future__ import annotations


def _test_metrics_table(title: str, metrics: dict[str, float]):  # noqa: ANN202 - rich Table (lazy import)
    """The headline figures present in ``metrics`` (an EvaluationResult.flat()), with their 95% CIs."""
    from rich.table import Table

    from medpipe.metrics import headline_rows

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for row in headline_rows(metrics):
        table.add_row(*row)
    return table


def _figure(flat: dict[str, float], key: str, label: str, digits: int = 3) -> str | None:
    """``"AUC 0.871 [0.805, 0.930]"`` (the 95% CI when there is one), or None when ``key`` is absent."""
    if key not in flat:
        return None
    lo, hi = flat.get(f"{key}_ci_low"), flat.get(f"{key}_ci_high")
    ci = "" if lo is None or hi is None else f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{label} {flat[key]:.{digits}f}{ci}"


def test_figure_lines(metrics: dict[str, float]) -> list[str]:
    """The served graph's test figures in two lines (95% CIs in brackets): ranking and calibration, then the
    decisions at the operating point. The full table is in the model card and the Prefect artifact."""

    def join(*parts: str | None) -> str:
        return "   ".join(p for p in parts if p)

    n = f", n={int(metrics['n'])}" if "n" in metrics else ""
    ranking = join(_figure(metrics, "auc", "AUC"), _figure(metrics, "ece", "ECE"), _figure(metrics, "brier", "Brier"))
    decisions = join(
        *(_figure(metrics, k, label) for k, label in (("sensitivity", "sens"), ("specificity", "spec"))),
        *(_figure(metrics, k, k.upper()) for k in ("ppv", "npv")),
    )
    lines = [f"{f'test (ONNX{n})':<17} {ranking}"] if ranking else []
    return lines + ([f"at that threshold {decisions}"] if decisions else [])


def print_deploy_result(console, result) -> None:  # noqa: ANN001 - DeployResult (lazy import keeps the CLI fast)
    """The parity gate of an export (and of its quantised candidate)."""
    from rich.table import Table

    table = Table(title=f"ONNX export: {result.onnx_path}")
    table.add_column("graph")
    for col in ("gate", "max |Δprob|", "top-1 agree", "acc torch", "acc onnx", "provider", "p50 b1 ms", "p50 b32 ms"):
        table.add_column(col, justify="right")
    reports = [result.fp32_report] + ([result.quantized_report] if result.quantized_report else [])
    for r in reports:
        table.add_row(
            r.quantized if r.quantized != "none" else "fp32",
            "[green]pass[/]" if r.passed else "[red]FAIL[/]",
            f"{r.max_abs_diff:.2e}",
            f"{r.top1_agreement:.4f}",
            f"{r.accuracy_torch:.4f}" if r.accuracy_torch is not None else "-",
            f"{r.accuracy_onnx:.4f}" if r.accuracy_onnx is not None else "-",
            r.provider,
            f"{r.latency_ms['p50_b1']:.3f}",
            f"{r.latency_ms['p50_b32']:.3f}",
        )
    console.print(table)
    for r in reports:
        if r.reason:
            console.print(f"[red]{r.quantized if r.quantized != 'none' else 'fp32'}:[/] {r.reason}")
    shipped = result.report.quantized if result.report.quantized != "none" else "fp32"
    console.print(f"shipping: {shipped} ({'passed' if result.passed else 'gate FAILED'})")


def print_batch_prediction(console, result) -> None:  # noqa: ANN001 - BatchPrediction
    """Summary of an offline ``medpipe predict`` run."""
    counts = ", ".join(f"{k}: {v}" for k, v in result.class_counts.items())
    console.print(
        f"scored {result.n_images - result.n_failed}/{result.n_images} images with {result.model_name} "
        f"v{result.model_version} -> {result.out_csv} ({counts})"
    )
    if result.n_failed:
        console.print(f"[yellow]{result.n_failed} file(s) refused; see the 'error' column[/]")
    if result.explain_dir is not None:
        console.print(f"Grad-CAM overlays (.gradcam.png) and maps (.gradcam.npy) -> {result.explain_dir}")
    if result.request_id:
        console.print(f"inference log request id: {result.request_id}")


# --- data ------------------------------------------------------------------------------------
def _counts_table(title: str, class_names: tuple[str, ...], counts: dict[str, dict[str, int]]):
    from rich.table import Table

    order = ("train", "val", "test")
    splits = [s for s in order if s in counts] + [s for s in counts if s not in order]
    table = Table(title=title, title_justify="left")
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right", style="bold")
    for name in class_names:
        row = [counts[s].get(name, 0) for s in splits]
        table.add_row(name, *map(str, row), str(sum(row)))
    totals = [sum(counts[s].values()) for s in splits]
    table.add_row("[bold]total[/]", *map(str, totals), str(sum(totals)))
    return table


def print_data_summary(console, result) -> None:
    """Render what `medpipe data ingest` produced (a PreparedData / IngestResult)."""
    version = result.data_version or "unversioned"
    recorded = getattr(result, "recorded", True)
    console.print(f"[bold]data version[/] [cyan]{version}[/]" + ("" if recorded else " [yellow](not in dvc.lock)[/]"))
    source = getattr(result, "source", "")
    if source:
        console.print(f"source {source} -> {result.path}")
    console.print(
        f"{len(result.class_names)} classes, images {result.image_size}x{result.image_size}, "
        f"{result.channels} channel(s)"
    )
    console.print(_counts_table("class counts per split", result.class_names, result.counts))
    if getattr(result, "skipped", 0):
        console.print(f"[yellow]{result.skipped} invalid file(s) skipped[/]: see {result.path / 'validation.json'}")
    if getattr(result, "duplicates", 0):
        console.print(
            f"[yellow]{result.duplicates} image(s) appear in more than one split[/] (by sha256; "
            f"listed in {result.path / 'manifest.json'})"
        )
    if getattr(result, "pushed_to", None):
        console.print(f"pushed to DVC remote {result.pushed_to}")
    for note in getattr(result, "notes", ()):
        console.print(f"[dim]note:[/] {note}")


def print_data_status(console, status) -> None:
    """Render `medpipe data status` (a components.data.versioning.DataStatus)."""
    console.print(f"[bold]project[/] {status.project_dir}")
    if status.data_version is None and status.raw_version is None:
        console.print("[yellow]no versioned data yet[/]: run `medpipe data ingest` (or `make demo`)")
        return
    console.print(f"[bold]data version[/] [cyan]{status.data_version or 'not reproduced yet'}[/] (data/prepared)")
    console.print(f"raw data {status.raw_version or 'not tracked'} (data/raw)")
    if status.source:
        console.print(f"source {status.source.get('kind')} {status.source.get('name')!r}")
    if status.counts:
        console.print(_counts_table("class counts per split", status.class_names, status.counts))
    if status.duplicates:
        console.print(f"[yellow]{status.duplicates} image(s) appear in more than one split[/]")
    if status.skipped:
        console.print(f"[yellow]{status.skipped} invalid file(s) were skipped[/] (validation.json)")
    if status.changes:
        console.print("[bold yellow]workspace differs from the last versioned state[/] (`dvc status`):")
        for line in status.changes:
            console.print(f"  {line}")
        if status.prepared_path is None:
            console.print("  run `medpipe data pull` to fetch the versioned data from the DVC remote")
        else:
            console.print("  run `dvc repro prepare` (or `medpipe data ingest`) to version it; `dvc checkout` undoes")
    else:
        console.print("[green]workspace matches the last versioned state[/]")
    if status.uncommitted:
        console.print(f"[yellow]not committed to git[/]: {', '.join(status.uncommitted)}")
    if status.remote:
        console.print(f"DVC remote {status.remote}")


# --- registry (MLflow model registry, promotion gate, audit log) ------------------------------
def print_search_result(console, result) -> None:
    """An Optuna study's outcome (``medpipe hpo worker``)."""
    console.print(
        f"study [bold]{result.study_name}[/]: {result.n_complete} complete, {result.n_pruned} pruned; "
        f"best val AUC [bold]{result.best_value:.4f}[/] (MLflow parent run {result.parent_run_id})"
    )
    for key, value in result.best_params.items():
        console.print(f"  {key} = {value}")


def print_train_result(console, result) -> None:
    """``medpipe train --direct``: the final model's validation metrics, where it was written, its MLflow run."""
    from rich.table import Table

    table = Table(title="final model, validation split")  # a title wraps at the table's width: no ids in it
    table.add_column("metric")
    table.add_column("val", justify="right")
    from medpipe.metrics import EPOCH_METRICS  # what validation logs each epoch

    for key in EPOCH_METRICS:
        val = result.val_metrics.get(key)
        table.add_row(key, "-" if val is None else f"{val:.4f}")
    console.print(table)
    console.print(
        "test figures: export and evaluate the graph (`dvc repro evaluate`, or `medpipe train` without --direct)"
    )
    if result.best_params:
        console.print("best params: " + ", ".join(f"{k}={v}" for k, v in result.best_params.items()))
    console.print(f"model folder: [bold]{result.model_dir}[/]  checkpoint: {result.checkpoint}", soft_wrap=True)
    console.print(f"MLflow run:   {result.run_id}", highlight=False)


def print_drift_summary(console, summary, outcome=None, retrain=None) -> None:  # noqa: ANN001
    """Verdict, each signal (value, p-value, threshold), accuracy estimate, retrain decision, alert, report paths."""
    from rich.table import Table

    if summary.status == "not_enough_data":
        console.print(f"[bold yellow]not enough data[/]: {summary.message}")
    elif summary.drift_detected:
        console.print(f"[bold red]drift detected[/] in {', '.join(s.name for s in summary.drifted_signals)}")
    else:
        console.print("[bold green]no drift[/]")
    window = f"{summary.window_size} images"
    if summary.window_start:
        window += f" ({summary.window_start} .. {summary.window_end})"
    console.print(f"window: {window}; source: {summary.source}; model version: {summary.model_version}")
    console.print(f"reference: {summary.reference_size} held-out images; false-alarm rate alpha = {summary.alpha}")
    if summary.signals:
        table = Table("signal", "value", "p-value", "drift if", "verdict", "detail")
        for s in summary.signals:
            verdict = ("[red]DRIFT[/]" if s.kind != "estimate" else "[yellow]WARN[/]") if s.drifted else "[green]ok[/]"
            p = f"{s.score:.3g}" if s.kind == "test" else "-"
            rule = f"p < {s.threshold:.3g}" if s.kind == "test" else f"< {s.threshold:.3f}"
            table.add_row(s.name, f"{s.value:.4g}" if s.value is not None else "-", p, rule, verdict, s.detail)
        console.print(table)
    if summary.accuracy is not None:
        console.print(f"accuracy on {summary.labelled} labelled images: {summary.accuracy:.3f}")
    if retrain is not None:
        console.print(f"retrain: {retrain.text()}")
    if outcome is not None:
        failed = f"; failed: {', '.join(outcome.failed_channels)}" if outcome.failed_channels else ""
        console.print(f"alert: {outcome.action} ({outcome.reason}){failed}")
    for key, path in summary.report_paths.items():
        console.print(f"{key}: {path}")


def print_pipeline_summary(console, summary, settings, model_args: str = "") -> None:  # noqa: ANN001
    """The end of `medpipe run` / `make demo` (a PipelineSummary): champion, its metrics, where everything landed,
    what to open, and what to serve (``model_args``: the options that name this run's model to a later command;
    see :func:`medpipe.cli.next_steps.model_args`)."""
    from medpipe.cli.next_steps import run_serve_lines

    t = summary.training
    figures = test_figure_lines(t.test_metrics)
    lines = [
        *figures[:1],
        f"operating point   {t.operating_point}",
        *figures[1:],
        *_training_outcome(t),
        f"ONNX model        {summary.deployment.onnx_path if summary.deployment else t.onnx_path}",
    ]
    if summary.monitoring:
        m = summary.monitoring
        lines.append(f"drift report      {m.report_html}  ({m.status}, window {m.window_size})")
    lines += [
        "",
        "DVC metrics/plots:        dvc metrics show ; dvc plots show",
        "runs and models (MLflow): uv run medpipe ui mlflow",
        "flow runs (Prefect):      uv run medpipe ui prefect",
        "drift history (Evidently): uv run medpipe ui evidently",
        *run_serve_lines(t, model_args),
        f"state folder:             {settings.home}",
    ]
    console.rule("[bold]medpipe run finished")
    for line in lines:  # one line each, never wrapped: paths must stay copy-pasteable
        console.print(line, soft_wrap=True, highlight=False)


# --- orchestration (Prefect) --------------------------------------------------------------------
def _training_outcome(s) -> list[str]:  # noqa: ANN001 - pipelines.training.TrainingSummary
    """Data version, gate verdict, champion and model card of a training flow run: one line each."""
    verdict = "[green]PROMOTED to champion[/]" if s.promoted else f"[yellow]not promoted[/] ({s.gate_reason})"
    seeds = [f"seed variance     {s.seeds}"] if getattr(s, "seeds", "") else []  # train.seeds > 1 only
    return [
        f"data version      {s.data_version}",
        *seeds,
        f"this run          v{s.version}: {verdict}",
        f"champion          {s.model_name} v{s.champion}" if s.champion else "champion          none yet",
        f"model card        {s.model_card}",
        f"DVC               {s.dvc_note or 'not recorded'}",
    ]


def print_training_summary(console, s) -> None:  # noqa: ANN001 - pipelines.training.TrainingSummary
    """``medpipe train``: the training flow's outcome: test metrics, gate decision, champion, where things are."""
    from rich.panel import Panel

    title = f"{s.model_name} v{s.version} test metrics (served ONNX graph)"
    console.print(_test_metrics_table(title, s.test_metrics))
    console.print(f"operating point: {s.operating_point}", soft_wrap=True, highlight=False)
    if s.best_params:
        console.print("best params: " + ", ".join(f"{k}={v}" for k, v in s.best_params.items()))
    parity = f"ONNX parity       {'passed' if s.parity_passed else '[red]FAILED[/]'} ({s.onnx_path})"
    lines = [*_training_outcome(s), parity, f"MLflow run        {s.run_id}"]
    console.print(Panel("\n".join(lines), title="training flow finished", expand=False))


def print_deployment_summary(console, s) -> None:  # noqa: ANN001 - pipelines.deployment.DeploymentSummary
    """``medpipe deploy --flow``: the version now champion, its ONNX file, parity figures, server reload."""
    console.print(f"[green]champion[/] {s.model_name} v{s.version}: {s.onnx_path}")
    for key, value in s.parity.items():
        console.print(f"  {key} = {value}")
    console.print("running server reloaded" if s.server_reloaded else "no running server reloaded")


def print_served_deployments(console, url: str, served) -> None:  # noqa: ANN001 - list[ServedDeployment]
    """``medpipe schedule --list`` against a server: what the server really has, one row per deployment."""
    from rich.table import Table

    table = Table(title=f"deployments on {url}")
    for column in ("deployment", "status", "schedules", "automations (triggers)", "next runs"):
        table.add_column(column, overflow="fold")
    for d in served:
        table.add_row(
            d.name,
            "paused" if d.paused else "active",
            "\n".join(d.schedules) or "-",
            "\n".join(d.automations) or "-",
            "\n".join(d.next_runs) or "-",
        )
    console.print(
        table if served else f"no deployments on {url} (start `medpipe schedule`, or deploy infra/prefect.yaml)"
    )


def print_next_runs(console, planned, runs: dict) -> None:  # noqa: ANN001 - list[PlannedDeployment]
    """``medpipe schedule --list``: each deployment, its cron / event trigger and its next run times."""
    from rich.table import Table

    table = Table(title="medpipe deployments (params.yaml schedule:)")
    table.add_column("deployment (flow)", no_wrap=True)
    table.add_column("cron", no_wrap=True)
    table.add_column("also on event", overflow="fold")
    table.add_column("next runs", no_wrap=True)
    for d in planned:
        times = "\n".join(t.strftime("%a %Y-%m-%d %H:%M") for t in runs.get(d.name, []))
        cron = f"{d.cron} {d.timezone}" if d.cron else "-"
        table.add_row(f"{d.name}\n({d.flow})", cron, d.triggered_by or "-", times or "-")
    console.print(table)
