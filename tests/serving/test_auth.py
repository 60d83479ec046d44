"""Auth matches intent: keys set means auth on; contradicting settings and open public binds are refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from components.serving.auth import api_keys, check_bind
from medpipe.config import ServingConfig
from medpipe.errors import MedpipeError
from medpipe.settings import Settings
from tests.helpers.cli import HEAVY, run_medpipe

REPO = Path(__file__).resolve().parents[2]


def _npy() -> list[tuple[str, tuple[str, bytes, str]]]:
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros((28, 28), np.uint8))
    return [("files", ("a.npy", buf.getvalue(), "application/octet-stream"))]


def test_keys_alone_turn_auth_on(onnx_folder, serve, client, tmp_path) -> None:
    settings = Settings(home=tmp_path / "keyed", api_keys=SecretStr("k1, k2"))
    with serve(str(onnx_folder), settings=settings) as (url, _):  # require_api_key left at its default (null)
        for method, path in (("post", "/v1/predict"), ("post", "/v1/reload"), ("get", "/v1/model")):
            kwargs = {"files": _npy()} if path == "/v1/predict" else {}
            r = getattr(client, method)(f"{url}{path}", **kwargs)
            assert (r.status_code, r.json()["error"]) == (401, "unauthorized"), (path, r.text)
        r = client.post(f"{url}/v1/feedback", json={"request_id": "x", "label": "malignant"})
        assert r.status_code == 401
        assert client.post(f"{url}/v1/predict", files=_npy(), headers={"X-API-Key": "k2"}).status_code == 200
        assert client.get(f"{url}/v1/health").status_code == 200  # probes stay open
        assert client.get(f"{url}/v1/ready").status_code == 200


def test_contradicting_settings_are_refused(tmp_path) -> None:
    keyed = Settings(home=tmp_path, api_keys=SecretStr("k1"))
    with pytest.raises(MedpipeError, match="require_api_key is false"):
        api_keys(ServingConfig(require_api_key=False), keyed)
    with pytest.raises(MedpipeError, match="MEDPIPE_API_KEYS is empty"):
        api_keys(ServingConfig(require_api_key=True), Settings(home=tmp_path))
    with pytest.raises(MedpipeError, match="placeholder"):
        api_keys(ServingConfig(), Settings(home=tmp_path, api_keys=SecretStr("CHANGE-ME")))
    assert api_keys(ServingConfig(), keyed) == {"k1"}
    assert api_keys(ServingConfig(), Settings(home=tmp_path)) == frozenset()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "serving.example.org"])
def test_public_bind_without_keys_needs_opt_in(host: str) -> None:
    with pytest.raises(MedpipeError, match="allow_unauthenticated"):
        check_bind(host, frozenset(), ServingConfig())
    check_bind(host, frozenset({"k"}), ServingConfig())
    check_bind(host, frozenset(), ServingConfig(allow_unauthenticated=True))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_without_keys_is_fine(host: str) -> None:
    check_bind(host, frozenset(), ServingConfig())


def test_medpipe_serve_refuses_an_open_public_bind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDPIPE_", "MLFLOW_"))}
    env["MEDPIPE_HOME"] = str(tmp_path / "state")
    args = ["serve", "--host", "0.0.0.0", "--params", str(REPO / "params.yaml")]
    out, imported = run_medpipe(args, env=env, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "refusing to serve on 0.0.0.0 without API keys" in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr
    assert not imported & HEAVY, sorted(imported & HEAVY)  # refused before the server's libraries load
