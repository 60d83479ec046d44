"""Public lookups in the MLflow model registry: what a ``models:/`` URI points at, and its files.

Serving, deploy, monitoring and the gate read the registry through these functions only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from components.tracking import mlflow_client, require_existing_store, use_tracking_store
from medpipe.errors import RegistryError
from medpipe.settings import Settings


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, "3"); else None."""
    if not uri.startswith("models:/"):
        return None
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return name, alias, None
    name, _, version = rest.rpartition("/")
    if not name:
        raise RegistryError(f"model URI {uri!r} names no version or alias; use models:/<name>@champion")
    return name, None, version


def resolve_version(uri: str, settings: Settings) -> Any:
    """The registry's ModelVersion that ``models:/name@alias`` or ``models:/name/N`` points at now."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_registry_uri(uri)  # type: ignore[misc]
    require_existing_store(settings)
    client = mlflow_client(settings)
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise RegistryError(
            f"cannot resolve {uri} in the registry at {settings.registry_uri}: {err.message.rstrip('.')}. "
            "Check the name, register a model, or promote one (`medpipe registry promote`)"
        ) from None


def download_version(name: str, version: str, settings: Settings) -> Path:
    """The files of ``models:/name/version``, downloaded once into the state folder (atomic: a complete
    folder or none)."""
    import mlflow

    dest = settings.models_dir / "serving" / name / str(version)
    if (dest / "MLmodel").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=dest.parent))
    try:
        use_tracking_store(settings)
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp)))
        if not dest.exists():  # another process may have finished first
            os.replace(got, dest)
    except Exception as err:
        raise RegistryError(f"downloading models:/{name}/{version} failed: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
