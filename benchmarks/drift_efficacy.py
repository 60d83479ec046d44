"""Drift-check efficacy on BreastMNIST: detection by shift x severity x window size, false-alarm rate on iid
windows of images not in the reference, and the label-free accuracy estimate's error per shift.

    uv run python benchmarks/drift_efficacy.py [--windows 20] [--null-windows 100] [--epochs 6]
                                               [--sizes 50 100 200] [-S monitoring.key=value ...]

Data (no downloads): the quick CNN is trained on half of BreastMNIST's train split (273 images), so 507
images are unseen by the model. They are split into the champion's reference (the prepared ``val`` split,
250 images, as ``build_reference`` builds it in production) and a pool of 257 images that windows are
drawn from (without replacement inside a window). Shifts: 7 corruptions in the spirit of MedMNIST-C at 5
severities (benchmarks/_shifts.py) and a prevalence shift (windows drawn at 80/20 and 20/80 malignant /
benign; the reference has ~27/73). Each shifted pool is scored once; windows draw rows from it.

Goals (issue 14): false-alarm rate <= alpha (+ sampling error); detection >= 95% at severity >= 3 with
windows of 200 for every corruption; median |estimated - true accuracy| <= 0.05. Cells that miss print.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _shifts import CORRUPTIONS  # noqa: E402

NPZ = ROOT.parent / "shared" / "data" / "breastmnist.npz"
CLASS_NAMES = ["malignant", "normal_or_benign"]


def write_split_dataset(out: Path, seed: int = 0) -> Path:
    """Prepared layout: train = half the train split; val (the reference) and test (the pool) = the unseen rest."""
    from components.data.dataset import Split, write_manifest, write_split

    rng = np.random.default_rng(seed)
    with np.load(NPZ) as npz:
        x = {s: npz[f"{s}_images"][..., None] for s in ("train", "val", "test")}
        y = {s: npz[f"{s}_labels"].ravel().astype(np.int64) for s in ("train", "val", "test")}
    order = rng.permutation(len(x["train"]))
    half = len(order) // 2
    unseen_x = np.concatenate([x["train"][order[half:]], x["val"], x["test"]])
    unseen_y = np.concatenate([y["train"][order[half:]], y["val"], y["test"]])
    perm = rng.permutation(len(unseen_x))
    ref, pool = perm[:250], perm[250:]
    splits = {
        "train": Split(x["train"][order[:half]], y["train"][order[:half]]),
        "val": Split(unseen_x[ref], unseen_y[ref]),
        "test": Split(unseen_x[pool], unseen_y[pool]),
    }
    for name, split in splits.items():
        write_split(out, name, split)
    counts = {n: {c: int((s.labels == i).sum()) for i, c in enumerate(CLASS_NAMES)} for n, s in splits.items()}
    write_manifest(out, {"class_names": CLASS_NAMES, "counts": counts, "image_size": 28, "channels": 1})
    return out


def _draw(rng: np.random.Generator, labels: np.ndarray, size: int, malignant_share: float | None) -> np.ndarray:
    if malignant_share is None:
        return rng.choice(len(labels), size=size, replace=False)
    n_mal = int(round(size * malignant_share))
    mal, ben = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    return np.concatenate(
        [
            rng.choice(mal, n_mal, replace=n_mal > len(mal)),
            rng.choice(ben, size - n_mal, replace=size - n_mal > len(ben)),
        ]
    )


def main() -> None:  # noqa: PLR0915 - one script, printed top to bottom
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=20, help="windows per shifted cell")
    parser.add_argument("--null-windows", type=int, default=100, help="iid windows per window size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    import torch
    from _models import quick_embed_fn

    from components.data.dataset import load_split
    from medpipe.config import load_config
    from monitoring.drift import compute_drift
    from monitoring.reference import build_reference
    from monitoring.window import window_from_images

    torch.set_num_threads(1)
    cfg = load_config(ROOT / "params.yaml", overrides=args.overrides).monitoring
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = write_split_dataset(Path(tmp), args.seed)
        embed_fn = quick_embed_fn(prepared, args.epochs, args.seed)
        reference = build_reference(prepared, embed_fn, cfg)
        pool = load_split(prepared, "test")
    names = reference.class_names
    labels = [names[i] for i in pool.labels]
    print(
        f"reference: {len(reference.frame)} unseen images (accuracy {reference.reference_accuracy:.3f}, ATC threshold "
        f"{reference.atc_threshold:.3f}); pool: {len(pool)} unseen images; alpha {cfg.alpha}",
        flush=True,
    )

    def frame_for(images: np.ndarray):  # noqa: ANN202
        return window_from_images(images, embed_fn, reference, labels=labels)

    def run_cell(frame, size: int, n: int, share: float | None = None):  # noqa: ANN001, ANN202
        hits, errors = 0, []
        for _ in range(n):
            idx = _draw(rng, pool.labels, size, share)
            summary = compute_drift(
                reference, frame.iloc[idx].reset_index(drop=True), cfg, seed=int(rng.integers(1 << 31))
            )
            hits += summary.drift_detected
            errors.append(abs(summary.estimated_accuracy - summary.accuracy))
        return hits / n, errors

    base = frame_for(pool.images)
    print("\nFALSE ALARMS (iid windows of unseen images)")
    print(f"{'window':>7}{'windows':>9}{'alarms':>8}{'rate':>7}   goal <= {cfg.alpha} + 2 SE")
    null_err = []
    for size in args.sizes:
        rate, err = run_cell(base, size, args.null_windows)
        null_err += err
        se = np.sqrt(cfg.alpha * (1 - cfg.alpha) / args.null_windows)
        miss = "" if rate <= cfg.alpha + 2 * se else "  MISSED"
        print(f"{size:>7}{args.null_windows:>9}{round(rate * args.null_windows):>8}{rate:>7.0%}{miss}", flush=True)

    print(f"\nDETECTION RATE ({args.windows} windows per cell; goal >= 95% at severity >= 3, window 200)")
    header = "".join(f"{f's{s}/{w}':>8}" for s in range(1, 6) for w in args.sizes)
    print(f"{'shift':<16}{header}")
    estimate_rows, misses = [("none (iid)", float(np.median(null_err)), float(np.max(null_err)))], []
    for name, fn in CORRUPTIONS.items():
        cells, errs = [], []
        for sev in range(1, 6):
            frame = frame_for(fn(pool.images, sev, np.random.default_rng(sev)))
            for size in args.sizes:
                rate, err = run_cell(frame, size, args.windows)
                cells.append(f"{rate:>8.0%}")
                errs += err
                if sev >= 3 and size == max(args.sizes) and rate < 0.95:
                    misses.append(f"{name} severity {sev} window {size}: {rate:.0%}")
        print(f"{name:<16}{''.join(cells)}", flush=True)
        estimate_rows.append((name, float(np.median(errs)), float(np.max(errs))))
    for share in (0.8, 0.2):
        label = f"prevalence {share:.0%}/{1 - share:.0%}"
        cells, errs = [], []
        for size in args.sizes:
            rate, err = run_cell(base, size, args.windows, share)
            cells.append(f"{rate:>8.0%}")
            errs += err
        print(f"{label:<16}{''.join(cells)}   (windows {', '.join(map(str, args.sizes))})", flush=True)
        estimate_rows.append((label, float(np.median(errs)), float(np.max(errs))))

    print("\nLABEL-FREE ACCURACY ESTIMATE (ATC): |estimated - true accuracy| over every window of the shift")
    print(f"{'shift':<22}{'median':>8}{'max':>8}")
    for name, med, worst in estimate_rows:
        print(f"{name:<22}{med:>8.3f}{worst:>8.3f}{'' if med <= 0.05 else '  MISSED (goal median <= 0.05)'}")
    print("\nMISSED detection cells (severity >= 3, largest window):", "none" if not misses else "")
    for m in misses:
        print("  " + m)


if __name__ == "__main__":
    main()
