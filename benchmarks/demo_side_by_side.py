"""``make demo`` side by side: two git revisions, the same smoke profile, runs interleaved A, B, A, B.

Each revision is cloned into its own folder under ``--workdir`` (a ``shared`` symlink beside the clones
points at this checkout's ``../shared``, as the Makefile expects), gets its own ``.venv`` from its
``uv.lock`` (``uv sync --frozen``), and then runs ``medpipe run --profile <profile>`` ``--rounds`` times,
alternating with the other side so that load from the rest of the box falls on both. Before every run
the clone is reset to its commit (``git checkout -- . && git clean -fdx -e .venv``): a fresh state folder
(``.medpipe/``), no prepared data, no DVC cache.

Printed per run: wall seconds and CPU seconds (user + system of every child process the run reaped:
``getrusage(RUSAGE_CHILDREN)`` before and after), then per side the medians and the ratio B/A, and the
stage times each demo printed (the lines ending in ``<n> s``/``<n>s``) side by side.

    uv run python benchmarks/demo_side_by_side.py                       # 3d28ecb (wave 1) vs HEAD
    uv run python benchmarks/demo_side_by_side.py --a HEAD~5 --b HEAD --rounds 3

Logs of every run stay in ``--workdir/logs``; the clones are removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WAVE1 = "3d28ecb"  # wave 1's last commit
ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}
STAGE = re.compile(r"^\s*(?P<name>[A-Za-z][\w /().:-]*?)\s*[.:\-–]*\s+(?P<secs>\d+(?:\.\d+)?)\s?s\s*$")


def sh(cmd: list[str], cwd: Path | None = None, **kw) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, capture_output=True, **kw).stdout.strip()


def prepare_side(label: str, rev: str, workdir: Path) -> Path:
    commit = sh(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO)
    dest = workdir / f"{label}-{commit[:7]}"
    if not (dest / ".git").is_dir():
        sh(["git", "clone", "-q", "--no-checkout", str(REPO), str(dest)])
    sh(["git", "checkout", "-q", "--detach", "--force", commit], cwd=dest)
    t0 = time.perf_counter()
    subprocess.run(["uv", "sync", "--frozen", "--quiet"], cwd=dest, check=True)
    print(f"{label}: {commit[:7]} in {dest} (uv sync {time.perf_counter() - t0:.0f} s)", flush=True)
    return dest


def reset(clone: Path) -> None:
    sh(["git", "checkout", "-q", "--", "."], cwd=clone)
    sh(["git", "clean", "-q", "-fdx", "-e", ".venv"], cwd=clone)


def run_demo(clone: Path, profile: str, log: Path, data_dir: Path) -> tuple[float, float, int]:
    """(wall s, CPU s of all reaped children, exit code) of one demo run from a fresh state."""
    reset(clone)
    env = {**os.environ, **ENV, "MEDPIPE_DATA_DIR": str(data_dir)}
    for var in ("MEDPIPE_HOME", "PREFECT_HOME", "PREFECT_API_URL", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV"):
        env.pop(var, None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.run(
            [str(clone / ".venv" / "bin" / "medpipe"), "run", "--profile", profile],
            cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
        ).returncode  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def stage_times(log: Path) -> dict[str, float]:
    """``name -> seconds`` of the lines a demo printed that end in a duration."""
    out: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = STAGE.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            out[m["name"].strip()] = out.get(m["name"].strip(), 0.0) + float(m["secs"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", default=WAVE1, help="baseline revision (default: wave 1's last commit)")
    ap.add_argument("--b", default="HEAD", help="revision under test")
    ap.add_argument("--rounds", type=int, default=2, help="runs per side, interleaved A, B, A, B, ...")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medpipe-demo-ab"))
    ap.add_argument("--keep", action="store_true", help="keep the clones (and their .venv) afterwards")
    args = ap.parse_args()

    shared = (REPO.parent / "shared").resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    link = args.workdir / "shared"
    if not link.exists():
        link.symlink_to(shared)
    logs = args.workdir / "logs"
    logs.mkdir(exist_ok=True)
    sides = {"A": prepare_side("A", args.a, args.workdir), "B": prepare_side("B", args.b, args.workdir)}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    results: dict[str, list[tuple[float, float, int]]] = {"A": [], "B": []}
    stages: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    print(f"{'run':<6}{'rev':<9}{'wall s':>8}{'cpu s':>8}{'rc':>4}  load1", flush=True)
    for r in range(args.rounds):
        for side in ("A", "B"):
            clone = sides[side]
            log = logs / f"{side}{r + 1}.log"
            wall, cpu, rc = run_demo(clone, args.profile, log, link / "data")
            results[side].append((wall, cpu, rc))
            stages[side].append(stage_times(log))
            load1 = os.getloadavg()[0]
            print(f"{side}{r + 1:<5}{clone.name[2:]:<9}{wall:>8.1f}{cpu:>8.1f}{rc:>4}  {load1:.2f}", flush=True)

    med = {s: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for s, v in results.items()}
    print()
    for s in ("A", "B"):
        print(f"median {s} ({sides[s].name[2:]}): wall {med[s][0]:.1f} s, cpu {med[s][1]:.1f} s")
    print(f"ratio B/A: wall {med['B'][0] / med['A'][0]:.2f}, cpu {med['B'][1] / med['A'][1]:.2f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    names = sorted({n for s in stages.values() for d in s for n in d})
    if names:
        print(f"\n{'stage (printed by the demo), median s':<48}{'A':>8}{'B':>8}")
        for n in names:
            vals = {s: [d[n] for d in stages[s] if n in d] for s in ("A", "B")}
            cells = [f"{statistics.median(v):>8.1f}" if v else f"{'-':>8}" for v in vals.values()]
            print(f"{n[:47]:<48}{''.join(cells)}")
    print(f"\nlogs: {logs}")
    if any(rc for v in results.values() for _, _, rc in v):
        print("some runs failed: see the logs", file=sys.stderr)
    if not args.keep:
        for clone in sides.values():
            shutil.rmtree(clone, ignore_errors=True)
    return 0 if not any(rc for v in results.values() for _, _, rc in v) else 1


if __name__ == "__main__":
    sys.exit(main())
