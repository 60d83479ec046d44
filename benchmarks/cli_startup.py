"""`medpipe --help` wall time (goal < 2 s), next to a bare `python -c pass` measured in the same run."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def _time(cmd: list[str], repeats: int = 5) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


if __name__ == "__main__":
    bare = _time([sys.executable, "-c", "pass"])
    cli = _time([sys.executable, "-m", "medpipe", "--help"])
    print(f"python -c pass : {bare:.3f} s")
    print(f"medpipe --help : {cli:.3f} s  (goal < 2 s; {cli / bare:.1f}x a bare interpreter)")
