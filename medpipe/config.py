"""The one validated config tree, loaded from ``params.yaml`` (+ profile + ``-S`` overrides).

Every tunable lives here. Locations and secrets live in :mod:`medpipe.settings` instead.
Load once with :func:`load_config`; hand each stage only its own sub-model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path, PurePath
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medpipe.config_sections import (  # noqa: F401 - the section models are part of this module's API
    MODEL_NAMES,
    SEARCHABLE_SECTIONS,
    AlertsConfig,
    AugmentConfig,
    CanaryConfig,
    DataConfig,
    EmailChannel,
    ExportConfig,
    ModelConfig,
    MonitoringConfig,
    PositiveFloat,
    Probability,
    ProjectConfig,
    RegistryConfig,
    RetrainConfig,
    ScheduleConfig,
    SearchConfig,
    SearchParam,
    ServingConfig,
    SlackChannel,
    SplitConfig,
    TrainConfig,
    UIConfig,
    WebhookChannel,
    _Section,
)
from medpipe.errors import MedpipeError

DEFAULT_PARAMS = Path("params.yaml")
SERVICES_FILE = "services.yaml"  # next to the params file: the settings no pipeline stage reads (not DVC-tracked)
PROFILES_FILE = "profiles.yaml"  # next to the params file: named overrides (DVC tracks the active one)


_C = TypeVar("_C", bound=BaseModel)


class ConfigError(MedpipeError, ValueError):
    """A params file or override that does not validate; the message names key, value and what is allowed."""


class Lineage(BaseModel):
    """What a run is made from, beyond the section a stage reads: it names the run and fills its lineage tags.

    Built once from the whole config (:meth:`PipelineConfig.lineage`) by the entry point and handed to the stages
    that log runs (:mod:`components.tracking`, registration): they never see the whole tree. Training builds its
    runs' lineage from its own view (:meth:`TrainingConfig.lineage`).
    """

    model_config = ConfigDict(frozen=True)

    project: str  # project.name
    dataset: str  # data.source
    model: str  # model.name
    profile: str | None  # the profile applied on load
    params_hash: str  # the params_hash() of the config it was built from: every tunable, or the training sections
    params: dict[str, Any]  # the model, train and augment sections (logged on a registration run of its own)


class PipelineConfig(_Section):
    """The whole ``params.yaml`` (``profiles`` excluded; ``profile`` is the one applied)."""

    profile: str | None = Field(None, description="The profile applied on load (names runs); set by load_config.")

    project: ProjectConfig = ProjectConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    search: SearchConfig = SearchConfig(enabled=False)
    registry: RegistryConfig = RegistryConfig()
    export: ExportConfig = ExportConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    alerts: AlertsConfig = AlertsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    ui: UIConfig = UIConfig()

    @model_validator(mode="before")
    @classmethod
    def _derive_names(cls, raw: Any) -> Any:
        """project.name and registry.model_name default to names derived from the dataset (``data.source``)."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)

        def section(key: str) -> dict[str, Any]:
            node = raw.get(key)
            return dict(node) if isinstance(node, dict) else (node.model_dump() if node is not None else {})

        data, project, registry = section("data"), section("project"), section("registry")
        if project.get("name") is None:
            project["name"] = dataset_name(str(data.get("source") or "breastmnist"))
        if registry.get("model_name") is None:
            registry["model_name"] = f"{project['name']}-classifier"
        raw["project"], raw["registry"] = project, registry
        return raw

    def params_hash(self) -> str:
        """A short, stable hash of every tunable (tagged on registered versions for lineage)."""
        return _hash(self)

    def lineage(self) -> Lineage:
        """The run-naming and lineage view of this config (see :class:`Lineage`)."""
        return _lineage(self)

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> PipelineConfig:
        """Return a validated copy with ``key.path=value`` overrides applied."""
        raw = self.model_dump(mode="json")
        apply_overrides(raw, overrides)
        return _validate(raw, "override")

    def for_training(self) -> TrainingConfig:
        """The training view: the sections search and training read (see :class:`TrainingConfig`)."""
        return TrainingConfig(profile=self.profile, **{name: getattr(self, name) for name in TRAINING_SECTIONS})


# What components/training reads: the search space spans model/train/augment, the study name hashes data,
# runs are named after project and profile.
TRAINING_SECTIONS = ("project", "data", "augment", "model", "train", "search")


class TrainingConfig(_Section):
    """The frozen view of the config that search and training take (built by :meth:`PipelineConfig.for_training`).

    Its :meth:`params_hash` covers these sections only, so a change to the registry, serving or monitoring
    sections does not change a training run's key; :meth:`with_overrides` takes the search's dotted keys
    (``train.lr``, ``model.dropout``) and rejects keys of other sections.
    """

    profile: str | None = Field(None, description="The profile the config was loaded with (names runs).")
    project: ProjectConfig
    data: DataConfig
    augment: AugmentConfig
    model: ModelConfig
    train: TrainConfig
    search: SearchConfig

    def params_hash(self) -> str:
        """A short, stable hash of the training sections (run keys, the runs' lineage tag)."""
        return _hash(self)

    def lineage(self) -> Lineage:
        """The run-naming and lineage view of training's runs (its ``params_hash`` is the training sections')."""
        return _lineage(self)

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> TrainingConfig:
        """Return a validated copy with ``key.path=value`` overrides applied (training sections only)."""
        pairs = dict(overrides) if isinstance(overrides, dict) else dict(map(parse_override, overrides))
        for key in pairs:
            if key.partition(".")[0] not in ("profile", *TRAINING_SECTIONS):
                raise ConfigError(
                    f"override {key}: training reads only {', '.join(TRAINING_SECTIONS)}; "
                    "apply it to the whole config (PipelineConfig.with_overrides) instead"
                )
        raw = self.model_dump(mode="json")
        apply_overrides(raw, pairs)
        return _validated(TrainingConfig, raw, "override")


