"""The sections of the config tree (one pydantic model per ``params.yaml`` key); :mod:`medpipe.config`
assembles them into :class:`~medpipe.config.PipelineConfig` and loads it."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medpipe.imaging.policy import DecodePolicy
from medpipe.metrics.scores import Rule

# the networks components.models.registry builds (its table has these keys; tests/training/test_models.py checks)
ModelName = Literal["cnn", "resnet18", "resnet50", "efficientnet_b0", "convnext_tiny"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)


def _accepts_bool(annotation: Any) -> bool:
    """Whether a field's type takes a bool (``bool``, ``bool | None``, ``Any``...), not just a number."""
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(a, bool) for a in get_args(annotation))
    return any(_accepts_bool(a) for a in get_args(annotation))


def _kind(annotation: Any) -> str:
    text = str(annotation)
    return "whole number" if "int" in text and "float" not in text else "number" if "float" in text else "value"


class _Section(BaseModel):
    # No inf/nan anywhere (`-S train.lr=1e400` is inf), and no bool where a number is meant (`epochs: true`).
    # Frozen: a config is loaded once and passed down; a changed copy comes from ``with_overrides``.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and not _accepts_bool(field.annotation):
                    raise ValueError(f"{name} = {str(value).lower()} is a boolean; give a {_kind(field.annotation)}")
        return data


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


class ProjectConfig(_Section):
    name: str | None = Field(
        None,
        description="Names the MLflow experiment, Optuna study and Evidently project; null: from data.source.",
    )


class SplitConfig(_Section):
    val: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.15
    test: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.15
    seed: int = 42


class DataConfig(_Section):
    source: str = Field(
        "breastmnist",
        description="MedMNIST name (e.g. breastmnist), a .npz file, an ImageFolder tree, or a CSV manifest.",
    )
    image_size: Annotated[int, Field(ge=8, le=1024)] = 28
    channels: Literal[1, 3] = 1
    split: SplitConfig = SplitConfig()
    min_images_per_class: Annotated[int, Field(ge=1)] = 5
    on_invalid: Literal["fail", "skip-and-report"] = "fail"
    mixed_sizes: Literal["resize", "reject"] = "resize"
    class_names: list[str] | None = Field(None, description="Override class names (in label order).")
    decode: DecodePolicy = Field(
        DecodePolicy(), description="How 16-bit, float and DICOM pixels become 8-bit (saved with the model)."
    )


class AugmentConfig(_Section):
    hflip: Probability = 0.5
    vflip: Probability = 0.0
    rotate_degrees: Annotated[float, Field(ge=0, le=180)] = 10.0
    translate: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    scale: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    brightness: Annotated[float, Field(ge=0, le=1)] = 0.1
    contrast: Annotated[float, Field(ge=0, le=1)] = 0.1
    random_resized_crop: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="Minimum crop area fraction; 0 disables random resized crop."
    )
    mixup_alpha: Annotated[float, Field(ge=0)] = 0.0


class ModelConfig(_Section):
    name: ModelName = "cnn"
    small_input: bool = Field(True, description="3x3 stride-1 stem without max-pool, for small images.")
    dropout: Probability = 0.5
    init_weights: str | None = Field(
        None, description="Transfer learning: a state-dict file, 'torchvision', or models:/name@alias."
    )
    freeze_backbone_epochs: Annotated[int, Field(ge=0)] = Field(
        0, description="Staged unfreezing: train only the head for this many epochs first."
    )


class TrainConfig(_Section):
    epochs: Annotated[int, Field(ge=1)] = 30
    batch_size: Annotated[int, Field(ge=1)] = 128
    lr: PositiveFloat = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"
    grad_clip: Annotated[float, Field(ge=0)] = 1.0
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    channels_last: bool = True
    compile: bool = False
    early_stopping_patience: Annotated[int, Field(ge=0)] = 8
    seed: int = 42
    deterministic: bool = False
    imbalance: Literal["weighted_loss", "weighted_sampler", "none"] = "weighted_loss"
    image_size: Annotated[int, Field(ge=8, le=1024)] | None = Field(
        None, description="Train at this resolution (resize on device); None keeps data.image_size."
    )
    tta: bool = False
    kfold: Annotated[int, Field(ge=0)] = Field(0, description="k>=2 runs stratified k-fold CV; 0 disables.")
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int | Literal["auto"] = "auto"
    num_nodes: Annotated[int, Field(ge=1)] = 1
    strategy: str = "auto"
    num_workers: Annotated[int, Field(ge=0)] = 0
    stream_above_mb: Annotated[float, Field(ge=0)] = Field(
        4096.0,
        description="Decoded size (MB, all splits) above which training streams shards through num_workers "
        "DataLoader workers instead of holding the data in (GPU) memory.",
    )
    cpu_threads: Annotated[int, Field(ge=1)] | None = Field(
        None, description="torch threads when training on CPU; None keeps torch's default (1 is fastest on a busy box)."
    )
    seeds: Annotated[int, Field(ge=1, le=32)] = Field(
        1, description="Train the final config this many times (seeds seed, seed+1, ...); report mean +- sd."
    )
    ensemble: bool = Field(
        False, description="Export the seeds' members as one ONNX graph (mean probabilities); needs seeds >= 2."
    )

    @field_validator("kfold")
    @classmethod
    def _kfold_not_one(cls, v: int) -> int:
        if v == 1:
            raise ValueError("kfold=1 is not cross-validation; use 0 (off) or >= 2")
        return v

    @model_validator(mode="after")
    def _ensemble_needs_seeds(self) -> TrainConfig:
        if self.ensemble and self.seeds < 2:
            raise ValueError("train.ensemble=true averages several seeds: set train.seeds >= 2 (e.g. 3)")
        return self


