"""Importing the code does nothing: no environment writes, no PATH change, no logging filters, no PIL limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import json, logging, os, pkgutil, importlib, sys
from PIL import Image
# Third-party libraries set their own variables on import (torch: KMP_*, TORCHINDUCTOR_CACHE_DIR, ...):
# import them first, so that what changes below is ours.
for lib in ("torch", "torchvision", "lightning", "mlflow", "prefect", "evidently", "dvc.repo", "onnxruntime",
            "optuna", "sklearn", "fastapi", "uvicorn", "matplotlib", "pandas", "scipy", "pydicom", "webdataset"):
    importlib.import_module(lib)
before_env, before_pil = dict(os.environ), Image.MAX_IMAGE_PIXELS
loggers = lambda: {n: len(l.filters) for n, l in logging.Logger.manager.loggerDict.items() if hasattr(l, "filters")}
before_filters = loggers()
names = []
for pkg in ("medpipe", "components", "monitoring", "pipelines"):
    mod = importlib.import_module(pkg)
    names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
after = loggers()
print(json.dumps({
    "modules": len(names),
    "env_changed": sorted(k for k in set(before_env) | set(os.environ) if before_env.get(k) != os.environ.get(k)),
    "pil_changed": Image.MAX_IMAGE_PIXELS != before_pil,
    # Prefect configures each of its own loggers as it creates them; what must not appear is a filter that
    # our code puts on somebody's logger (e.g. silencing Lightning at import).
    "new_filters": sorted(n for n, k in after.items() if k > before_filters.get(n, 0) and not n.startswith("prefect")),
}))
"""


def test_importing_every_module_has_no_side_effects() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["modules"] > 100  # every module of the four packages was imported
    assert found["env_changed"] == [], found["env_changed"]
    assert not found["pil_changed"]
    assert found["new_filters"] == [], found["new_filters"]
