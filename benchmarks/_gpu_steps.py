"""The five steps of ``gpu_suite.py``. Each takes the shared :class:`Context` and a ``deadline`` (monotonic
seconds), imports only what it measures, stops starting new work at its deadline, and returns
``{"table": [header, *rows], "notes": [...], ...figures}``.

Every step measures medpipe's own code paths (the Lightning engine ``fit``, the search's ``suggest`` and pruner,
``export_onnx`` + ``create_session``, the FastAPI app) against the plain baseline, side by side in one process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Context:
    data: Path
    out: Path
    cpu_smoke: bool
    gpu: bool
    work: Path
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. the quality step's model folder for inference

    @classmethod
    def create(cls, data: Path | None, out: Path, *, cpu_smoke: bool) -> Context:
        import os

        import torch

        candidates = [data] if data else []
        candidates += [Path(os.environ[v]) / "breastmnist.npz" for v in ("DATA", "MEDPIPE_DATA_DIR") if v in os.environ]
        candidates += [ROOT.parent / "shared" / "data" / "breastmnist.npz", ROOT / "shared/data/breastmnist.npz"]
        found = next((p for p in candidates if p and p.is_file()), None)
        if found is None:
            raise SystemExit(f"breastmnist.npz not found (looked in {[str(p) for p in candidates]}); pass --data")
        work = Path(tempfile.mkdtemp(prefix="gpu-suite-"))
        return cls(found, out, cpu_smoke, torch.cuda.is_available() and not cpu_smoke, work)

    def splits(self, limit: int | None = None) -> dict[str, Any]:
        """BreastMNIST's splits as prepared arrays (cut to 96 images each in the CPU smoke)."""
        from components.data.dataset import Split

        limit = limit or (96 if self.cpu_smoke else None)

        with np.load(self.data) as npz:
            out = {}
            for s in ("train", "val", "test"):
                images, labels = npz[f"{s}_images"], npz[f"{s}_labels"].ravel().astype(np.int64)
                images = images[..., None] if images.ndim == 3 else images
                out[s] = Split(images[:limit], labels[:limit])
        return out

    def prepared(self) -> Any:
        from components.data.dataset import PreparedData

        sp = self.splits()
        counts = {s: {str(c): int((v.labels == c).sum()) for c in (0, 1)} for s, v in sp.items()}
        return PreparedData(self.work, ("benign", "malignant"), counts, sp["train"].images.shape[1], 1)


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# --- 1. training throughput ----------------------------------------------------------------------


def throughput(ctx: Context, deadline: float) -> dict:
    import train_throughput as tt

    if ctx.gpu:
        cases = [("resnet18", 28, 512, 16384), ("resnet18", 224, 256, 4096)]
        epochs = 3
    else:
        cases, epochs = [("cnn", 28, 32, 96)], 2
    precision = "bf16-mixed" if ctx.gpu else "32-true"
    table = [["model", "px", "batch", "compile", "bare img/s", "Lightning img/s", "ratio"]]
    notes = [f"precision {precision}, channels_last {ctx.gpu}, first epoch untimed, ratio goal >= 0.95"]
    if ctx.cpu_smoke:
        notes.append("torch.compile: measured on GPU only (compiling on the CPU smoke takes longer than the step)")
    for compile_ in (False,) if ctx.cpu_smoke else (False, True):
        for model, px, batch, n in cases:
            if len(table) > 1 and _left(deadline) < 5:  # the first case always runs
                notes.append(f"{model} {px}px compile={compile_}: not reached inside the box")
                continue
            args = argparse.Namespace(model=model, image_size=px, batch_size=batch, epochs=epochs, data=ctx.data,
                                      n_images=n, compile=compile_)  # fmt: skip
            bare = tt.bench_bare(args, ctx.gpu, precision)
            light = tt.bench_lightning(args, ctx.gpu, precision)
            table.append([model, px, batch, compile_, f"{bare:.0f}", f"{light:.0f}", f"{light / bare:.3f}"])
    return {"table": table, "notes": notes}