class SearchParam(_Section):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical parameter needs a non-empty 'choices' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"{self.type} parameter needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low={self.low} is greater than high={self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"log scale needs low > 0, got low={self.low}")
        return self


# Search-space keys are dotted config paths ("train.lr", "model.name", "augment.rotate_degrees").
SEARCHABLE_SECTIONS = ("model", "train", "augment")


class SearchConfig(_Section):
    enabled: bool = True
    n_trials: Annotated[int, Field(ge=1)] = 40
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    n_jobs: Annotated[int, Field(ge=1)] = Field(1, description="Parallel trials in this process.")
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_startup_trials: Annotated[int, Field(ge=0)] = Field(3, description="Trials before the pruner acts.")
    pruner_warmup_epochs: Annotated[int, Field(ge=0)] = Field(2, description="Epochs of a trial before pruning.")
    prune_below: Probability | None = Field(
        None, description="Also prune a trial whose val AUC is below this after the warm-up epochs."
    )
    metric: Literal["val_auc"] = "val_auc"
    study_name: str | None = Field(
        None, description="Defaults to '<project.name>-search-<hash of space, fixed params and data>'."
    )
    space: dict[str, SearchParam] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_space(self) -> SearchConfig:
        if self.enabled and not self.space:
            raise ValueError("search.enabled is true but search.space is empty: declare at least one parameter")
        for key in self.space:
            section, _, field = key.partition(".")
            if section not in SEARCHABLE_SECTIONS or not field:
                raise ValueError(
                    f"search.space key {key!r} must be '<section>.<field>' with section in {SEARCHABLE_SECTIONS}"
                )
        return self


class RegistryConfig(_Section):
    model_name: str | None = Field(None, description="The registered model; null: '<project.name>-classifier'.")
    primary_metric: Literal["auc", "accuracy", "balanced_accuracy"] = "auc"
    min_primary: Probability = 0.75
    positive_class: str | int | None = Field(
        None,
        description="Class name or index whose sensitivity is reported and thresholded; null: the rarer training "
        "class of binary data, none (argmax, macro AUC) for multi-class data.",
    )
    operating_point: Rule = Field(
        "sensitivity", description="How the decision threshold is chosen on validation (binary models)."
    )
    operating_target: Probability = Field(0.9, description="The specificity or sensitivity the threshold must reach.")
    tolerance: Annotated[float, Field(ge=0)] = Field(
        0.01, description="Promotion: the paired 95% CI lower bound of the AUC gain must be above -tolerance."
    )
    min_gain: Annotated[float, Field(ge=0)] = Field(
        0.005, description="Promotion: the AUC gain over the champion (point estimate) must be above this."
    )
    min_sensitivity: Probability = Field(0.0, description="Floor: test sensitivity at the operating point.")
    max_ece: Annotated[float, Field(gt=0)] = 0.2
    subgroup_min_auc: Probability | None = Field(None, description="Floor: AUC in every subgroup with enough cases.")
    subgroup_min_sensitivity: Probability | None = Field(None, description="Floor: sensitivity in every subgroup.")
    subgroup_min_n: Annotated[int, Field(ge=1)] = Field(20, description="Subgroups smaller than this are not floored.")
    bootstrap_samples: Annotated[int, Field(ge=100)] = 1000
    faithfulness_images: Annotated[int, Field(ge=0, le=512)] = Field(
        32, description="Test images on which registration scores the Grad-CAM maps (ROAD); 0: not scored."
    )
    retries: Annotated[int, Field(ge=0, le=10)] = Field(3, description="Retries of idempotent remote MLflow calls.")
    retry_backoff_s: Annotated[float, Field(ge=0)] = Field(1.0, description="First retry delay; doubles each time.")
    intended_use: str = "Research decision support for medical image classification; not for unsupervised diagnosis."
    out_of_scope: str = "Images from other modalities, body parts, or scanners than the training data."
    limitations: str = "Trained on a small public dataset; performance on local data must be validated."


