"""How long ``softmax-ce verify`` and ``report`` take from a fresh process, against JAX's own
start-up measured in the same run.

Run: ``python benchmarks/bench_startup.py [rounds] [checkout]``; with a checkout of an earlier
version (``git worktree add --detach DIR COMMIT``), its ``verify`` and ``report`` are timed too,
cold and warm (``PYTHONPATH``). Prints a Markdown table of the best wall
time of each, over interleaved rounds (one run of each per round, so that a machine whose speed
drifts slows them alike):

* JAX's start-up: ``python -c "import jax.numpy as j; j.zeros(1).block_until_ready()"``;
* ``verify`` (the default grid, 192 cells) and ``report``, **cold**: a new, empty cache directory
  (nothing of ours on disk), and **warm**: the cache the cold run wrote;
* ``verify --no-cache``: compiling everything, writing nothing;
* a loss variant's ``verify`` (:data:`VARIANT`: label smoothing, index targets, ignore_index,
  mean; 72 batches), cold and warm.

Wall and CPU seconds are both reported: on a shared machine the wall time of a program that
compiles in background threads suffers more from other load than JAX's single-threaded start-up.

The cache directory is a temporary one (``SOFTMAX_CE_CACHE_DIR``), never the user's.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JAX = [sys.executable, "-c", "import jax.numpy as j; j.zeros(1).block_until_ready()"]
CLI = [sys.executable, "-m", "verify._cli"]
VARIANT = ["--label-smoothing", "0.1", "--targets", "indices", "--ignore-index", "-100",
           "--reduction", "mean"]


def seconds(command: list[str], cache: Path | None, cwd: Path,
            path: str | None = None) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system, all threads) of one run."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = path
    env.pop("SOFTMAX_CE_NO_CACHE", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if cache is not None:
        env["SOFTMAX_CE_CACHE_DIR"] = str(cache)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timings(rounds: int, before: str | None = None
            ) -> tuple[list[str], dict[str, float], dict[str, float]]:
    """The commands' names, and the best wall and CPU seconds of each over ``rounds``
    interleaved rounds (``before``: an earlier checkout whose ``verify`` is timed too)."""
    names = ["jax", "verify cold", "verify warm", "verify --no-cache", "report cold",
             "report warm", "variant cold", "variant warm"]
    if before is not None:
        names += ["verify cold, earlier checkout", "verify warm, earlier checkout",
                  "report cold, earlier checkout", "report warm, earlier checkout",
                  "variant cold, earlier checkout", "variant warm, earlier checkout"]
    best = dict.fromkeys(names, float("inf"))
    cpu = dict.fromkeys(names, float("inf"))
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
            cache = root / f"variant-{number}"
            times["variant cold"] = seconds([*verify, *VARIANT], cache, root)
            times["variant warm"] = seconds([*verify, *VARIANT], cache, root)
            if before is not None:
                cache = root / f"earlier-{number}"
                times["verify cold, earlier checkout"] = seconds(verify, cache, root, before)
                times["verify warm, earlier checkout"] = seconds(verify, cache, root, before)
                cache = root / f"earlier-report-{number}"
                times["report cold, earlier checkout"] = seconds(report, cache, root, before)
                times["report warm, earlier checkout"] = seconds(report, cache, root, before)
                cache = root / f"earlier-variant-{number}"
                times["variant cold, earlier checkout"] = seconds([*verify, *VARIANT], cache,
                                                                  root, before)
                times["variant warm, earlier checkout"] = seconds([*verify, *VARIANT], cache,
                                                                  root, before)
            for name, (wall, used) in times.items():
                best[name] = min(best[name], wall)
                cpu[name] = min(cpu[name], used)
    return names, best, cpu


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    before = sys.argv[2] if len(sys.argv) > 2 else None
    names, best, cpu = timings(rounds, before)
    print(f"# softmax-ce start-up — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, best of {rounds} interleaved rounds\n")
    print("| command | wall s | ÷ JAX start-up | CPU s | ÷ JAX start-up |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        print(f"| {name} | {best[name]:.2f} | {best[name] / best['jax']:.1f}× | "
              f"{cpu[name]:.2f} | {cpu[name] / cpu['jax']:.1f}× |")
    print("\nCPU seconds count every thread (compilation runs in background threads), so on a "
          "busy machine they show what the wall time would be on a quiet one with one core.")


if __name__ == "__main__":
    main()
