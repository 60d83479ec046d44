"""HPO throughput with 1 vs N ``medpipe hpo worker`` processes on one shared Optuna study: trials/hour and the ratio.

    uv run python benchmarks/hpo_scaling.py [--trials 6] [--epochs 1] [--workers 2] [--repeats 2] [--storage pg|journal]

Both arms run in this one invocation, one after the other (``--repeats`` rounds, alternating order), on
the same storage (a fresh PostgreSQL database and an MLflow server on it; ``--storage journal``: an Optuna
journal file and a local SQLite MLflow store), each on its own fresh study with the same budget. Each worker
is a real CLI process (``medpipe hpo worker``) with ``cores // workers`` torch threads, so both arms use the
whole machine. Reported per arm:

- end-to-end: finished trials / wall time from starting the processes until the last one exits
  (includes Python/torch start-up and the MLflow/Optuna round trips);
- steady: finished trials / (last trial end - first trial start), from Optuna's own timestamps.

The load average before/after is printed: on a shared box other jobs skew both arms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.engines import (  # noqa: E402
    child_env,
    fresh_database,
    mlflow_server,
    pg_unavailable,
    start,
    stop,
    tail,
)


@dataclass(frozen=True)
class Arm:
    workers: int
    finished: int
    surplus: int
    wall_s: float
    steady_s: float
    per_worker: dict[str, int]

    @property
    def per_hour(self) -> float:
        return 3600 * self.finished / self.wall_s

    @property
    def steady_per_hour(self) -> float:
        return 3600 * self.finished / self.steady_s if self.steady_s > 0 else float("nan")


def prepare(out: Path) -> Path:
    import numpy as np

    from components.data.dataset import Split, write_manifest, write_split

    src = ROOT.parent / "shared" / "data" / "breastmnist.npz"
    out.mkdir(parents=True, exist_ok=True)
    names = ["malignant", "normal_or_benign"]
    counts = {}
    with np.load(src) as npz:
        for split in ("train", "val", "test"):
            images, labels = npz[f"{split}_images"][..., None], npz[f"{split}_labels"].ravel().astype(np.int64)
            write_split(out, split, Split(images, labels))
            counts[split] = {n: int((labels == i).sum()) for i, n in enumerate(names)}
    write_manifest(out, {"class_names": names, "counts": counts, "image_size": 28, "channels": 1})
    return out


def run_arm(
    workers: int, args: argparse.Namespace, storage: str, tracking: str, prepared: Path, work: Path, threads: int
) -> Arm:
    import optuna
    from optuna.trial import TrialState

    from components.training.study import make_storage

    study = f"hpo-scaling-{workers}w-{int(time.time())}"
    overrides = ["train.num_workers=0", "train.accelerator=cpu", "train.early_stopping_patience=0",
                 "search.pruner=none", f"train.epochs={args.epochs}", f"search.n_trials={args.trials}",
                 "project.name=hpo-scaling"]  # fmt: skip
    argv = [sys.executable, "-m", "medpipe", "hpo", "worker", "--study", study, "--params", str(ROOT / "params.yaml"),
            "--profile", "smoke", "--prepared", str(prepared), *[a for o in overrides for a in ("-S", o)]]  # fmt: skip
    procs, logs = [], []
    t0 = time.monotonic()
    try:
        for i in range(workers):
            env = child_env(
                MEDPIPE_HOME=str(work / f"{workers}w-worker{i}"),
                MEDPIPE_OPTUNA_STORAGE=storage,
                MLFLOW_TRACKING_URI=tracking,
                OMP_NUM_THREADS=str(threads),
                MKL_NUM_THREADS=str(threads),
            )
            logs.append(work / f"{workers}w-worker{i}.log")
            procs.append(start(argv, logs[-1], env))
        for proc, log in zip(procs, logs, strict=True):
            if proc.wait(timeout=args.timeout) != 0:
                raise SystemExit(f"worker failed ({log}):\n{tail(log)}")
    finally:
        for proc in procs:
            stop(proc)
    wall = time.monotonic() - t0
    trials = optuna.load_study(study_name=study, storage=make_storage(storage)).get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    steady = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    per_worker = _trials_per_worker(tracking, study)
    return Arm(workers, len(done), len(trials) - len(done), wall, steady, per_worker)


def _trials_per_worker(tracking: str, study: str) -> dict[str, int]:
    from collections import Counter

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("hpo-scaling-training")
    runs = client.search_runs([exp.experiment_id], f"tags.`medpipe.study_name` = '{study}' and "
                              "tags.`medpipe.run_kind` = 'trial'")  # fmt: skip
    return dict(Counter(r.data.tags.get("medpipe.worker", "?") for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6, help="The study budget (search.n_trials) of each arm.")
    parser.add_argument("--epochs", type=int, default=1, help="Epochs per trial (small CNN on BreastMNIST).")
    parser.add_argument("--workers", type=int, default=2, help="Workers of the scaled arm (vs 1).")
    parser.add_argument("--storage", choices=["pg", "journal"], default="pg")
    parser.add_argument("--timeout", type=float, default=1200, help="Seconds each arm may take.")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds; the arm order alternates (1,N then N,1).")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    if args.storage == "pg" and (reason := pg_unavailable()):
        raise SystemExit(f"{reason}; run with --storage journal")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hpo-scaling-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        prepared = prepare(work / "prepared")
        if args.storage == "pg":
            storage = stack.enter_context(fresh_database("medpipe_bench_optuna"))
            mlflow_db = stack.enter_context(fresh_database("medpipe_bench_mlflow"))
            tracking = stack.enter_context(mlflow_server(mlflow_db, work / "artifacts", work / "mlflow.log"))
        else:
            storage, tracking = f"journal:{work / 'optuna.jsonl'}", f"sqlite:///{work / 'mlflow.db'}"
        rounds: list[tuple[Arm, Arm]] = []
        for r in range(args.repeats):  # alternate the order so a load drift on the shared box hits both arms
            order = (1, args.workers) if r % 2 == 0 else (args.workers, 1)
            got = {n: run_arm(n, args, storage, tracking, prepared, work, threads=max(1, cores // n)) for n in order}
            rounds.append((got[1], got[args.workers]))
    load_after = os.getloadavg()

    print(f"\nHPO scaling: {args.trials} trials x {args.epochs} epoch(s), small CNN on BreastMNIST (546 train images)")
    what = "PostgreSQL study + MLflow server on PG" if args.storage == "pg" else "journal file + SQLite MLflow"
    print(f"storage: {args.storage} ({what})")
    print(f"machine: {cores} cores; load average before {load_before[0]:.2f}/{load_before[1]:.2f}, "
          f"after {load_after[0]:.2f}/{load_after[1]:.2f} (1/5 min)")  # fmt: skip
    print(f"{'workers':>7} {'threads':>7} {'trials':>6} {'surplus':>7} {'wall s':>8} {'trials/h':>9} "
          f"{'steady s':>8} {'steady/h':>9}  trials per worker")  # fmt: skip
    for a in [a for pair in rounds for a in pair]:
        print(
            f"{a.workers:>7} {max(1, cores // a.workers):>7} {a.finished:>6} {a.surplus:>7} {a.wall_s:>8.1f} "
            f"{a.per_hour:>9.0f} {a.steady_s:>8.1f} {a.steady_per_hour:>9.0f}  {sorted(a.per_worker.values())}"
        )  # fmt: skip
    e2e = [many.per_hour / one.per_hour for one, many in rounds]
    steady = [many.steady_per_hour / one.steady_per_hour for one, many in rounds]
    print(f"ratio {args.workers} vs 1 worker, per round: end-to-end {', '.join(f'{x:.2f}x' for x in e2e)}; "
          f"steady {', '.join(f'{x:.2f}x' for x in steady)}")  # fmt: skip
    print(f"ratio {args.workers} vs 1 worker (median): end-to-end {statistics.median(e2e):.2f}x, "
          f"steady {statistics.median(steady):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
