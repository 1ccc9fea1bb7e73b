"""How long ``softmax-ce verify`` and ``report`` take from a fresh process, against JAX's own
start-up measured in the same run.

Run: ``python benchmarks/bench_startup.py [rounds]``. Prints a Markdown table of the best wall
time of each, over interleaved rounds (one run of each per round, so that a machine whose speed
drifts slows them alike):

* JAX's start-up: ``python -c "import jax.numpy as j; j.zeros(1).block_until_ready()"``;
* ``verify`` (the default grid, 192 cells) and ``report``, **cold**: a new, empty cache directory
  (nothing of ours on disk), and **warm**: the cache the cold run wrote;
* ``verify --no-cache``: compiling everything, writing nothing.

The cache directory is a temporary one (``SOFTMAX_CE_CACHE_DIR``), never the user's.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JAX = [sys.executable, "-c", "import jax.numpy as j; j.zeros(1).block_until_ready()"]
CLI = [sys.executable, "-m", "verify._cli"]


def seconds(command: list[str], cache: Path | None, cwd: Path) -> float:
    env = dict(os.environ)
    env.pop("SOFTMAX_CE_NO_CACHE", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if cache is not None:
        env["SOFTMAX_CE_CACHE_DIR"] = str(cache)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    names = ["jax", "verify cold", "verify warm", "verify --no-cache", "report cold",
             "report warm"]
    best = dict.fromkeys(names, float("inf"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        verify = [*CLI, "verify", "-q", "--format", "json", "--out", str(root / "out.json")]
        report = [*CLI, "report", "-q", "--out", str(root / "report")]
        for number in range(rounds):
            times = {"jax": seconds(JAX, None, root)}
            cache = root / f"verify-{number}"
            times["verify cold"] = seconds(verify, cache, root)
            times["verify warm"] = seconds(verify, cache, root)
            times["verify --no-cache"] = seconds([*verify, "--no-cache"], root / "unused", root)
            cache = root / f"report-{number}"
            times["report cold"] = seconds(report, cache, root)
            times["report warm"] = seconds(report, cache, root)
            for name, value in times.items():
                best[name] = min(best[name], value)
    print(f"# softmax-ce start-up — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, best of {rounds} interleaved rounds\n")
    print("| command | seconds | ÷ JAX start-up |")
    print("|---|---:|---:|")
    for name in names:
        print(f"| {name} | {best[name]:.2f} | {best[name] / best['jax']:.1f}× |")


if __name__ == "__main__":
    main()
