"""A killed writer never leaves a prepared folder missing or half-written (real processes, SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from components.data.swap import discard, recover, swap_in

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys, shutil
from pathlib import Path
from components.data.swap import swap_in
target, i = Path(sys.argv[1]), 0
while True:
    new = target.parent / f".{target.name}.tmp-{i}"
    new.mkdir()
    for k in range(20):
        (new / f"part-{k}").write_text(str(i))
    (new / "manifest.json").write_text(str(i))  # written last: its presence means the folder is complete
    swap_in(new, target)
    print(i, flush=True)
    i += 1
"""


def _complete(folder: Path) -> bool:
    stamp = (folder / "manifest.json").read_text()
    return sorted(p.name for p in folder.iterdir()) == sorted(
        [*(f"part-{k}" for k in range(20)), "manifest.json"]
    ) and {(folder / f"part-{k}").read_text() for k in range(20)} == {stamp}


def test_sigkilled_swaps_leave_a_complete_folder(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    for attempt in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for swapped in range(1 + attempt):  # killed after a different number of swaps each time, mid-loop
            assert proc.stdout.readline().strip() == str(swapped)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        recover(target)
        assert target.is_dir() and _complete(target), f"attempt {attempt}: {sorted(os.listdir(target))}"
        for leftover in tmp_path.glob(".prepared.tmp-*"):  # what a real writer's next run cleans up
            subprocess.run(["rm", "-rf", str(leftover)], check=True)


def test_recover_puts_back_a_folder_moved_aside_by_an_interrupted_fallback(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    (tmp_path / ".prepared.old-1234").mkdir()
    (tmp_path / ".prepared.old-1234" / "manifest.json").write_text("old")
    recover(target)
    assert (target / "manifest.json").read_text() == "old" and not list(tmp_path.glob(".prepared.old-*"))
    new = tmp_path / "new"
    new.mkdir()
    (new / "manifest.json").write_text("new")
    swap_in(new, target)
    assert (target / "manifest.json").read_text() == "new" and not new.exists()


def test_discard_removes_the_folder_and_an_earlier_leftover(tmp_path: Path) -> None:
    target = tmp_path / "run"
    (target / "sub").mkdir(parents=True)
    (tmp_path / ".run.old-1234").mkdir()  # from a discard killed mid-delete
    discard(target)
    assert sorted(tmp_path.iterdir()) == []
