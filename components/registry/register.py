"""Register a trained model folder in MLflow with both a PyTorch and an ONNX flavour.

Layout of the registered model (``models:/<name>@<alias>``)::

    MLmodel               # flavours: pytorch (Classifier), onnx (data: model.onnx), python_function
    data/                 # the pickled Classifier (mlflow.pytorch)
    model.onnx            # raw pixels (N, C, H, W) 0..255 -> probabilities, embedding (when exported)
    preprocessing.json    # image size, channels, mean/std, class names
    model.ckpt            # the same weights as a weights-only Lightning checkpoint whose hyperparameters rebuild
                          # the network (loaded with weights_only=True; before: model.pt + model_config.json)
    model_card.md
    input_example.json, serving_input_example.json, requirements.txt, ...

``python_function`` loads the ONNX graph when there is one (the serving path), else the PyTorch net.
The new version gets the alias ``challenger``; only the promotion gate (or an audited manual
promotion) moves ``champion``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from components.deploy.runtime import usable_providers
from components.models.artifacts import CHECKPOINT, MODEL_CONFIG, WEIGHTS, is_model_dir, load_model_dir
from components.registry.aliases import CHALLENGER, move_alias
from components.registry.model_card import FILENAME as CARD_FILE
from components.registry.model_card import CardContent, publish_card, render_model_card, seed_metrics
from components.registry.preflight import CLASS_NAMES_TAG, PreflightError, class_list_problem, registered_class_names
from components.tracking import (
    RetryPolicy,
    experiment_name,
    flat_params,
    lineage_tags,
    mlflow_client,
    setup_mlflow,
    version_tags,
    with_retries,
)
from medpipe.config import Lineage, RegistryConfig
from medpipe.errors import RegistryError
from medpipe.imaging.preprocessing import FILENAME as PREPROCESSING_FILE
from medpipe.imaging.preprocessing import Preprocessing
from medpipe.settings import Settings

if TYPE_CHECKING:
    from mlflow.models import Model, ModelSignature

    from components.evaluation.evaluate import EvaluationResult

ONNX_FILE = "model.onnx"
ARTIFACT_NAME = "model"
PARITY_TAG = "export.parity_passed"


class ParityLike(Protocol):
    passed: bool

    def as_tags(self) -> dict[str, str]: ...


class TagsLike(Protocol):
    def as_tags(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str  # models:/<name>/<version>


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("mlflow", "torch", "numpy", "onnx", "onnxruntime-gpu"):
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return reqs


def _example_and_signature(net: Any, pre: Preprocessing, onnx_path: Path | None) -> tuple[np.ndarray, ModelSignature]:
    """Input example + signature of the pyfunc model: the ONNX graph's I/O, else the Classifier's."""
    import torch
    from mlflow.models import infer_signature

    rng = np.random.default_rng(0)
    if onnx_path is not None:
        import onnxruntime as ort

        pixels = rng.integers(0, 256, (1, pre.channels, pre.image_size, pre.image_size)).astype(np.float32)
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        outputs = session.run(None, {session.get_inputs()[0].name: pixels})
        return pixels, infer_signature(pixels, dict(zip(names, outputs, strict=True)))
    size = pre.train_image_size
    x = rng.standard_normal((1, pre.channels, size, size)).astype(np.float32)
    with torch.inference_mode():
        logits = net(torch.from_numpy(x)).numpy()
    return x, infer_signature(x, logits)


class _MedpipeFlavor:
    """What ``mlflow.models.Model.log`` calls to write the model folder (PyTorch + ONNX + our JSON files)."""

    def __init__(self, net: Any, model_dir: Path, onnx_path: Path | None, card: str) -> None:
        self.net, self.model_dir, self.onnx_path, self.card = net, model_dir, onnx_path, card

    def save_model(self, path: str, mlflow_model: Model, signature: Any, input_example: Any) -> None:
        import mlflow.pytorch
        from mlflow import pyfunc
        from mlflow.models.model import MLMODEL_FILE_NAME

        mlflow.pytorch.save_model(
            self.net,
            path,
            mlflow_model=mlflow_model,
            signature=signature,
            input_example=input_example,
            pip_requirements=_requirements(),
            # MLflow 3.17 defaults to "pt2" (torch.export): load_model would give a GraphModule, not our Classifier
            serialization_format="pickle",
        )
        out = Path(path)
        # the checkpoint too: deploy verifies the registered ONNX against these weights without unpickling
        for name in (CHECKPOINT, MODEL_CONFIG, WEIGHTS):  # a legacy folder has the last two instead
            if (self.model_dir / name).is_file():
                shutil.copy2(self.model_dir / name, out / name)
        # the served graph's record (with its operating point) when there is one, else the training folder's
        beside = self.onnx_path.parent / PREPROCESSING_FILE if self.onnx_path is not None else None
        shutil.copy2(beside if beside is not None and beside.is_file() else self.model_dir / PREPROCESSING_FILE,
                     out / PREPROCESSING_FILE)  # fmt: skip
        (out / CARD_FILE).write_text(self.card)
        if self.onnx_path is not None:
            import onnx

            shutil.copy2(self.onnx_path, out / ONNX_FILE)
            mlflow_model.add_flavor(
                "onnx",
                onnx_version=onnx.__version__,
                data=ONNX_FILE,
                # only what really loads here: asking ORT for CUDA on a GPU-less machine logs an error
                providers=[p for p in usable_providers() if p != "TensorrtExecutionProvider"],
                code=None,
            )
            # the serving path: pyfunc runs the ONNX graph on raw pixels
            pyfunc.add_to_model(
                mlflow_model,
                loader_module="mlflow.onnx",
                data=ONNX_FILE,
                conda_env="conda.yaml",
                python_env="python_env.yaml",
            )
        mlflow_model.save(str(out / MLMODEL_FILE_NAME))


def register_model(
    model_dir: Path,
    onnx_path: Path | None,
    settings: Settings,
    *,
    registry: RegistryConfig,
    lineage: Lineage,
    run_id: str | None,
    data_version: str | None,
    metrics: dict[str, float] | None = None,
    parity: ParityLike | None = None,
    evaluation: EvaluationResult | None = None,
    faithfulness: TagsLike | None = None,
) -> RegisteredVersion:
    """Log ``model_dir`` (+ ``onnx_path``) under ``run_id`` and register it as ``registry.model_name@challenger``.

    Tags the run and the version with lineage, the export parity result and the test figures of ``evaluation``
    (the one evaluation of the served graph; ``metrics`` only when there is none) and the Grad-CAM ``faithfulness``
    (``explain.*``, :mod:`components.evaluation.faithfulness`); writes ``model_card.md``.
    ``model_dir`` is only read: when the tracking server is unreachable a :class:`RegistryError` says so and the
    folder stays as it is.
    """
    import mlflow
    from mlflow.models import Model

    model_dir = Path(model_dir)
    if not is_model_dir(model_dir):
        raise RegistryError(f"{model_dir} is not a medpipe model folder (no {CHECKPOINT}); pass the training output")
    if onnx_path is not None and not Path(onnx_path).is_file():
        raise RegistryError(f"ONNX file {onnx_path} does not exist; export first (`medpipe export`) or pass None")
    name = registry.model_name
    hint = (
        f"The trained model folder {model_dir} is kept; register it later with `medpipe registry register {model_dir}`."
    )
    net, pre = load_model_dir(model_dir)
    if evaluation is not None:
        metrics = evaluation.flat()
        pre = evaluation.preprocessing or pre
    metrics = metrics or {}
    data_version = data_version or pre.data_version
    policy = RetryPolicy.for_registry(registry, hint)
    setup_mlflow(settings, experiment_name(lineage.project), policy)
    client = mlflow_client(settings)
    tags = lineage_tags(lineage, data_version, settings)
    export_tags = {PARITY_TAG: "not_evaluated"}
    if parity is not None:
        export_tags = {**{k: str(v) for k, v in parity.as_tags().items()}, PARITY_TAG: str(bool(parity.passed)).lower()}

    def retry(what: str, fn: Any) -> Any:
        return with_retries(fn, what=what, uri=settings.tracking_uri, policy=policy)

    explain_tags = faithfulness.as_tags() if faithfulness is not None else {}
    if run_id is None:
        run_id = retry("creating a registration run", lambda: _new_run(client, lineage, tags))
    # the run keeps every explain.* figure (the gate's card reads them); the version only the headline
    retry("tagging the run", lambda: [client.set_tag(run_id, k, v) for k, v in {**tags, **explain_tags}.items()])
    run_data = retry("reading the run", lambda: client.get_run(run_id).data)
    train_params = dict(run_data.params)
    card = CardContent(
        name=name,
        version=None,
        run_id=run_id,
        preprocessing=pre,
        lineage=tags,
        train_params=train_params,
        metrics=metrics,
        metrics_source=f"served ONNX graph on {evaluation.test_set}" if evaluation else "not evaluated yet",
        cis=evaluation.cis if evaluation else {},
        operating_point=evaluation.operating_point if evaluation else None,
        export=export_tags,
        seeds=seed_metrics(run_data.metrics),
        explanation=explain_tags,
    )
    problem = retry(
        "reading the registered class list",
        lambda: class_list_problem(registered_class_names(client, name), name, pre.class_names),
    )
    if problem:
        raise PreflightError(f"{problem}. {hint}")
    example, signature = _example_and_signature(net, pre, onnx_path)
    flavor = _MedpipeFlavor(net, model_dir, Path(onnx_path) if onnx_path else None, render_model_card(card, registry))
    test_tags = {f"test.{k}": f"{v:.6g}" for k, v in metrics.items() if "." not in k}
    all_tags = {**tags, **export_tags, **explain_tags, **test_tags}
    try:
        info = Model.log(
            artifact_path=None,
            name=ARTIFACT_NAME,
            flavor=flavor,
            flavor_name="pytorch",
            run_id=run_id,
            signature=signature,
            input_example=example,
        )
        version = _new_version(client, name, info, run_id, version_tags(all_tags, registry.primary_metric))
    except (OSError, mlflow.exceptions.MlflowException) as err:
        raise RegistryError(f"registering {model_dir} as {name!r} failed: {err}. {hint}") from err
    retry(
        "recording the class list",
        lambda: client.set_registered_model_tag(name, CLASS_NAMES_TAG, json.dumps(list(pre.class_names))),
    )
    card.version = version
    text = render_model_card(card, registry)
    retry("writing the model card", lambda: publish_card(client, name, version, run_id, text))
    if not (client.get_registered_model(name).description or "").strip():
        client.update_registered_model(
            name, description=f"medpipe classifier for `{lineage.dataset}`. Serving alias: `@champion`."
        )
    move_alias(
        settings,
        registry,
        CHALLENGER,
        version,
        action="register",
        reason=f"registered from run {run_id}",
        actor="register",
    )
    return RegisteredVersion(name=name, version=version, run_id=run_id, model_uri=f"models:/{name}/{version}")


def _new_version(client: Any, name: str, info: Any, run_id: str, tags: dict[str, str]) -> str:
    """Register the logged model ``info`` as a new version of ``name`` through the client (the fluent
    ``registered_model_name=`` path prints "Successfully registered ..." to stderr, past every log setting)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    mv = client.create_model_version(
        name, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id, await_creation_for=30
    )
    # the link MLflow's own registration keeps on the logged model (the UI's "registered versions")
    linked = json.loads(client.get_logged_model(info.model_id).tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    linked.append({"name": name, "version": str(mv.version)})
    client.set_logged_model_tags(info.model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(linked)})
    return str(mv.version)


def _new_run(client: Any, lineage: Lineage, tags: dict[str, str]) -> str:
    import mlflow
    from mlflow.entities import Param

    exp = mlflow.get_experiment_by_name(experiment_name(lineage.project))
    run = client.create_run(exp.experiment_id, tags=tags, run_name="register")
    params = [Param(k, v) for k, v in flat_params(lineage.params).items()]
    client.log_batch(run.info.run_id, params=params)  # MlflowClient has no log_params
    client.set_terminated(run.info.run_id)
    return run.info.run_id
