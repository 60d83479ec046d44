"""Data that outgrows memory: ingest speed, peak RSS vs N, version growth, and the 28 px loader, side by side.

Generates its own ImageFolder of grey PNGs (in a temp folder, never in the repo) and prints:

* ingest speed: `medpipe data ingest` (``ingest_and_version``: stage raw, ``dvc add``, prepare, version,
  push) and ``prepare`` alone, in img/s, over raw PIL decode of the same files with the same workers;
* peak RSS of ingest and of one streamed training epoch (the DataLoader side: workers decode + resize),
  at ``--small-n`` vs ``--n`` images: the ratio should stay near 1 (memory does not grow with N);
* version growth: state-folder growth after adding 1% more images and ingesting again, over the first
  version's size;
* 28 px: training-loader img/s of the streamed path over the in-memory path on BreastMNIST.

    uv run python benchmarks/data_scale.py                       # 20,000 x 256 px (the issue's set)
    uv run python benchmarks/data_scale.py --n 8000 --small-n 2000 --workers 2

Every measurement runs in its own child process so its peak RSS (``ru_maxrss`` of the process and
its pool/DataLoader workers) is its own.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BREASTMNIST = REPO.parent / "shared" / "data" / "breastmnist.npz"


# --- generated data --------------------------------------------------------------------------
def _write_png(job: tuple[Path, int, int]) -> int:
    from PIL import Image

    path, seed, size = job
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size  # a smooth gradient + blob + noise: compresses like a scan
    cx, cy = rng.uniform(0.2, 0.8, 2)
    img = 90 * xx + 60 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * 20) + rng.normal(0, 12, (size, size))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img + 40, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def generate(root: Path, n: int, size: int, start: int = 0, workers: int = 2) -> None:
    jobs = []
    for i in range(start, start + n):
        cls = ("benign", "malignant")[i % 2]
        (root / cls).mkdir(parents=True, exist_ok=True)
        jobs.append((root / cls / f"img_{i:06d}.png", i, size))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_png, jobs, chunksize=64))


# --- measurements (each in a child process) --------------------------------------------------
def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def _decode_one(path: str) -> int:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.size[0]


def part_decode(folder: Path, workers: int) -> dict:
    files = sorted(str(p) for p in folder.rglob("*.png"))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode_one, files, chunksize=64))
    return {"img_s": len(files) / (time.perf_counter() - t0), "n": len(files)}


def _project(root: Path, folder: Path, size: int) -> Path:
    import yaml

    project = root / "project"
    project.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source=str(folder), image_size=size)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in ("dvc.yaml", "profiles.yaml", "services.yaml"):
        if (REPO / name).is_file():
            shutil.copy(REPO / name, project / name)
    for pkg in ("components", "medpipe"):
        if not (project / pkg).exists():
            shutil.copytree(REPO / pkg, project / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def part_ingest(folder: Path, state: Path, size: int) -> dict:
    from components.data.versioning import ingest_and_version
    from medpipe.config import load_config
    from medpipe.settings import Settings

    project = _project(state, folder, size)
    os.chdir(project)  # DVC resolves stage paths against the working directory
    settings = Settings(home=state / "home", project_dir=project)
    cfg = load_config(project / "params.yaml").data
    n = sum(1 for _ in folder.rglob("*.png"))
    t0 = time.perf_counter()
    result = ingest_and_version(cfg, settings, push=True)
    return {"img_s": n / (time.perf_counter() - t0), "n": n, "version": result.data_version, "peak_mb": _peak_mb(),
            "decoded": getattr(result, "decoded", None)}  # fmt: skip


def part_prepare(folder: Path, out: Path, size: int, workers: int) -> dict:
    from components.data.prepare import prepare
    from medpipe.config import DataConfig

    n = sum(1 for _ in folder.rglob("*.png"))
    t0 = time.perf_counter()
    prepare(folder, out, DataConfig(image_size=size, min_images_per_class=1), workers=workers)
    return {"img_s": n / (time.perf_counter() - t0), "n": n, "peak_mb": _peak_mb()}


def part_epoch(prepared: Path, workers: int, batch: int) -> dict:
    import torch

    from components.data.dataset import load_prepared
    from components.training.data import LoaderSettings
    from components.training.streaming import StreamingDataModule, load_splits

    torch.set_num_threads(1)  # as training on this CPU box does (train.cpu_threads)
    prep = load_prepared(prepared)
    splits = load_splits(prep, stream_above_mb=0.0)
    loader = LoaderSettings(batch_size=batch, train_size=prep.image_size, seed=0)
    dm = StreamingDataModule(splits, loader, workers, mean=[0.5], std=[0.25], augment=None)  # type: ignore[arg-type]
    t0, n = time.perf_counter(), 0
    for x, _ in dm.train_dataloader():
        dm.transform(x, train=False)
        n += len(x)
    return {"img_s": n / (time.perf_counter() - t0), "n": n, "peak_mb": _peak_mb()}


def part_loader28(out: Path, workers: int, batch: int) -> dict:
    import torch

    from components.data.dataset import load_prepared
    from components.data.prepare import prepare
    from components.training.data import InMemoryDataModule, LoaderSettings
    from components.training.streaming import StreamingDataModule, load_splits
    from medpipe.config import DataConfig

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    prep = load_prepared(prepare(BREASTMNIST, out, DataConfig()).path)
    prepare_s = time.perf_counter() - t0
    loader = LoaderSettings(batch_size=batch, train_size=28, seed=0)
    kw = {"mean": [0.5], "std": [0.25], "augment": None}
    memory = InMemoryDataModule(load_splits(prep, float("inf")), loader, **kw)  # type: ignore[arg-type]
    streamed = StreamingDataModule(load_splits(prep, 0.0), loader, workers, **kw)  # type: ignore[arg-type]
    rates = {}
    for name, dm in (("memory", memory), ("streamed", streamed)):
        batches = dm.train_dataloader()
        for _ in batches:  # warm-up epoch (worker start-up, page cache)
            pass
        t0, n = time.perf_counter(), 0
        for _ in range(5):
            for x, _y in batches:
                dm.transform(x, train=False)
                n += len(x)
        rates[name] = n / (time.perf_counter() - t0)
    return {**rates, "prepare_s": prepare_s}


def _child(*args: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--part", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"part {args[0]} failed:\n{out.stderr[-3000:]}")
    print(f"  {args[0]}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _du(*paths: Path) -> int:
    return sum(p.stat().st_size for root in paths if root.exists() for p in root.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--small-n", type=int, default=5_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--part", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        name, *rest = args.part
        fn = {"decode": part_decode, "ingest": part_ingest, "prepare": part_prepare, "epoch": part_epoch,
              "loader28": part_loader28}[name]  # fmt: skip
        conv = [Path(r) if "/" in r else int(r) for r in rest]
        print(json.dumps(fn(*conv)))
        return

    w, s = str(args.workers), str(args.size)
    with tempfile.TemporaryDirectory(prefix="medpipe-datascale-") as tmp:
        base = Path(tmp)
        rows = {}
        for n in (args.small_n, args.n):
            folder = base / f"imgs-{n}"
            generate(folder, n, args.size, workers=args.workers)
            decode = _child("decode", str(folder), w)
            prep = _child("prepare", str(folder), str(base / f"prep-{n}"), s, w)
            state = base / f"state-{n}"
            ingest = _child("ingest", str(folder), str(state), s)
            epoch = _child("epoch", str(base / f"prep-{n}"), w, str(args.batch))
            rows[n] = {"decode": decode, "prepare": prep, "ingest": ingest, "epoch": epoch, "state": state,
                       "folder": folder}  # fmt: skip
        big = rows[args.n]
        first_size = _du(big["state"])
        extra = max(1, args.n // 100)
        generate(big["folder"], extra, args.size, start=args.n, workers=args.workers)
        again = _child("ingest", str(big["folder"]), str(big["state"]), s)
        growth = _du(big["state"]) - first_size
        loader = _child("loader28", str(base / "bm"), w, str(args.batch))

    small = rows[args.small_n]
    print(f"\ndata_scale: {args.n:,} (and {args.small_n:,}) grey PNGs at {args.size} px, {args.workers} worker(s)\n")
    print(f"{'measure':<44}{'value':>14}{'goal':>12}")
    raw = big["decode"]["img_s"]
    lines = [
        ("raw PIL decode img/s", f"{raw:,.0f}", ""),
        ("prepare img/s (decode+resize+shard)", f"{big['prepare']['img_s']:,.0f}", ""),
        ("  ratio prepare / raw decode", f"{big['prepare']['img_s'] / raw:.2f}", ">= 0.8"),
        ("ingest img/s (raw copy, dvc add, prepare, push)", f"{big['ingest']['img_s']:,.0f}", ""),
        ("  ratio ingest / raw decode", f"{big['ingest']['img_s'] / raw:.2f}", ">= 0.8"),
        (f"ingest peak RSS MB at {args.small_n:,} / {args.n:,}",
         f"{small['ingest']['peak_mb']:,.0f} / {big['ingest']['peak_mb']:,.0f}", ""),
        ("  ratio", f"{big['ingest']['peak_mb'] / small['ingest']['peak_mb']:.2f}", "<= 1.2"),
        (f"streamed epoch peak RSS MB at {args.small_n:,} / {args.n:,}",
         f"{small['epoch']['peak_mb']:,.0f} / {big['epoch']['peak_mb']:,.0f}", ""),
        ("  ratio", f"{big['epoch']['peak_mb'] / small['epoch']['peak_mb']:.2f}", "<= 1.2"),
        ("state folder after version 1 (MB)", f"{first_size / 1e6:,.0f}", ""),
        (f"growth after +{extra} images (+1%) (MB)", f"{growth / 1e6:,.1f}", ""),
        ("  ratio growth / version 1", f"{growth / first_size:.3f}", "<= 0.03"),
        ("no regression at 28 px: streamed vs in-memory loader img/s on BreastMNIST", "", ""),
        ("  28 px loader img/s in-memory / streamed",
         f"{loader['memory']:,.0f} / {loader['streamed']:,.0f}", ""),
        ("  ratio streamed / in-memory", f"{loader['streamed'] / loader['memory']:.2f}", ""),
        ("  BreastMNIST prepare s (the demo's)", f"{loader['prepare_s']:.2f}", ""),
    ]  # fmt: skip
    for name, value, goal in lines:
        print(f"{name:<44}{value:>14}{goal:>12}" if value else name)
    print(f"(re-ingest after +1%: {again['img_s']:,.0f} img/s over {again['n']:,} images, "
          f"{again['decoded']} decoded)")  # fmt: skip


if __name__ == "__main__":
    main()
