"""The DVC side of the training flow: one pipeline, whichever front door started it.

``dvc.yaml``'s ``train`` stage runs the training flow (``medpipe train --prepared data/prepared``). When
``medpipe run`` runs the same flow, this module leaves the same trace DVC would: the metrics and plots
files the stage declares (``dvc metrics show``, ``dvc plots show``) and the stage's entry in
``dvc.lock`` (``dvc status`` up to date) -- but only when the run used exactly the params.yaml values the
stage lists. A run with ``-S`` overrides or another profile writes its metrics and says why it is not
recorded (``dvc exp run -S ...`` records it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from components.evaluation.evaluate import EvaluationResult
    from medpipe.config import PipelineConfig
    from medpipe.settings import Settings

TRAIN_STAGE = "train"
METRICS = Path("data/metrics/model.json")
ROC = Path("data/plots/roc.json")
CONFUSION = Path("data/plots/confusion.json")
PREPARED = Path("data/prepared")


@dataclass(frozen=True)
class StageRecord:
    """Whether a run of the training flow was recorded as the ``train`` stage in dvc.lock, and why not."""

    recorded: bool
    note: str


def stage_params(project_dir: Path, stage: str = TRAIN_STAGE) -> list[str]:
    """The params.yaml keys ``dvc.yaml`` lists for ``stage`` (``profile`` and the profile entry left out)."""
    path = Path(project_dir) / "dvc.yaml"
    if not path.is_file():
        return []
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
    keys = (stages.get(stage) or {}).get("params") or []
    return [k for k in keys if isinstance(k, str) and k != "profile" and not k.startswith("profiles.")]


def _lookup(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def differences(effective: PipelineConfig, recorded: PipelineConfig, keys: list[str]) -> list[str]:
    """The listed keys whose effective value differs from params.yaml's (``train.epochs=3``, ...)."""
    eff, rec = effective.model_dump(mode="json"), recorded.model_dump(mode="json")
    out: list[str] = []
    for key in keys:
        a, b = _lookup(eff, key), _lookup(rec, key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}={a.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(f"{key}={a!r}")
    return out


def write_outputs(project_dir: Path, evaluation: EvaluationResult, *, version: str, promoted: bool) -> list[Path]:
    """Write the stage's metrics (the served graph's test figures with CIs, registered version, gate outcome) and
    plots (ROC, confusion at the operating point) from the one evaluation."""
    from components.evaluation.outputs import confusion_rows, roc_rows

    payloads = {
        METRICS: {
            "test": evaluation.flat(),
            "version": int(version) if version.isdigit() else version,
            "promoted": promoted,
        },
        ROC: {"roc": roc_rows(evaluation)},
        CONFUSION: {"confusion": confusion_rows(evaluation)},
    }
    written = []
    for rel, payload in payloads.items():
        path = Path(project_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def record_training(
    settings: Settings,
    effective: PipelineConfig,
    params_path: Path,
    prepared_dir: Path,
    evaluation: EvaluationResult,
    *,
    version: str,
    promoted: bool,
) -> StageRecord:
    """Write the ``train`` stage's metrics and plots and record it in dvc.lock (``dvc commit``) when this
    run is what ``dvc repro`` would run. Inside ``dvc repro`` / ``dvc exp run`` (``DVC_STAGE`` set) DVC
    records the stage itself. Training on another prepared folder than the project's leaves both alone.
    """
    from components.data.versioning import open_repo
    from medpipe.config import load_config

    project = settings.project_dir
    if Path(prepared_dir).resolve() != (project / PREPARED).resolve():
        return StageRecord(False, f"not recorded in dvc.lock: trained on {prepared_dir}, not {PREPARED}")
    keys = stage_params(project)
    if not keys:
        return StageRecord(False, f"not recorded in dvc.lock: {project / 'dvc.yaml'} has no '{TRAIN_STAGE}' stage")
    write_outputs(project, evaluation, version=version, promoted=promoted)
    if os.environ.get("DVC_STAGE"):
        return StageRecord(True, f"recorded by DVC ({os.environ['DVC_STAGE']})")
    changed = differences(effective, load_config(params_path), keys)
    if changed:
        shown = ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")
        return StageRecord(False, f"not recorded in dvc.lock: {shown} differ from params.yaml (dvc exp run -S records)")
    with open_repo(project, f"record the {TRAIN_STAGE} stage") as repo:
        repo.commit(TRAIN_STAGE, force=True)
    return StageRecord(True, "recorded in dvc.lock")


def experiment_overrides(params_path: Path) -> list[str]:
    """Inside ``dvc exp run``: what the experiment changed in params.yaml (its ``-S`` values and uncommitted
    edits, against the baseline commit), as ``-S`` overrides applied after the profile, the way ``medpipe run
    -S`` applies them. Without this the active profile would silently win over ``dvc exp run -S train.epochs=2``
    for every key the profile sets. Outside an experiment: none.
    """
    import subprocess

    rev, root = os.environ.get("DVC_EXP_BASELINE_REV"), os.environ.get("DVC_ROOT")
    if not (rev and root and os.environ.get("DVC_STAGE")):
        return []
    path = Path(params_path).resolve()
    rel = path.relative_to(Path(root).resolve()).as_posix()
    shown = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=root, capture_output=True, text=True, check=False)
    if shown.returncode != 0:  # params.yaml is new in this experiment: nothing to compare with
        return []
    base, now = yaml.safe_load(shown.stdout) or {}, yaml.safe_load(path.read_text()) or {}
    out = []
    for section, keys in now.items():
        if section == "profile" or not isinstance(keys, dict):  # the profile itself is read from params.yaml
            continue
        before = base.get(section) if isinstance(base.get(section), dict) else {}
        out += [f"{section}.{k}={json.dumps(v)}" for k, v in keys.items() if k not in before or before[k] != v]
    return out
