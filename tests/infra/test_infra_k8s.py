"""infra/k8s: manifests against the Kubernetes OpenAPI schemas (kubernetes-validate, offline, strict),
the GPU work-pool template rendered by prefect-kubernetes' own job configuration, the Helm values."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from medpipe.settings import Settings
from tests.helpers.infra import GPU_JOB_TEMPLATE, K8S, load_yaml_docs

K8S_VERSION = "1.31"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name not in {"kustomization.yaml", "prefect-worker-values.yaml"})


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for p in MANIFESTS for o in load_yaml_docs(p)}


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(manifest: Path) -> None:
    for obj in load_yaml_docs(manifest):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_validator_rejects_a_misplaced_field() -> None:
    obj = copy.deepcopy(_objects()[("Deployment", "medpipe-serving")])
    _pod_spec(obj)["containers"][0]["readinessprobe"] = {"httpGet": {"path": "/v1/ready", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_kustomization_lists_existing_manifests() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["base.yaml", "mlflow.yaml", "serving.yaml"]
    assert all((K8S / r).is_file() for r in kustomization["resources"])


def test_serving_probes() -> None:
    deployment = _objects()[("Deployment", "medpipe-serving")]
    (container,) = _pod_spec(deployment)["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/v1/health"
    assert "serving.host=0.0.0.0" in container["command"]
    port = container["ports"][0]
    assert f"serving.port={port['containerPort']}" in container["command"]
    service = _objects()[("Service", "medpipe-serving")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_mlflow_server_postgres_and_s3() -> None:
    deployment = _objects()[("Deployment", "mlflow")]
    (container,) = _pod_spec(deployment)["containers"]
    args = container["args"]
    assert container["command"] == ["mlflow", "server"]
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in args
    assert "--serve-artifacts" in args and any(a.startswith("--artifacts-destination=s3://") for a in args)
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "medpipe-secrets"
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    tracking = _objects()[("ConfigMap", "medpipe-stores")]["data"]["MLFLOW_TRACKING_URI"]
    assert tracking.split("//", 1)[1] in hosts  # the Host header the clients send is accepted


def test_training_job_runs_lightning_ddp_under_torchrun() -> None:
    job = _objects()[("Job", "medpipe-train")]
    spec = job["spec"]
    (container,) = _pod_spec(job)["containers"]
    args = container["args"]
    nnodes = int(next(a for a in args if a.startswith("--nnodes=")).split("=")[1])
    nproc = int(next(a for a in args if a.startswith("--nproc-per-node=")).split("=")[1])
    assert container["command"] == ["torchrun"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == nnodes
    assert container["resources"]["limits"]["nvidia.com/gpu"] == nproc
    assert f"train.devices={nproc}" in args and f"train.num_nodes={nnodes}" in args
    assert "train.strategy=ddp" in args
    # rendezvous host = pod 0 of the Indexed Job behind the headless Service
    service = _objects()[("Service", "medpipe-train")]
    assert service["spec"]["clusterIP"] == "None" and _pod_spec(job)["subdomain"] == "medpipe-train"
    assert "--master-addr=medpipe-train-0.medpipe-train" in args


def test_store_env_names_are_read_by_settings() -> None:
    fields = {f"MEDPIPE_{name.upper()}" for name in Settings.model_fields}
    config = _objects()[("ConfigMap", "medpipe-stores")]["data"]
    secret = _objects()[("Secret", "medpipe-secrets")]["stringData"]
    names = {k for k in {**config, **secret} if k.startswith("MEDPIPE_")}
    assert names <= fields, sorted(names - fields)
    assert config["MEDPIPE_DVC_REMOTE"].startswith("s3://")
    assert secret["MEDPIPE_OPTUNA_STORAGE"].startswith("postgresql+psycopg://")


# --- Prefect Kubernetes work pool (medpipe-k8s) ----------------------------------------------------------


def _render_job(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The Job manifest the Kubernetes worker would submit for one flow run.

    Same steps as ``BaseJobConfiguration.from_template_and_values`` + ``prepare_for_flow_run`` of
    prefect-kubernetes, minus the block/variable look-ups that need a Prefect server (the template has none).
    """
    from prefect.client.schemas.objects import FlowRun
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    variables = KubernetesWorkerJobConfiguration._get_base_config_defaults(template["variables"]["properties"])
    variables.update(values)
    populated = apply_values(template=copy.deepcopy(template["job_configuration"]), values=variables)
    config = KubernetesWorkerJobConfiguration(**populated)
    config.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="brave-otter", flow_id=uuid.uuid4()))
    return config.job_manifest


def _strict_validate_job(manifest: dict[str, Any]) -> None:
    # prefect-kubernetes insists on spec.template.spec.{completions,parallelism} (in its default template too),
    # which are not Pod fields; Kubernetes drops them with a warning. Validate the rest strictly.
    manifest = copy.deepcopy(manifest)
    pod = manifest["spec"]["template"]["spec"]
    assert pod.pop("completions") == 1 and pod.pop("parallelism") == 1
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_gpu_template_is_accepted_by_the_server_schema(gpu_job_template: dict[str, Any]) -> None:
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect_kubernetes.worker import KubernetesWorker

    WorkPoolCreate(name="medpipe-k8s", type="kubernetes", base_job_template=gpu_job_template)
    ours = set(gpu_job_template["variables"]["properties"])
    upstream = set(KubernetesWorker.get_default_base_job_template()["variables"]["properties"])
    assert upstream <= ours, f"variables of the default Kubernetes template missing: {sorted(upstream - ours)}"
    broken = copy.deepcopy(gpu_job_template)
    del broken["variables"]["properties"]["gpu_count"]
    with pytest.raises(ValueError, match="gpu_count"):
        WorkPoolCreate(name="medpipe-k8s", type="kubernetes", base_job_template=broken)