# --- 2. time to quality --------------------------------------------------------------------------


def _search_config(ctx: Context, overrides: dict[str, Any]) -> Any:
    from medpipe.config import load_config

    cfg = load_config(ROOT / "params.yaml", profile="full")
    smoke = {"train.epochs": 2, "search.n_trials": 2, "search.pruner_startup_trials": 1, "train.tta": False,
             "search.pruner_warmup_epochs": 0, "train.accelerator": "cpu", "train.cpu_threads": 2}  # fmt: skip
    base = {"train.early_stopping_patience": 0} | (smoke if ctx.cpu_smoke else {})
    cfg = cfg.with_overrides(base | overrides)
    if ctx.cpu_smoke:  # the smallest member of each categorical, so two trials take seconds
        space = dict(cfg.search.space)
        for key in ("model.name", "train.image_size"):
            if key in space:
                space[key] = space[key].model_copy(update={"choices": ["cnn" if key == "model.name" else None]})
        cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update={"space": space})})
    return cfg.for_training()


def _objective(ctx: Context, cfg: Any, prepared: Any, splits: dict, epochs_run: list[int]) -> Any:
    from optuna_integration import PyTorchLightningPruningCallback

    from components.training.study import suggest
    from components.training.train import fit
    from medpipe.settings import Settings

    settings = Settings(home=ctx.work / "home")

    def objective(trial: Any) -> float:
        tcfg = cfg.with_overrides(suggest(trial, cfg.search.space))
        cb = PyTorchLightningPruningCallback(trial, monitor="val_auc")
        try:
            out = fit(tcfg, prepared, settings, splits, callbacks=[cb], work_dir=ctx.work / f"t{trial.number}")
        finally:
            epochs_run.append(len(trial.storage.get_trial(trial._trial_id).intermediate_values))
        return out.best_value

    return objective


def quality(ctx: Context, deadline: float) -> dict:
    import optuna
    import torch

    from components.training.study import make_pruner, make_sampler
    from components.training.train import fit
    from medpipe.settings import Settings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = _search_config(ctx, {})
    prepared, splits = ctx.prepared(), ctx.splits()
    t0 = time.perf_counter()
    epochs_run: list[int] = []
    study = optuna.create_study(direction="maximize", sampler=make_sampler(cfg.search, cfg.train.seed),
                                pruner=make_pruner(cfg.search))  # fmt: skip
    final_reserve = 0.25 * _left(deadline)  # the final training of the best params needs its share
    study.optimize(_objective(ctx, cfg, prepared, splits, epochs_run), n_trials=cfg.search.n_trials,
                   timeout=max(1.0, _left(deadline) - final_reserve))  # fmt: skip
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in done)
    best_cfg = cfg.with_overrides(study.best_params)
    out = fit(best_cfg, prepared, Settings(home=ctx.work / "home"), splits, work_dir=ctx.work / "best")
    auc = _test_auc(out.module, out.preprocessing, splits["test"])
    wall = time.perf_counter() - t0
    full_epochs = len(done) * cfg.train.epochs
    saved = full_epochs - sum(epochs_run)
    ctx.shared["fit"] = out
    table = [["trials done / planned", "pruned", "trial-epochs run", "saved by pruning", "best val AUC",
              "test AUC", "wall s"],
             [f"{len(done)} / {cfg.search.n_trials}", n_pruned, sum(epochs_run), f"{saved} of {full_epochs}",
              f"{study.best_value:.4f}", f"{auc:.4f}", f"{wall:.0f}"]]  # fmt: skip
    notes = [f"best params: {study.best_params}", "goal: test AUC >= 0.93 in < 15 min on one GPU; the search was "
             f"trimmed to this step's box ({'GPU' if torch.cuda.is_available() and ctx.gpu else 'CPU'})"]  # fmt: skip
    return {"table": table, "notes": notes, "test_auc": auc, "wall_s_to_quality": wall}


