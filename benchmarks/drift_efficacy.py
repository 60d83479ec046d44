"""Drift-check efficacy on real data: false-alarm rate on iid windows, detection rate on shifted ones.

    uv run python benchmarks/drift_efficacy.py [--windows 20] [--epochs 3] [-S monitoring.key=value ...]

Reference: BreastMNIST train+val through a small CNN trained for a few epochs here (CPU, seconds).
Windows of ``monitoring.window_size`` images drawn from test+val: iid (goal: <= 5% alarms) and shifted
(brightness +30%, Gaussian blur sigma 1.5, Gaussian noise sigma 15, 90 degree rotation, a 50% mix of these;
goal: >= 95% detected).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _models import quick_embed_fn, write_prepared_breastmnist  # noqa: E402

from medpipe.config import load_config  # noqa: E402


def brighten(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(x.astype(np.float32) * 1.3, 0, 255).astype(np.uint8)


def blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.clip(gaussian_filter(x.astype(np.float32), sigma=(0, 1.5, 1.5, 0)) + 0.5, 0, 255).astype(np.uint8)


def noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(x.astype(np.float32) + rng.normal(0, 15, x.shape), 0, 255).astype(np.uint8)


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(x, k=1, axes=(1, 2)))


SHIFTS = {"brightness+30%": brighten, "blur sigma=1.5": blur, "noise sigma=15": noise, "rotate 90": rotate}


def mix(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half the window shifted, each shifted image by one of the shifts at random."""
    out = x.copy()
    idx = rng.choice(len(x), size=len(x) // 2, replace=False)
    fns = list(SHIFTS.values())
    for i in idx:
        out[i : i + 1] = fns[rng.integers(len(fns))](x[i : i + 1], rng)
    return out


def run(windows: int, epochs: int, overrides: list[str], seed: int = 0) -> list[tuple[str, int, int, float]]:
    import torch

    from components.data.dataset import load_split
    from monitoring.drift import compute_drift
    from monitoring.reference import build_reference
    from monitoring.window import window_from_images

    torch.set_num_threads(2)
    cfg = load_config(ROOT / "params.yaml", overrides=overrides).monitoring
    npz = ROOT.parent / "shared" / "data" / "breastmnist.npz"
    with tempfile.TemporaryDirectory() as tmp:
        prepared = write_prepared_breastmnist(npz, Path(tmp))
        embed_fn = quick_embed_fn(prepared, epochs, seed)
        reference = build_reference(prepared, embed_fn, cfg)
        pool = np.concatenate([load_split(prepared, "test").images, load_split(prepared, "val").images])
    rng = np.random.default_rng(seed)
    size = cfg.window_size
    scenarios = {"iid": None, **SHIFTS, "mix 50%": mix}
    rows = []
    for name, fn in scenarios.items():
        alarms, seconds = 0, 0.0
        for _ in range(windows):
            x = pool[rng.choice(len(pool), size=size, replace=size > len(pool))]
            if fn is not None:
                x = fn(x, rng)
            t0 = time.perf_counter()
            summary = compute_drift(reference, window_from_images(x, embed_fn, reference), cfg)
            seconds += time.perf_counter() - t0
            alarms += summary.drift_detected
            if name == "iid" and summary.drift_detected:
                print("  false alarm:", [(s.name, round(s.score, 4)) for s in summary.drifted_signals])
        rows.append((name, windows, alarms, seconds / windows))
        print(f"  {name}: {alarms}/{windows} alarms, {seconds / windows:.2f} s/check", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    rows = run(args.windows, args.epochs, args.overrides, args.seed)
    cfg = load_config(ROOT / "params.yaml", overrides=args.overrides).monitoring
    print(f"\nwindow size {cfg.window_size}, {args.windows} windows per scenario, CNN trained {args.epochs} epochs")
    print(f"{'scenario':<18}{'windows':>8}{'alarms':>8}{'rate':>8}{'goal':>10}{'s/check':>9}")
    ok = True
    for name, n, alarms, secs in rows:
        rate = alarms / n
        goal = "<= 5%" if name == "iid" else ">= 95%"
        met = rate <= 0.05 if name == "iid" else rate >= 0.95
        ok &= met
        print(f"{name:<18}{n:>8}{alarms:>8}{rate:>8.0%}{goal:>10}{secs:>9.2f}{'' if met else '  MISSED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
