"""One drift check end to end: :func:`run_drift_check` is the one function that ``medpipe monitor`` and the
monitoring flow both call.

champion + its reference -> window -> tests (verdict) -> retrain decision -> report -> alert (which links
the report and states the retrain decision) -> history (Evidently workspace, MLflow).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from medpipe.config import AlertsConfig, ExportConfig, MonitoringConfig, RegistryConfig, ServingConfig
from medpipe.errors import RegistryError
from medpipe.imaging import ImageSpec
from medpipe.settings import Settings
from monitoring.alerts import AlertOutcome
from monitoring.reference import EmbedFn, ReferenceProfile
from monitoring.retrain import RetrainDecision
from monitoring.summary import DriftSummary

REFERENCE_DIR = "reference"
RETRAIN_STATE = "retrain-state.json"


@dataclass
class Window:
    """The rows to check, their pixels when the source keeps them (folder, split), and where they came from."""

    frame: pd.DataFrame
    images: np.ndarray | None
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): files that could not be decoded


@dataclass
class CheckResult:
    summary: DriftSummary
    retrain: RetrainDecision
    alert: AlertOutcome | None
    paths: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files of the window that could not be decoded


@dataclass
class Champion:
    """The model under watch: how to embed images, its reference profile, and its version."""

    embed_fn: EmbedFn
    reference: ReferenceProfile
    version: str
    uri: str
    spec: ImageSpec | None = None  # the model's imaging spec (preprocessing record); None: the reference's size


log = logging.getLogger(__name__)


def onnx_embed_fn(loaded) -> EmbedFn:
    """uint8 (N, H, W, C) -> (probs, embeddings) through a loaded ONNX model (serving's ``LoadedModel``)."""

    def embed(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out_p, out_e = [], []
        for start in range(0, len(images), 256):
            pixels = np.ascontiguousarray(images[start : start + 256].transpose(0, 3, 1, 2), dtype=np.float32)
            p, e = loaded.run(pixels)
            out_p.append(p)
            out_e.append(e)
        return np.concatenate(out_p), np.concatenate(out_e)

    return embed


def find_reference(model_dir: Path, settings: Settings, run_id: str | None = None) -> Path:
    """The reference profile stored with a model: ``<model>/reference``, beside it, or the run's artifact."""
    for candidate in (Path(model_dir) / REFERENCE_DIR, Path(model_dir).parent / REFERENCE_DIR):
        if (candidate / "profile.json").is_file():
            return candidate
    if run_id:
        import mlflow

        dest = settings.models_dir / "references" / run_id
        if (dest / REFERENCE_DIR / "profile.json").is_file():
            return dest / REFERENCE_DIR
        try:
            got = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_DIR, dst_path=str(dest), tracking_uri=settings.tracking_uri
            )
            return Path(got)
        except Exception as err:  # noqa: BLE001
            raise RegistryError(f"the model's run {run_id} has no '{REFERENCE_DIR}' artifact ({err})") from None
    raise RegistryError(
        f"no reference profile found for the model in {model_dir}; pass --reference DIR "
        "(built by monitoring.reference.build_reference at training time)"
    )


def load_champion(
    settings: Settings,
    *,
    registry: RegistryConfig,
    export: ExportConfig,
    model_uri: str | None = None,
    reference_dir: Path | None = None,
) -> Champion:
    """Load the champion ONNX model of ``registry.model_name`` (or ``model_uri``) and the reference profile that
    came with it."""
    from components.registry.store import parse_registry_uri, resolve_version
    from components.serving.model_source import load_model

    uri = model_uri or f"models:/{registry.model_name}@champion"
    loaded = load_model(uri, export, settings)
    run_id = resolve_version(uri, settings).run_id if parse_registry_uri(uri) else None
    ref_dir = Path(reference_dir) if reference_dir else find_reference(loaded.source_dir, settings, run_id)
    reference = ReferenceProfile.load(ref_dir)
    return Champion(onnx_embed_fn(loaded), reference, str(loaded.version), uri, loaded.preprocessing.spec)


def current_window(
    champion: Champion,
    cfg: MonitoringConfig,
    settings: Settings,
    images_dir: Path | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    last: int | None = None,
    *,
    serving: ServingConfig,
) -> Window:
    """The window to check: a folder of images (each at most ``serving.max_pixels``, as the server takes them),
    or inference-log rows (default: the last ``cfg.window_hours``)."""
    from monitoring.window import load_image_folder, read_log_window, window_from_images

    ref = champion.reference
    if images_dir is not None:
        spec = champion.spec or ImageSpec(ref.image_size, ref.channels)
        folder = load_image_folder(Path(images_dir), spec, serving.max_pixels)
        for name, reason in folder.skipped:
            log.warning("skipped %s: %s", Path(images_dir) / name, reason)
        frame = window_from_images(folder.images, champion.embed_fn, ref, folder.sizes, folder.channels)
        return Window(frame, folder.images, f"folder {images_dir}", folder.skipped)
    if since is None and last is None:
        since = datetime.now(UTC) - timedelta(hours=cfg.window_hours)
    frame = read_log_window(settings.inference_log, ref, since, until)
    if "model_version" in frame and champion.version:  # rows served by the champion, when the log says so
        mine = frame["model_version"].astype(str) == champion.version
        if mine.any():
            frame = frame[mine | frame["model_version"].isna()]
    what = f"last {last}" if last else f"{since.isoformat(timespec='seconds') if since else '...'} to {until or 'now'}"
    return Window(frame.tail(last) if last else frame, None, f"inference log {settings.inference_log} ({what})")


def build_model_reference(
    onnx_path: Path,
    prepared_dir: Path,
    cfg: MonitoringConfig,
    settings: Settings,
    run_id: str | None = None,
    *,
    export: ExportConfig,
) -> Path:
    """Build the reference profile through the exported graph itself and store it with the model:
    beside the ONNX file and, with ``run_id``, as the run's ``reference/`` artifact (so a registered
    champion brings its own reference)."""
    from components.serving.model_source import load_model
    from monitoring.reference import build_reference

    loaded = load_model(str(Path(onnx_path).parent), export, settings)
    op = loaded.preprocessing.operating_point  # the served decision: predicted-class counts use its threshold
    profile = build_reference(Path(prepared_dir), onnx_embed_fn(loaded), cfg, operating_point=op)
    out = Path(onnx_path).parent / REFERENCE_DIR
    profile.save(out)
    if run_id:
        from components.tracking import mlflow_client

        mlflow_client(settings).log_artifacts(run_id, str(out), REFERENCE_DIR)
    return out


def split_window(champion: Champion, prepared_dir: Path, split: str = "test", keep_images: int = 256) -> Window:
    """A window made of one split of a prepared dataset (the demo's first check: held-out test images), read in
    batches; the report keeps the first ``keep_images`` images' pixels (thumbnails, intensity histogram)."""

    from components.data.batches import split_batches
    from monitoring.window import window_from_images

    data = split_batches(Path(prepared_dir), split)
    names = champion.reference.class_names
    frames, rows = [], []
    shown = np.zeros((min(keep_images, len(data)), *data.image_shape), dtype=np.uint8)
    for b in data:
        labels = [names[i] for i in b.labels]
        frames.append(window_from_images(b.images, champion.embed_fn, champion.reference, labels=labels))
        rows.append(b.positions)
        keep = b.positions < len(shown)
        shown[b.positions[keep]] = b.images[keep]
    if not frames:
        frame = window_from_images(shown, champion.embed_fn, champion.reference, labels=[])
    else:
        order = np.argsort(np.concatenate(rows), kind="stable")
        frame = pd.concat(frames, ignore_index=True).iloc[order].reset_index(drop=True)
    return Window(frame, shown, f"split {split} of {prepared_dir}")


def run_drift_check(
    cfg: MonitoringConfig,
    settings: Settings,
    window_of: Callable[[Champion], Window],
    experiment: str,
    champion: Champion,
    *,
    alerts: AlertsConfig | None,
    project_name: str,
    start_retrain: Callable[[str], str] | None = None,
) -> CheckResult:
    """One check of ``champion`` (:func:`load_champion`): verdict, retrain decision (launched through
    ``start_retrain`` when given), report, alert through the ``alerts`` channels (None: no alert), history
    (the Evidently project ``project_name``, the MLflow ``experiment``). ``window_of(champion)`` builds the
    window (:func:`current_window`, :func:`split_window`)."""
    from monitoring.alerts import send_alerts
    from monitoring.drift import compute_drift
    from monitoring.outputs import record_history, write_report_files
    from monitoring.retrain import decide_retrain

    window = window_of(champion)
    summary = compute_drift(champion.reference, window.frame, cfg, champion.version, window.source)
    retrain = decide_retrain(summary, cfg.retrain, settings.home / RETRAIN_STATE, start_retrain)
    write_report_files(summary, settings.reports, champion.reference, window.frame, window.images)
    outcome = send_alerts(summary, alerts, settings, retrain=retrain) if alerts is not None else None
    alerted = outcome is not None and outcome.alert is not None
    paths = record_history(summary, settings, project_name, experiment, alerted)
    return CheckResult(summary, retrain, outcome, paths, window.skipped)
