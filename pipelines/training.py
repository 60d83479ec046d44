"""training_flow: HPO -> final training -> ONNX export + parity -> operating point (validation) -> the one
evaluation of the served graph (test) -> Grad-CAM faithfulness (ROAD) -> registration -> promotion gate -> DVC
record."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.runtime import flow_run

from components.data.dataset import PreparedData, load_prepared
from components.deploy.stage import ONNX_NAME, deploy_model
from components.dvc_pipeline import record_training
from components.evaluation.evaluate import evaluate_served
from components.evaluation.faithfulness import explanation_faithfulness
from components.evaluation.outputs import log_to_run
from components.evaluation.seeds import evaluate_members, log_seed_report
from components.evaluation.served import stamp_operating_point
from components.registry.gate import evaluate_and_promote
from components.registry.model_card import download_model_card
from components.registry.preflight import preflight
from components.registry.register import register_model
from components.training.final import train_best
from medpipe.config import PipelineConfig
from monitoring.check import build_model_reference
from pipelines.data import data_flow
from pipelines.results import TrainingSummary
from pipelines.runtime import gpu_slot, load, publish, retry_transient, run_stage
from pipelines.summaries import training_markdown

preflight_task = task(preflight, name="pre-flight-checks")  # deterministic checks: never retried
# Training and registration are not idempotent (a retry would train or register again): no retries.
train_task = task(train_best, name="search-and-train")
export_task = task(deploy_model, name="onnx-export-and-parity")
reference_task = task(
    build_model_reference,
    name="drift-reference-profile",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_transient,
)
operating_point_task = task(stamp_operating_point, name="operating-point-on-validation")
evaluate_task = task(evaluate_served, name="evaluate-served-graph")
log_evaluation_task = task(
    log_to_run, name="log-evaluation", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient
)
seeds_task = task(evaluate_members, name="evaluate-seed-members")
log_seeds_task = task(
    log_seed_report, name="log-seed-variance", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient
)
faithfulness_task = task(explanation_faithfulness, name="explanation-faithfulness")
register_task = task(register_model, name="register-challenger")
gate_task = task(
    evaluate_and_promote, name="promotion-gate", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_transient
)
record_task = task(record_training, name="dvc-metrics-and-lock")
card_task = task(download_model_card, name="fetch-model-card", retries=2, retry_condition_fn=retry_transient)


@flow(name="training", log_prints=True)
def training_flow(
    params_path: str = "params.yaml",
    profile: str | None = None,
    overrides: list[str] | None = None,
    reason: str = "manual",
    prepared_path: str | None = None,
    data_version: str | None = None,
    config: PipelineConfig | None = None,
) -> TrainingSummary:
    """Search and train on the latest data version, register the model as challenger and gate it.

    Without ``prepared_path`` the data flow runs first, so scheduled and drift-triggered retraining
    picks up labelled data added since the last version.
    """
    cfg, settings = load(params_path, profile, overrides, config, reason=reason)
    print(f"training run started: reason={reason}")
    if prepared_path is None:
        prepared: PreparedData = data_flow(params_path, profile, overrides, config=cfg)
    else:
        prepared = load_prepared(Path(prepared_path), data_version=data_version)
    checked = run_stage(
        "preflight", preflight_task, prepared, settings, data=cfg.data, registry=cfg.registry, monitoring=cfg.monitoring
    )
    requested = cfg  # as params.yaml/-S/profile say: what the DVC record compares with params.yaml
    cfg = cfg.model_copy(update={"registry": checked.registry})  # positive_class resolved; config and data fit
    for note in checked.notes:
        print(note)
    # the state folder by model name: runs/<flow run> while training, v<N>/ once registered
    run_dir = settings.models_dir / cfg.registry.model_name / "runs" / (flow_run.get_id() or "local")

    with gpu_slot(settings):
        trained = run_stage(
            "search-and-train", train_task, cfg.for_training(), prepared, settings, out_dir=run_dir / "model"
        )
    best, parent = trained.best_params, trained.search_run_id
    final_cfg = cfg.with_overrides(best) if best else cfg
    export = run_stage(
        "export",
        export_task,
        trained.model_dir,
        run_dir / "onnx" / ONNX_NAME,
        prepared.path,
        cfg.export,
    )
    run_stage(
        "operating-point",
        operating_point_task,
        export.onnx_path,
        prepared.path,
        final_cfg.registry,
        final_cfg.export,
    )
    evaluation = run_stage(
        "evaluate",
        evaluate_task,
        export.onnx_path,
        prepared.path,
        registry=final_cfg.registry,
        export=final_cfg.export,
    )
    run_stage(
        "log-evaluation",
        log_evaluation_task,
        settings,
        trained.run_id,
        evaluation,
    )
    seeds = None  # train.seeds > 1 only: each member's served graph, mean +- sd
    if trained.members:
        seeds = run_stage(
            "seed-members",
            seeds_task,
            trained,
            prepared.path,
            registry=final_cfg.registry,
            export=final_cfg.export,
            train=final_cfg.train,
        )
        run_stage("log-seed-variance", log_seeds_task, settings, trained, seeds)
        print("\n".join([seeds.line(), *seeds.member_lines()]))
    run_stage(
        "reference",
        reference_task,
        export.onnx_path,
        prepared.path,
        cfg.monitoring,
        settings,
        run_id=trained.run_id,
        export=cfg.export,
    )
    faithfulness = run_stage(
        "faithfulness",
        faithfulness_task,
        trained.model_dir,
        prepared.path,
        final_cfg.registry.faithfulness_images,
    )
    registered = run_stage(
        "register",
        register_task,
        trained.model_dir,
        export.onnx_path,
        settings,
        registry=final_cfg.registry,
        lineage=final_cfg.lineage(),
        run_id=trained.run_id,
        data_version=prepared.data_version,
        parity=export.report,
        evaluation=evaluation,
        faithfulness=faithfulness,
    )
    decision = run_stage(
        "gate",
        gate_task,
        registered,
        prepared.path,
        settings,
        registry=final_cfg.registry,
        export=final_cfg.export,
        actor=f"prefect:{flow_run.get_id() or 'local'}",
        challenger=evaluation,
    )
    card = run_stage(
        "model-card",
        card_task,
        settings,
        trained.run_id,
        registered.version,
        settings.models_dir / registered.name / f"v{registered.version}",
    )
    dvc = run_stage(
        "dvc-record",
        record_task,
        settings,
        requested,
        Path(params_path),
        prepared.path,
        evaluation,
        version=registered.version,
        promoted=decision.promoted,
    )
    summary = TrainingSummary(
        data_version=prepared.data_version,
        prepared_path=str(prepared.path),
        run_id=trained.run_id,
        search_run_id=parent,
        best_params=best,
        test_metrics=evaluation.flat(),
        test_cis=evaluation.cis,
        operating_point=evaluation.operating_point.describe(),
        model_dir=str(trained.model_dir),
        onnx_path=str(export.onnx_path),
        parity_passed=export.passed,
        model_name=registered.name,
        version=registered.version,
        promoted=decision.promoted,
        champion=registered.version if decision.promoted else decision.champion_before,
        gate_reason=decision.reason,
        model_card=str(card),
        gate_markdown=decision.as_markdown(),
        dvc_note=dvc.note,
        seeds=seeds.line() if seeds is not None else "",
    )
    publish("training-summary", training_markdown(summary, settings), "Training, registration and gate decision")
    return summary
