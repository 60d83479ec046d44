"""Offline batch scoring: every image in a folder through the same ONNX session the server uses."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.models.inference import to_pixels
from components.serving.explain import load_explainer, write_explanations
from components.serving.images import InputError, decode_image
from components.serving.inference_log import InferenceLog
from components.serving.model_source import load_model
from components.serving.rows import log_rows
from medpipe.config import ExportConfig, ServingConfig
from medpipe.errors import DataError
from medpipe.imaging import EXTENSIONS
from medpipe.settings import Settings

SUFFIXES = EXTENSIONS  # every format the imaging contract decodes


@dataclass(frozen=True)
class BatchPrediction:
    out_csv: Path
    n_images: int
    n_failed: int
    model_name: str
    model_version: str
    request_id: str  # the inference-log request id of this run ("" when not logged)
    class_counts: dict[str, int]
    explain_dir: Path | None = None  # where the Grad-CAM overlays (.gradcam.png) and maps (.gradcam.npy) went


def predict_folder(
    folder: Path,
    out_csv: Path,
    model_uri: str,
    export_cfg: ExportConfig,
    serving_cfg: ServingConfig,
    settings: Settings,
    *,
    batch_size: int = 64,
    log: bool = True,
    explain_dir: Path | None = None,
) -> BatchPrediction:
    """Score every image file under ``folder`` (recursively) and write one CSV row per file.

    Files the server would refuse get a row with an ``error`` column instead of failing the run.
    With ``log``, predictions go to the inference log under one request id (``batch-<hex>``).
    With ``explain_dir``, each scored image also gets the Grad-CAM of its predicted class there (the same code and
    network as ``/v1/explain``: the served version's PyTorch flavour), at its path relative to ``folder`` plus
    ``.gradcam.png`` (overlay) and ``.gradcam.npy`` (raw map); the CSV gains their paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; pass a folder of PNG/JPEG/TIFF/BMP/.npy images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(SUFFIXES))}) under {folder}")
    model = load_model(model_uri, export_cfg, settings)
    explainer = None
    if explain_dir is not None:
        try:
            explainer = load_explainer(model)
        except InputError as err:
            raise DataError(f"--explain: {err.message}") from None
    pre = model.preprocessing
    names = pre.class_names
    request_id = f"batch-{uuid.uuid4().hex}" if log else ""
    inference_log = InferenceLog(settings.inference_log, keep_open=True) if log else None
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(names, 0)
    failed = 0
    with out_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        extra = ["gradcam_png", "gradcam_npy"] if explainer is not None else []
        writer.writerow(["file", "predicted_class", "confidence", *[f"p_{n}" for n in names], "error", *extra])
        for start in range(0, len(files), batch_size):
            chunk, decoded = [], []
            for path in files[start : start + batch_size]:
                rel = str(path.relative_to(folder))
                try:
                    decoded.append(decode_image(path.read_bytes(), rel, pre, max_pixels=serving_cfg.max_pixels))
                    chunk.append(rel)
                except InputError as err:
                    failed += 1
                    writer.writerow([rel, "", "", *[""] * len(names), f"{err.code}: {err.message}", *[""] * len(extra)])
            if not decoded:
                continue
            images = np.stack([d.array for d in decoded])
            probs, emb = model.run(to_pixels(images).numpy())
            decided = model.preprocessing.decide(probs)
            maps: list[list[str]] = [[] for _ in chunk]
            if explainer is not None:  # the map of the class written in the row
                written = write_explanations(explainer, images, decided, [explain_dir / rel for rel in chunk])
                maps = [[str(png), str(npy)] for png, npy in written]
            for rel, p, k, paths in zip(chunk, probs, decided, maps, strict=True):
                cls = names[int(k)]
                counts[cls] += 1
                writer.writerow([rel, cls, f"{p[k]:.6f}", *[f"{v:.6f}" for v in p], "", *paths])
            if inference_log is not None:
                inference_log.append(log_rows(request_id, model, chunk, decoded, probs, emb, first_index=start))
    if inference_log is not None:
        inference_log.close()
    return BatchPrediction(out_csv, len(files), failed, model.name, model.version, request_id, counts, explain_dir)