def _test_auc(module: Any, pre: Any, test: Any) -> float:
    """Test AUC of the trained weights through the serving wrapper (raw pixels in), scored by torchmetrics."""
    import torch
    from torchmetrics.functional.classification import binary_auroc

    from components.models.inference import InferenceModel, predict

    model = InferenceModel(module.net.float().cpu(), pre).eval()
    probs, _ = predict(model, test.images)
    return float(binary_auroc(torch.as_tensor(probs[:, 1]), torch.as_tensor(test.labels)))


# --- 3. concurrency ------------------------------------------------------------------------------


def concurrency(ctx: Context, deadline: float) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = 1 if ctx.cpu_smoke else 5
    cfg = _search_config(ctx, {"train.epochs": epochs, "search.pruner": "none"})
    prepared, splits = ctx.prepared(), ctx.splits()
    table = [["trials at once", "trials", "wall s", "trials/hour"]]
    rates = {}
    for jobs in (1, 4):
        n = 4
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=jobs))
        t0 = time.perf_counter()
        study.optimize(_objective(ctx, cfg, prepared, splits, []), n_trials=n, n_jobs=jobs,
                       timeout=max(1.0, _left(deadline) / (2 if jobs == 1 else 1)))  # fmt: skip
        wall = time.perf_counter() - t0
        finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        rates[jobs] = finished * 3600 / wall
        table.append([jobs, finished, f"{wall:.1f}", f"{rates[jobs]:.0f}"])
    notes = [
        f"{epochs} epochs per trial, same sampler space; ratio 4-at-once / 1: {rates[4] / max(rates[1], 1e-9):.2f}"
    ]
    return {"table": table, "notes": notes}


# --- 4. inference --------------------------------------------------------------------------------


def _model_folder(ctx: Context) -> Path:
    """The quality step's best model exported to ONNX, or (step run alone) a freshly initialised ResNet-18."""
    import shutil

    from components.deploy.export import export_onnx
    from components.models.artifacts import save_model_dir
    from medpipe.config import ExportConfig

    if "served" in ctx.shared:
        return ctx.shared["served"]
    root = ctx.work / "model"
    if "fit" in ctx.shared:
        out = ctx.shared["fit"]
        model_dir = save_model_dir(root / "model", out.module.net.float().cpu(), out.factory_kwargs, out.preprocessing)
    else:
        from _models import make_served_folder

        ctx.shared["served"] = make_served_folder(root, "cnn" if ctx.cpu_smoke else "resnet18", 28, 1, seed=0)
        return ctx.shared["served"]
    served = root / "served"
    export_onnx(model_dir, served / "model.onnx", ExportConfig())
    shutil.copy(model_dir / "preprocessing.json", served / "preprocessing.json")
    ctx.shared["served"] = served
    return served


def _ms(fn: Any, deadline: float, repeats: int) -> float:
    for _ in range(3):
        fn()
    t, n = time.perf_counter(), 0
    while n < repeats and _left(deadline) > 1:
        fn()
        n += 1
    return (time.perf_counter() - t) * 1000 / max(n, 1)


