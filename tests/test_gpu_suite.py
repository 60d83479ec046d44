"""The GPU proof script stays runnable: its CPU smoke runs every step for real (tiny sizes) and writes the table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.configs import REPO_ROOT

STEPS = ("throughput", "quality", "concurrency", "inference", "serving")


@pytest.mark.slow  # trains, searches, exports and serves (every step of the suite, for real)
def test_cpu_smoke_runs_every_step_and_writes_the_table(tmp_path, breastmnist_npz) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_suite.py", "--cpu-smoke", "--out", str(out), "--data", str(breastmnist_npz),
         "--wheels", str(tmp_path / "no-wheels")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "gpu_results.json").read_text())
    assert list(results["steps"]) == list(STEPS)
    for name, step in results["steps"].items():
        assert step["status"] == "ok", (name, step["status"])
        assert len(step["table"]) >= 2, name  # a header and at least one measured row
    quality = results["steps"]["quality"]
    auc = quality["test_auc"]
    assert quality["table"][0][5] == "test AUC" and quality["table"][1][5] == f"{auc:.4f}"  # the measured figure
    table = (out / "gpu_results.md").read_text()
    assert f"{auc:.4f}" in table
    assert "ratio server / raw" in table and "Lightning img/s" in table


def test_a_missing_package_skips_its_step_with_its_name(tmp_path, breastmnist_npz) -> None:
    """The GPU machine lacks packages: the step says which one and the suite goes on (no silent pass)."""
    code = (
        "import sys, runpy; sys.modules['optuna'] = None; "
        f"sys.argv = ['gpu_suite.py', '--cpu-smoke', '--steps', 'quality', '--out', {str(tmp_path)!r}, "
        f"'--data', {str(breastmnist_npz)!r}]; runpy.run_path('benchmarks/gpu_suite.py', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads((tmp_path / "gpu_results.json").read_text())["steps"]["quality"]["status"]
    assert status == "skipped: needs the 'optuna' package, which this machine lacks"


def test_unknown_step_and_bad_box_are_refused(tmp_path) -> None:
    for extra in (["--steps", "warp"], ["--box", "quality=soon"]):
        proc = subprocess.run(
            [sys.executable, "benchmarks/gpu_suite.py", "--cpu-smoke", "--out", str(tmp_path), *extra],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 2 and ("unknown step" in proc.stderr or "STEP=SECONDS" in proc.stderr)