def test_gpu_job_renders_to_a_valid_gpu_job(gpu_job_template: dict[str, Any]) -> None:
    job = _render_job(gpu_job_template, {"image": "registry.example/medpipe:cuda-1.0"})
    _strict_validate_job(job)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert container["image"] == "registry.example/medpipe:cuda-1.0"
    assert container["args"] == ["prefect", "flow-run", "execute"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MEDPIPE_HOME"] == "/data/medpipe" and "PREFECT__FLOW_RUN_ID" in env
    assert {"configMapRef": {"name": "medpipe-stores"}} in container["envFrom"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/dev/shm", "/data"}
    assert job["metadata"]["namespace"] == "medpipe" and job["metadata"]["generateName"] == "brave-otter-"


def test_gpu_template_renders_cpu_runs_and_multi_gpu(gpu_job_template: dict[str, Any]) -> None:
    cpu = _render_job(gpu_job_template, {"gpu_count": 0, "node_selector": {}, "tolerations": [], "cpu_limit": "4"})
    _strict_validate_job(cpu)
    (container,) = cpu["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": 0}
    multi = _render_job(gpu_job_template, {"gpu_count": 4, "env": {"EXTRA": "1"}})
    _strict_validate_job(multi)
    (container,) = multi["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert {"name": "EXTRA", "value": "1"} in container["env"]


# --- Helm values for the official prefect-worker chart -------------------------------------------------

# The keys of the prefect-worker chart's values.schema.json that these values use (PrefectHQ/prefect-helm,
# charts/prefect-worker; apiConfig values as of the chart's `selfHostedServer` rename). A subset written
# here because the chart is not installable offline; `additionalProperties: false` as upstream.
_OBJ = {"type": "object"}
WORKER_VALUES_SCHEMA = {
    "type": "object",
    "properties": {
        "worker": {
            "type": "object",
            "additionalProperties": False,
            "required": ["apiConfig", "config"],
            "properties": {
                "apiConfig": {"enum": ["cloud", "selfManagedCloud", "selfHostedServer"]},
                "selfHostedServerApiConfig": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["apiUrl"],
                    "properties": {"apiUrl": {"type": "string", "pattern": "^https?://.+/api$"}, "uiUrl": {}},
                },
                "image": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "repository": {"type": "string"},
                        "prefectTag": {"type": "string"},
                        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                        "pullSecrets": {"type": "array"},
                        "debug": {"type": "boolean"},
                    },
                },
                "config": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["workPool", "type"],
                    "properties": {
                        "workPool": {"type": "string"},
                        "workQueues": {"type": "array", "items": {"type": "string"}},
                        "queryInterval": {"type": "integer"},
                        "prefetchSeconds": {"type": "integer"},
                        "http2": {"type": "boolean"},
                        "limit": {"type": ["integer", "null"]},
                        "name": {"type": ["string", "null"]},
                        "type": {"type": "string"},
                        "installPolicy": {"type": "string"},
                        "baseJobTemplate": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "existingConfigMapName": {"type": "string"},
                                "configuration": {"type": ["string", "null"]},
                                "name": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
                "replicaCount": {"type": "integer"},
                "resources": _OBJ,
                "livenessProbe": _OBJ,
                "extraEnvVars": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                "nodeSelector": _OBJ,
                "tolerations": {"type": "array"},
                "podSecurityContext": _OBJ,
                "containerSecurityContext": _OBJ,
            },
        },
        "role": _OBJ,
        "rolebinding": _OBJ,
        "serviceAccount": _OBJ,
    },
}


def test_helm_values_fit_the_chart(gpu_job_template: dict[str, Any]) -> None:
    values = yaml.safe_load((K8S / "prefect-worker-values.yaml").read_text())
    # `--set-file worker.config.baseJobTemplate.configuration=infra/k8s/prefect-gpu-job-template.json`
    values["worker"]["config"]["baseJobTemplate"]["configuration"] = GPU_JOB_TEMPLATE.read_text()
    jsonschema.validate(values, WORKER_VALUES_SCHEMA)
    assert values["worker"]["config"]["workPool"] == "medpipe-k8s"
    assert values["worker"]["config"]["type"] == "kubernetes"
    assert json.loads(values["worker"]["config"]["baseJobTemplate"]["configuration"]) == gpu_job_template
    typo = copy.deepcopy(values)
    typo["worker"]["config"]["workpool"] = typo["worker"]["config"].pop("workPool")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, WORKER_VALUES_SCHEMA)


def test_worker_image_matches_locked_prefect() -> None:
    from importlib.metadata import version

    values = yaml.safe_load((K8S / "prefect-worker-values.yaml").read_text())
    tag = values["worker"]["image"]["prefectTag"]
    assert tag.startswith(f"{version('prefect')}-") and tag.endswith("-kubernetes")
