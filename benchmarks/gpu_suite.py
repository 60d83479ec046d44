"""The GPU proof in one command: five time-boxed steps measured side by side in one run.

    python benchmarks/gpu_suite.py --out "$OUT"            # on a GPU machine: < 8 min on one H100/H200
    python benchmarks/gpu_suite.py --cpu-smoke --out /tmp/s  # every step in seconds on CPU (run by `make test`)

Steps (each has a time box; `--box quality=240` changes one, `--steps throughput,inference` picks some):
  throughput   Lightning pipeline vs a bare PyTorch loop (ResNet-18, 28 px b512 and 224 px b256, bf16,
               channels_last, torch.compile off/on)
  quality      the default search (params' full profile, trimmed to its box) -> final test AUC, wall time,
               and the trial-epochs pruning saved
  concurrency  4 search trials at once on one GPU vs 1 at a time, in trials/hour
  inference    ONNX Runtime (CUDA / TensorRT when they load) vs PyTorch eager at batch 1 and 32; fp16 export
  serving      HTTP images/s through the real server vs raw ONNX Runtime at batch 32

Writes ``gpu_results.json`` and ``gpu_results.md`` to ``--out`` (default ``$OUT``, else ``gpu_results/``).

The GPU machine has torch, torchvision, lightning, onnx and CPU onnxruntime but no package registry. Pure-Python
(and small cp312 manylinux) wheels of what the measured code imports travel in a folder made here with
``python benchmarks/gpu_suite.py --fetch-wheels .gpu_wheels`` and carried with the working tree; the suite puts
the wheels on ``sys.path``. A step whose package is still missing is skipped with a line that names it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("throughput", "quality", "concurrency", "inference", "serving")
# seconds per step on a GPU; the sum stays under the 8-minute goal with room for start-up
GPU_BOXES = {"throughput": 110, "quality": 200, "concurrency": 60, "inference": 40, "serving": 40}
SMOKE_BOXES = dict.fromkeys(STEPS, 60)
# what the measured code imports beyond the GPU image's own packages; their closure comes from uv.lock
WHEEL_ROOTS = ("optuna", "optuna-integration", "pydantic", "pyyaml", "croniter", "mlflow-skinny", "matplotlib",
               "fastapi", "uvicorn", "httpx", "python-multipart", "pillow", "filelock", "tenacity",
               "prometheus-client", "pydicom")  # fmt: skip
GPU_IMAGE = ("torch", "torchvision", "lightning", "onnx", "onnxruntime", "onnxruntime-gpu")


def wheels_to_carry() -> dict[str, str]:
    """name -> locked version: the closure of WHEEL_ROOTS in uv.lock minus the closure of the GPU image."""
    import tomllib

    packages = {p["name"]: p for p in tomllib.loads((ROOT / "uv.lock").read_text()).get("package", [])}

    def closure(roots: tuple[str, ...]) -> set[str]:
        seen, todo = set(), [r for r in roots if r in packages]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += [d["name"] for d in packages[name].get("dependencies", []) if d["name"] in packages]
        return seen

    names = closure(WHEEL_ROOTS) - closure(GPU_IMAGE)
    return {n: packages[n]["version"] for n in sorted(names)}


def fetch_wheels(dest: Path, python: str = "3.12") -> None:
    """Download the wheels the suite needs on the GPU machine (Python ``python``, manylinux x86_64), pinned to
    uv.lock, with pip's own downloader; nothing is installed here."""
    import importlib.util
    import shutil
    import subprocess

    pip = (
        [sys.executable, "-m", "pip"]
        if importlib.util.find_spec("pip")
        else [shutil.which("python3") or "python3", "-m", "pip"]
    )
    dest.mkdir(parents=True, exist_ok=True)
    for name, version in wheels_to_carry().items():
        spec = f"{name}=={version}"
        cmd = [*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", python, "--platform", "manylinux2014_x86_64", "--platform",
               "manylinux_2_28_x86_64", "-d", str(dest), spec]  # fmt: skip
        if subprocess.run(cmd, check=False).returncode:
            print(f"  could not download {spec}; the steps that import it will be skipped on the GPU machine")
    size = sum(f.stat().st_size for f in dest.glob("*.whl")) / 1e6
    print(f"{len(list(dest.glob('*.whl')))} wheels, {size:.1f} MB in {dest}: carry this folder with the run")


