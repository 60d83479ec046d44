"""DVC stage entry point (thin): ``python -m components.training.stage train``.

train: params.yaml + data/prepared -> data/models/current (model folder) + data/metrics/train.json (val only:
the test split is evaluated once, on the exported graph, by ``python -m components.evaluation.stage``)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PREPARED = Path("data/prepared")
MODEL_DIR = Path("data/models/current")
METRICS = Path("data/metrics")


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


def main(argv: list[str]) -> None:
    commands = {"train": train}
    if len(argv) != 1 or argv[0] not in commands:
        sys.exit(f"usage: python -m components.training.stage {{{'|'.join(commands)}}}")
    commands[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