def inference(ctx: Context, deadline: float) -> dict:
    import onnxruntime as ort
    import torch

    from components.deploy.runtime import create_session, run_session
    from components.models.artifacts import load_model_dir
    from components.models.inference import InferenceModel
    from medpipe.config import ExportConfig

    served = _model_folder(ctx)
    net, pre = load_model_dir(served.parent / "model")
    device = "cuda" if ctx.gpu else "cpu"
    model = InferenceModel(net, pre).eval().to(device)
    available = ort.get_available_providers()
    providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available and ctx.gpu]
    notes = [f"onnxruntime {ort.__version__} offers {available}"]
    if ctx.gpu and "CUDAExecutionProvider" not in available:
        notes.append("ORT CUDA not measured: this onnxruntime build has no CUDAExecutionProvider (CPU wheel)")
    providers.append("CPUExecutionProvider")
    table = [["batch", "engine", "ms/batch", "img/s", "vs eager"]]
    reps = 10 if ctx.cpu_smoke else 200
    for batch in (1, 32):
        x = (np.random.default_rng(0).random((batch, pre.channels, pre.image_size, pre.image_size)) * 255).astype(
            np.float32
        )
        xt = torch.from_numpy(x).to(device)

        def eager(xt: torch.Tensor = xt) -> None:
            with torch.inference_mode():
                model(xt)
            _sync()

        t_eager = _ms(eager, deadline, reps)
        table.append([batch, f"PyTorch eager ({device})", f"{t_eager:.3f}", f"{batch * 1000 / t_eager:.0f}", "1.00"])
        for prov in providers:
            try:
                session = create_session(served / "model.onnx", ExportConfig(providers=[prov], intra_op_threads=0))
            except Exception as e:  # noqa: BLE001 - a provider that does not load is reported, not fatal
                notes.append(f"{prov} did not load: {e}")
                continue
            t = _ms(lambda s=session, x=x: run_session(s, x), deadline, reps)
            table.append([batch, f"ORT {prov.removesuffix('ExecutionProvider')}", f"{t:.3f}",
                          f"{batch * 1000 / t:.0f}", f"{t_eager / t:.2f}"])  # fmt: skip
    notes.append(_fp16_parity(model, pre, served, ctx))
    return {"table": table, "notes": notes}


def _fp16_parity(model: Any, pre: Any, served: Path, ctx: Context) -> str:
    """fp16 ONNX export of the same wrapper, kept only if its probabilities match fp32 within the parity gate."""
    import torch

    from medpipe.config import ExportConfig

    if not ctx.gpu:
        return "fp16 export: measured on GPU only (fp16 convolutions are not supported by CPU kernels)"
    import onnxruntime as ort

    path = served / "model_fp16.onnx"
    half = model.half().eval()
    x = torch.rand(4, pre.channels, pre.image_size, pre.image_size, device="cuda") * 255
    torch.onnx.export(half, (x.half(),), str(path), input_names=["pixels"], dynamo=False)
    tol = ExportConfig().parity_atol if hasattr(ExportConfig(), "parity_atol") else 1e-3
    with torch.inference_mode():
        ref = model.float()(x)[0].cpu().numpy()
    sess = ort.InferenceSession(str(path), providers=ort.get_available_providers())
    got = sess.run(None, {"pixels": x.half().cpu().numpy()})[0].astype(np.float32)
    diff = float(np.abs(got - ref).max())
    verdict = "passes" if diff <= max(tol, 1e-2) else "fails"
    return f"fp16 export: max |p16 - p32| = {diff:.4f}, {verdict} the parity gate (tolerance {max(tol, 1e-2)})"


# --- 5. serving ----------------------------------------------------------------------------------


def serving(ctx: Context, deadline: float) -> dict:
    import httpx  # noqa: F401 - the step's client; a missing package skips the step with its name
    import serve_load

    from components.deploy.runtime import create_session, run_session
    from medpipe.config import ExportConfig

    served = _model_folder(ctx)
    pre_size = 28
    # the CPU smoke checks the path end to end (every client gets at least one answer), not the figure
    args = argparse.Namespace(seconds=1.0 if ctx.cpu_smoke else 10.0, clients=8, size=pre_size, max_wait_ms=2.0)
    http = serve_load.throughput_images(ctx.work / "serve", served, args, batch=32, deadline=deadline)
    session = create_session(served / "model.onnx", ExportConfig())
    x = (np.random.default_rng(0).random((32, 1, pre_size, pre_size)) * 255).astype(np.float32)
    t = _ms(lambda: run_session(session, x), deadline, 20 if ctx.cpu_smoke else 200)
    raw = 32 * 1000 / t
    table = [["path", "images/s"], ["HTTP server (32 images per request)", f"{http:.0f}"],
             ["raw ONNX Runtime, batch 32", f"{raw:.0f}"], ["ratio server / raw", f"{http / raw:.2f}"]]  # fmt: skip
    return {"table": table, "notes": [f"provider {session.get_providers()[0]}, {args.clients} clients"]}