def add_wheels(folder: Path) -> list[str]:
    """Unpack each wheel once into ``folder/site`` and put it on sys.path (zipimport can't load C extensions)."""
    if not folder.is_dir():
        return []
    site = folder / "site"
    added = []
    for whl in sorted(folder.glob("*.whl")):
        marker = site / f".{whl.name}.done"
        if not marker.exists():
            with zipfile.ZipFile(whl) as z:
                z.extractall(site)
            marker.touch()
        added.append(whl.name.split("-")[0])
    if added:
        sys.path.insert(0, str(site))
    return added


def _describe_machine(cpu_smoke: bool) -> dict[str, str]:
    import torch

    gpu = torch.cuda.is_available() and not cpu_smoke
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name() if gpu else f"CPU ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mode": "cpu-smoke" if cpu_smoke else ("gpu" if gpu else "cpu (no GPU found)"),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime"] = f"{ort.__version__} ({', '.join(ort.get_available_providers())})"
    except ImportError:
        info["onnxruntime"] = "not installed"
    return info


def run_step(name: str, ctx: object, box_s: float) -> dict:
    """One step inside its time box; a missing package skips it, any other error fails it (the suite goes on)."""
    import _gpu_steps

    t0 = time.perf_counter()
    try:
        result = getattr(_gpu_steps, name)(ctx, deadline=time.monotonic() + box_s)
        status = "ok"
    except ModuleNotFoundError as e:
        result, status = {}, f"skipped: needs the '{e.name}' package, which this machine lacks"
    except Exception as e:  # noqa: BLE001 - a failed step is reported and the next one still runs
        traceback.print_exc()
        result, status = {}, f"failed: {type(e).__name__}: {e}"
    wall = time.perf_counter() - t0
    print(f"[{name}] {status} in {wall:.0f} s (box {box_s:.0f} s)", flush=True)
    return {"status": status, "wall_s": round(wall, 1), "box_s": box_s, **result}


def to_markdown(machine: dict[str, str], results: dict[str, dict], command: str) -> str:
    lines = [f"## GPU suite, {machine['date']}, {machine['device']}", "", f"Command: `{command}`", ""]
    lines += [f"- {k}: {v}" for k, v in machine.items() if k not in ("date",)]
    for name, r in results.items():
        lines += ["", f"### {name}: {r['status']} ({r['wall_s']} s of a {r['box_s']:.0f} s box)"]
        for row in r.get("table", []):
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
            if row is r["table"][0]:
                lines.append("|" + "---|" * len(row))
        lines += [f"- {note}" for note in r.get("notes", [])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_results"))
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU: checks every step in seconds")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--box", action="append", default=[], metavar="STEP=SECONDS", help="change one step's box")
    ap.add_argument("--data", type=Path, default=None, help="breastmnist.npz (default: ../shared/data or $DATA)")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".gpu_wheels", help="folder made by --fetch-wheels")
    ap.add_argument("--fetch-wheels", type=Path, metavar="DIR", help="download the wheels to carry, then exit")
    args = ap.parse_args(argv)
    if args.fetch_wheels:
        fetch_wheels(args.fetch_wheels)
        return 0
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown step(s) {unknown}; choose from {', '.join(STEPS)}")
    boxes = dict(SMOKE_BOXES if args.cpu_smoke else GPU_BOXES)
    for item in args.box:
        step, _, secs = item.partition("=")
        if step not in boxes or not secs.replace(".", "", 1).isdigit():
            ap.error(f"--box {item!r}: expected STEP=SECONDS with STEP one of {', '.join(STEPS)}")
        boxes[step] = float(secs)

    carried = add_wheels(args.wheels)
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    import _gpu_steps

    ctx = _gpu_steps.Context.create(args.data, args.out, cpu_smoke=args.cpu_smoke)
    machine = _describe_machine(args.cpu_smoke)
    print(f"GPU suite on {machine['device']} ({machine['mode']}); wheels carried: {len(carried)}", flush=True)
    results = {name: run_step(name, ctx, boxes[name]) for name in steps}
    command = "python benchmarks/gpu_suite.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_results.json").write_text(
        json.dumps({"machine": machine, "command": command, "steps": results}, indent=2, default=str)
    )
    md = to_markdown(machine, results, command)
    (args.out / "gpu_results.md").write_text(md)
    print(md)
    return 1 if any(r["status"].startswith("failed") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
