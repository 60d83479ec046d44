"""``/docs`` and ``/redoc`` need nothing from the internet: every asset they load is served by the server itself."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest

pytestmark = pytest.mark.slow


def test_docs_assets_are_local(onnx_folder, serve, client) -> None:
    with serve(str(onnx_folder)) as (url, _):
        for page in ("/docs", "/redoc"):
            r = client.get(f"{url}{page}")
            assert r.status_code == 200 and "text/html" in r.headers["content-type"]
            html = r.text
            refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
            refs += re.findall(r"""url\s*:\s*['"]([^'"]+)['"]""", html)  # Swagger's openapi.json
            refs += re.findall(r"""spec-url\s*=\s*["']([^"']+)["']""", html)  # ReDoc's
            assert refs, page
            external = [ref for ref in refs if re.match(r"^(https?:)?//", ref)]
            assert not external, f"{page} loads {external}"
            for ref in refs:
                asset = client.get(urljoin(f"{url}{page}", ref))
                assert asset.status_code == 200 and len(asset.content) > 100, f"{page}: {ref}"
        spec = client.get(f"{url}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of MEDPIPE_API_KEYS.",
    }
    assert spec["paths"]["/v1/predict"]["post"]["security"] == [{"APIKeyHeader": []}]
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/*", "application/dicom"} <= set(body)
    assert {"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer", "/metrics"} <= set(spec["paths"])
