"""Importing the code does nothing: no environment writes, no PATH change, no logging filters, levels or handlers,
no warning filters, no PIL limits. And no import cycle anywhere in the four packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import json, logging, os, pkgutil, importlib, sys, warnings
from PIL import Image
# Third-party libraries set their own variables on import (torch: KMP_*, TORCHINDUCTOR_CACHE_DIR, ...):
# import them first, so that what changes below is ours (prefect.main runs Prefect's logging dictConfig: handlers
# and levels on the root, uvicorn and fastapi loggers).
for lib in ("torch", "torchvision", "lightning", "mlflow", "prefect", "prefect.main", "evidently", "dvc.repo",
            "onnxruntime", "optuna", "sklearn", "fastapi", "uvicorn", "matplotlib", "pandas", "scipy", "pydicom",
            "webdataset"):
    importlib.import_module(lib)
before_env, before_pil = dict(os.environ), Image.MAX_IMAGE_PIXELS
loggers = lambda: {n: len(l.filters) for n, l in logging.Logger.manager.loggerDict.items() if hasattr(l, "filters")}
before_filters = loggers()
every = lambda: [("", logging.root), *logging.Logger.manager.loggerDict.items()]
config = lambda: {n: (l.level, len(l.handlers)) for n, l in every()
                  if hasattr(l, "handlers") and not n.startswith("prefect")}
before_config, before_warnings = config(), list(warnings.filters)
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
    # a logger created by an import starts at (NOTSET, 0 handlers): anything else is configuration done at import
    "logging_changed": sorted(n for n, c in config().items() if c != before_config.get(n, (logging.NOTSET, 0))),
    "new_warning_filters": [str(f) for f in warnings.filters if f not in before_warnings],
}))
"""


@pytest.mark.slow  # a fresh interpreter imports the whole stack: ~45 s of CPU on the loaded box
def test_importing_every_module_has_no_side_effects() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["modules"] > 100  # every module of the four packages was imported
    assert found["env_changed"] == [], found["env_changed"]
    assert not found["pil_changed"]
    assert found["new_filters"] == [], found["new_filters"]
    assert found["logging_changed"] == [], found["logging_changed"]
    assert found["new_warning_filters"] == [], found["new_warning_filters"]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = [stack.pop()]
            while component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_any_two_modules() -> None:
    """import-linter's acyclic_siblings contract sees cycles between siblings; this sees every cycle, a package
    and its own submodule included (``medpipe.metrics`` re-exporting a submodule that imports it back)."""
    import grimp

    graph = grimp.build_graph("medpipe", "components", "monitoring", "pipelines")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}
    assert len(edges) > 100
    assert _cycles(edges) == []


def test_cycle_finder_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_core_contracts_name_every_core_module() -> None:
    """import-linter checks the modules a contract names: a new module of the medpipe core (anything in medpipe/
    but the CLI) must be named by the core contracts, or it could import a stage, a flow or Prefect unchecked."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    core_lists = [set(c["source_modules"]) for c in contracts if "medpipe.config" in c.get("source_modules", [])]
    core = {
        f"medpipe.{p.stem}"
        for p in (REPO / "medpipe").iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.stem not in ("__init__", "__main__", "cli")
    }
    assert len(core_lists) == 2 and len(core) >= 8
    for named in core_lists:
        assert core <= named, sorted(core - named)


# Modules of components/ that read params.yaml as DVC's record of a stage (not as this run's config): whether the
# run's effective values equal the file's, i.e. whether dvc.lock may record the run. The train stage lists keys of
# nearly every section (dvc.yaml), so its record compares the whole tree.
DVC_RECORD = {
    "components/dvc_pipeline.py": {"PipelineConfig", "load_config"},
    "components/data/versioning/versions.py": {"load_config"},
}


def test_stages_take_sections_not_the_whole_config() -> None:
    """Config once: only the entry points (medpipe.cli, pipelines, the DVC stage record) hold the whole
    PipelineConfig or load params.yaml; a component or monitoring function takes the sections it reads."""
    import ast

    found: dict[str, set[str]] = {}
    files = [p for pkg in ("components", "monitoring") for p in sorted((REPO / pkg).rglob("*.py"))]
    for path in files:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medpipe.config"):
                names |= {a.name for a in node.names} & {"PipelineConfig", "load_config"}
            elif isinstance(node, ast.Attribute) and node.attr in ("PipelineConfig", "load_config"):
                names.add(node.attr)
        if names:
            found[str(path.relative_to(REPO))] = names
    assert len(files) > 80
    assert found == DVC_RECORD