class ExportConfig(_Section):
    parity_atol: PositiveFloat = 1e-4
    quantize: Literal["none", "fp16", "int8-dynamic", "int8-static"] = "none"
    max_accuracy_drop: Probability = 0.01
    providers: list[Literal["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]] | None = (
        Field(None, description="None: the best usable of TensorRT -> CUDA -> CPU.")
    )
    require_gpu: bool = False
    intra_op_threads: Annotated[int, Field(ge=0)] = 0
    inter_op_threads: Annotated[int, Field(ge=0)] = 0
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"


class CanaryConfig(_Section):
    """A second model beside the champion: ``canary`` answers ``share`` of requests with it; ``shadow`` scores
    every request with both and answers with the champion (the challenger's rows are logged as ``shadow``)."""

    alias: str = "challenger"
    uri: str | None = Field(None, description="A model URI instead of the served registered model's @alias.")
    share: Probability = 0.1
    mode: Literal["canary", "shadow"] = "canary"


class ServingConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    max_request_bytes: Annotated[int, Field(ge=1024)] = 20 * 1024 * 1024
    max_pixels: Annotated[int, Field(ge=64)] = 4096 * 4096
    max_images_per_request: Annotated[int, Field(ge=1)] = 64
    max_request_pixels: Annotated[int, Field(ge=64)] = Field(
        4 * 4096 * 4096, description="Pixels over all images of one request (checked from headers before decoding)."
    )
    max_decode_s: PositiveFloat = Field(10.0, description="Decoding time one request may use; then 413.")
    reload_interval_s: Annotated[float, Field(gt=0)] = 10.0
    max_batch: Annotated[int, Field(ge=1)] = 32
    max_wait_ms: Annotated[float, Field(ge=0)] = 5.0
    workers: Annotated[int, Field(ge=1, description="uvicorn worker processes (metrics summed across them).")] = 1
    require_api_key: bool | None = Field(
        None, description="null: auth is on exactly when MEDPIPE_API_KEYS is set; true/false must agree with the keys."
    )
    allow_unauthenticated: bool = Field(False, description="Allow serving a non-loopback address with no API keys.")
    store_images: bool = False
    log_buffer_rows: Annotated[int, Field(ge=0)] = Field(
        10_000, description="Rows kept in memory while the inference log cannot be written; then requests get 503."
    )
    canary: CanaryConfig | None = None
    explain_max_pixels: Annotated[int, Field(ge=64)] = 2048 * 2048
    explain_concurrency: Annotated[
        int, Field(ge=1, description="Grad-CAM runs at once over all workers of one `medpipe serve`; more: 429.")
    ] = 1
    explain_rate_per_minute: Annotated[int, Field(ge=0)] = Field(
        30,
        description="/v1/explain requests per client (API key, else address) in any minute, over all workers of one "
        "`medpipe serve` together; more: 429 with Retry-After. 0: no limit.",
    )


class RetrainConfig(_Section):
    enabled: bool = True
    cooldown_hours: Annotated[float, Field(ge=0)] = 12.0
    max_runs_per_day: Annotated[int, Field(ge=0)] = 2


class MonitoringConfig(_Section):
    window_hours: Annotated[float, Field(gt=0)] = 24.0
    min_window: Annotated[int, Field(ge=5)] = 50
    alpha: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.05, description="False-alarm rate of one check: split (Bonferroni) over the three test families."
    )
    permutations: Annotated[int, Field(ge=99)] = Field(500, description="Permutations of the embedding MMD test.")
    mmd_max_rows: Annotated[int, Field(ge=20)] = Field(
        300, description="Rows per side of the MMD test (a random subset beyond it: same validity, bounded cost)."
    )
    reference_splits: list[str] = Field(
        default_factory=lambda: ["val"],
        description="Splits the drift reference and the ATC estimate are built from: images the model did not fit.",
    )
    pca_components: Annotated[int, Field(ge=2, le=64)] = 8
    accuracy_drop: Probability = Field(
        0.1, description="Drop of the (estimated or real) accuracy below the reference that counts as a warning."
    )
    window_size: Annotated[int, Field(ge=5)] = Field(
        150, description="Rows in a 'last N predictions' window (benchmarks, --last); time windows use window_hours."
    )
    retrain: RetrainConfig = RetrainConfig()


class SlackChannel(_Section):
    enabled: bool = False


class WebhookChannel(_Section):
    enabled: bool = False


class EmailChannel(_Section):
    enabled: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    sender: str = "medpipe@localhost"
    recipients: list[str] = Field(default_factory=list)
    ca_file: str | None = Field(None, description="CA bundle to verify the SMTP server's certificate (private CA).")


class AlertsConfig(_Section):
    slack: SlackChannel = SlackChannel()
    webhook: WebhookChannel = WebhookChannel()
    email: EmailChannel = EmailChannel()
    cooldown_minutes: Annotated[float, Field(ge=0)] = 360.0
    retries: Annotated[int, Field(ge=0)] = 3
    backoff_s: Annotated[float, Field(ge=0)] = 1.0


class ScheduleConfig(_Section):
    monitoring_cron: str = "0 2 * * *"
    training_cron: str = "0 3 * * 0"
    timezone: str = "UTC"

    @field_validator("monitoring_cron", "training_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value) or any(part.lower() in ("r", "h") for part in value.split()):
            raise ValueError("not a cron expression: five fields, minute hour day month weekday (e.g. '0 2 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone (e.g. UTC, Europe/Paris)") from None
        return value


class UIConfig(_Section):
    host: str = "127.0.0.1"
    mlflow_port: Annotated[int, Field(ge=1, le=65535)] = 5000
    evidently_port: Annotated[int, Field(ge=1, le=65535)] = 8001
