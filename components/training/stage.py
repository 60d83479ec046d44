"""DVC stage entry points (thin): ``python -m components.training.stage train|evaluate``.

train:    params.yaml + data/prepared -> data/models/current (model folder) + data/metrics/train.json
evaluate: data/models/current + data/prepared test split -> data/metrics/test.json + data/plots/*
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PREPARED = Path("data/prepared")
MODEL_DIR = Path("data/models/current")
METRICS = Path("data/metrics")
PLOTS = Path("data/plots")


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def train(params: Path = Path("params.yaml")) -> None:
    from components.data.dataset import load_prepared
    from components.training.search import train_best
    from medpipe.config import load_config
    from medpipe.settings import prepare_environment

    result = train_best(load_config(params), load_prepared(PREPARED), prepare_environment(), out_dir=MODEL_DIR)
    _write_json(
        METRICS / "train.json",
        {"val": result.val_metrics, "best_params": result.best_params, "run_id": result.run_id,
         "search_run_id": result.search_run_id},
    )  # fmt: skip


def evaluate() -> None:
    from components.data.dataset import load_split
    from components.training import plots
    from components.training.evaluate import evaluate_model_dir

    ev = evaluate_model_dir(MODEL_DIR, load_split(PREPARED, "test"))
    _write_json(METRICS / "test.json", ev.metrics)
    PLOTS.mkdir(parents=True, exist_ok=True)
    split = load_split(PREPARED, "test")
    curves = plots.roc_curves(ev.probs, split.labels, ev.class_names)
    rows = [
        {"class": c, "fpr": f, "tpr": t}
        for c, pts in curves.items()
        for f, t in zip(pts["fpr"], pts["tpr"], strict=True)
    ]
    _write_json(PLOTS / "roc.json", {"roc": rows})
    names = ev.class_names
    pairs = zip(split.labels, ev.probs.argmax(1), strict=True)
    cm_rows = [{"actual": names[i], "predicted": names[j]} for i, j in pairs]
    _write_json(PLOTS / "confusion.json", {"confusion": cm_rows})
    plots.roc_png(curves, PLOTS / "roc.png", ev.metrics["auc"])
    plots.confusion_matrix_png(ev.confusion, names, PLOTS / "confusion_matrix.png")


def main(argv: list[str]) -> None:
    commands = {"train": train, "evaluate": evaluate}
    if len(argv) != 1 or argv[0] not in commands:
        sys.exit(f"usage: python -m components.training.stage {{{'|'.join(commands)}}}")
    commands[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
