"""The next commands the CLI suggests when there is no champion to serve (the end of ``medpipe run``, the start
of ``medpipe serve``): exact, copy-pasteable, and aimed at the model the command acted on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.registry.aliases import AliasGap

DEFAULT_PARAMS = Path("params.yaml")
ACCEPT_REASON = "accepted despite the gate"


def model_args(params: Path, name: str, plain_name: str) -> str:
    """The options a follow-up command (``serve``, ``registry promote``) needs to act on model ``name``:
    ``--params`` unless the default file, ``-S registry.model_name=`` unless the params file alone names
    ``name`` (``plain_name``: the model such a command picks when given no ``-S``)."""
    args = "" if params == DEFAULT_PARAMS else f" --params {params}"
    return args + ("" if name == plain_name else f" -S registry.model_name={name}")


def promote_command(prefix: str, version: str, args: str) -> str:
    """The manual override that makes ``version`` the champion (audited; the reason is the user's to edit)."""
    return f'{prefix} registry promote {version} --reason "{ACCEPT_REASON}"{args}'


def _change(gate_reason: str) -> str:
    """What to change so that the gate passes: the ``registry.*`` floors its reason names, else the reason."""
    params = list(dict.fromkeys(re.findall(r"registry\.\w+", gate_reason)))
    return f"change {', '.join(params)} (params.yaml or -S)" if params else "fix what the gate reports"


def run_serve_lines(training, args: str) -> list[str]:  # noqa: ANN001 - pipelines.results.TrainingSummary
    """The run summary's serving lines: the command, and when this run's version did not become champion, which
    version serves (an older champion), or why nothing does and how to change that."""
    serve = f"uv run medpipe serve{args}"
    if training.champion and (training.promoted or training.champion == training.version):
        return [f"serve the champion:       {serve}"]
    if training.champion:
        return [f"serve the champion:       {serve}  (still v{training.champion}: v{training.version} not promoted)"]
    return [
        f"nothing to serve:         no champion: v{training.version} did not pass the promotion gate (reason above)",
        f"  serve it anyway:        {promote_command('uv run medpipe', training.version, args)} && {serve}",
        f"  or:                     {_change(training.gate_reason)} and run again",
    ]


def nothing_to_serve_lines(error: str, gap: AliasGap | None, args: str, interval_s: float) -> list[str]:
    """What ``medpipe serve`` prints when its model cannot be loaded at start: why, what to run, and that the
    server waits for one (``gap``: what the registry holds instead of the alias; else ``error``, the lookup's)."""
    if gap is None:
        lines = [f"nothing to serve yet: {error}"]
    elif gap.newest is None:
        lines = [f"nothing to serve yet: no version of {gap.name} is registered, so no {gap.name}@{gap.alias}",
                 "  train and register one: medpipe run"]  # fmt: skip
        if others := [m for m in gap.models if m != gap.name]:
            lines.append(f"  or serve one that has a {gap.alias} ({', '.join(others)}): "
                         f"medpipe serve -m models:/{others[0]}@{gap.alias}")  # fmt: skip
    else:
        rejected = gap.gate not in ("", "promoted")
        verdict = "was rejected by the promotion gate" if gap.gate == "rejected" else f"was not promoted ({gap.gate})"
        gated = (f"{verdict}: {gap.gate_reason.removeprefix('failed: ')}" if rejected
                 else "passed the gate, then lost the alias (`medpipe registry history`)" if gap.gate
                 else "was never gated")  # fmt: skip
        lines = [f"nothing to serve yet: {gap.name} has no @{gap.alias}; its newest version, v{gap.newest}, {gated}"]
        if gap.alias == "champion":
            lines.append(f"  serve it anyway: {promote_command('medpipe', gap.newest, args)}")
            if rejected:
                lines.append(f"  or {_change(gap.gate_reason)} and train again: medpipe run")
    return [*lines, f"the server starts anyway: /v1/ready answers 503 until there is a model; it looks again every "
                    f"{interval_s:g} s and loads one as soon as it appears (no restart needed)"]  # fmt: skip