def _hash(config: BaseModel) -> str:
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _lineage(cfg: PipelineConfig | TrainingConfig) -> Lineage:
    return Lineage(
        project=str(cfg.project.name),
        dataset=cfg.data.source,
        model=cfg.model.name,
        profile=cfg.profile,
        params_hash=cfg.params_hash(),
        params=cfg.model_dump(mode="json", include={"model", "train", "augment"}),
    )


_GENERIC_STEMS = frozenset({"labels", "manifest", "data", "dataset", "train", "images", "index", "metadata"})


def dataset_name(source: str) -> str:
    """A short name for a dataset from ``data.source``: the MedMNIST name, a file's stem or a folder's name
    (a CSV with a generic name like labels.csv takes its folder's name), lower-case with dashes."""
    path = PurePath(source.strip().rstrip("/\\") or "dataset")
    suffix = path.suffix.lower()
    stem = path.stem if suffix in (".npz", ".csv") else path.name
    if suffix == ".csv" and stem.lower() in _GENERIC_STEMS and path.parent.name:
        stem = path.parent.name
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "dataset"


def parse_override(item: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ``("train.epochs", 3)``; the value is parsed as YAML."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form key.path=value (e.g. -S train.epochs=3)")
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> None:
    """Set ``key.path=value`` overrides (strings, or a dict of dotted keys) in a raw config mapping, in place."""
    pairs = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    for key, value in pairs:
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part) if isinstance(node, dict) else None
            if child is None and isinstance(node, dict) and part in node:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}={value!r}: {part!r} is not a config section")
            node = child
        node[leaf] = value


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see params.yaml for the allowed keys)"
        elif e["type"] == "literal_error":
            msg = f"not allowed; {msg.lower()}"
        lines.append(f"  {key}{shown}: {msg}")
    return "\n".join(lines)


def _validate(raw: dict[str, Any], source: str) -> PipelineConfig:
    return _validated(PipelineConfig, raw, source)


def _validated(model: type[_C], raw: dict[str, Any], source: str) -> _C:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def read_params(path: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The raw mapping in a params file (profiles included)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found; run from the project root or pass --params PATH")
    return _read_mapping(path)


def read_services(params_path: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The raw mapping in ``services.yaml`` next to ``params_path`` (empty when there is none: defaults apply)."""
    path = Path(params_path).with_name(SERVICES_FILE)
    return _read_mapping(path) if path.is_file() and path.read_text().strip() else {}


def read_profiles(params_path: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The named overrides in ``profiles.yaml`` next to ``params_path`` (empty when there is none)."""
    path = Path(params_path).with_name(PROFILES_FILE)
    return _read_mapping(path) if path.is_file() and path.read_text().strip() else {}


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, section by section (``over`` wins on a key both set)."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not valid YAML: {err}") from None
    if raw is None:
        raise ConfigError(f"params file {path} is empty; copy the project's params.yaml and edit it")
    if not isinstance(raw, dict):
        raise ConfigError(f"params file {path} must hold a mapping of sections, got {type(raw).__name__}")
    return raw


def load_config(
    path: Path | str = DEFAULT_PARAMS,
    overrides: list[str] | dict[str, Any] | None = None,
    profile: str | None = None,
) -> PipelineConfig:
    """Load and validate ``params.yaml`` (over ``services.yaml`` beside it), then a named profile, then ``-S``
    overrides (last wins).

    ``profile`` defaults to the file's own top-level ``profile:`` key (what ``dvc repro`` runs); an
    override ``profile=NAME`` (``dvc exp run -S profile=full``) picks another one the same way.
    """
    services = read_services(Path(path))
    raw = _merged(services, copy.deepcopy(read_params(Path(path))))
    if "profiles" in services:
        raise ConfigError(f"profiles belong in {path} (DVC tracks them), not in {Path(path).with_name(SERVICES_FILE)}")
    source = f"{path} + {SERVICES_FILE}" if services else str(path)
    profiles = {**read_profiles(Path(path)), **(raw.pop("profiles", {}) or {})}
    pairs = dict(overrides) if isinstance(overrides, dict) else dict(map(parse_override, overrides or []))
    profile = pairs.pop("profile", None) or profile or raw.get("profile")
    raw["profile"] = profile
    _validate(raw, source)  # the base files on their own: a profile must not hide an invalid base value
    if profile:
        if profile not in profiles:
            raise ConfigError(
                f"profile {profile!r} is not defined in {Path(path).with_name(PROFILES_FILE)} or {path}; "
                f"defined profiles: {sorted(profiles) or 'none'}"
            )
        apply_overrides(raw, profiles[profile] or {})
    apply_overrides(raw, pairs)
    return _validate(raw, source + (f" (profile {profile})" if profile else ""))
