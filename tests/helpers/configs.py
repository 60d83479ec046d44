"""params.yaml's smoke profile, shrunk further for tests (the real loader, the real file)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS = REPO_ROOT / "params.yaml"
# scale-out tests: the smallest real training (the small CNN, no early stopping, no DataLoader workers)
SCALEOUT = ["train.num_workers=0", "train.early_stopping_patience=0", "train.accelerator=cpu", "search.pruner=none"]


def smoke_cfg(*overrides: str):  # noqa: ANN201 - PipelineConfig (imported lazily: helpers import nothing heavy)
    """The real params.yaml smoke profile, shrunk further by ``overrides``."""
    from medpipe.config import load_config

    return load_config(PARAMS, profile="smoke", overrides=["train.num_workers=0", *overrides])


def smoke_training(*overrides: str):  # noqa: ANN201 - TrainingConfig
    """The training view of :func:`smoke_cfg` (what search and training take)."""
    return smoke_cfg(*overrides).for_training()


def scaleout_cfg(*overrides: str):  # noqa: ANN201 - PipelineConfig
    """The smoke profile with :data:`SCALEOUT` and ``overrides``."""
    from medpipe.config import load_config

    return load_config(PARAMS, profile="smoke", overrides=[*SCALEOUT, *overrides])


def cli_overrides(*overrides: str) -> list[str]:
    """:data:`SCALEOUT` and ``overrides`` as ``-S key=value`` pairs for the medpipe CLI."""
    return [a for o in (*SCALEOUT, *overrides) for a in ("-S", o)]
