"""Shared by every test module: one persistent cache of compiled programs for the session, and
the default grid, checked once.

The cache lives in a temporary directory made for the session (never the user's own cache) and
is named in the environment before anything compiles, so that the CLI in a subprocess and the
notebooks' kernels read and write it too: each program compiles once in the whole suite.

The notebooks run in their own kernels, started in background threads as soon as the tests are
collected (:func:`executed_notebook`): they use the second core while the tests in this process
use the first. They have a cache of their own, so that no two processes write one entry.
"""

import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

_CACHE_ROOT = tempfile.mkdtemp(prefix="softmax-ce-tests-")
os.environ["SOFTMAX_CE_CACHE_DIR"] = _CACHE_ROOT
os.environ.pop("SOFTMAX_CE_NO_CACHE", None)

from verify import _cache  # noqa: E402 - after the environment names the cache

_CACHE = _cache.enable()
if _CACHE is not None:  # for processes that compile without the CLI (notebook kernels)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_CACHE)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
_RUNS: dict[str, Future] = {}
_POOL: ThreadPoolExecutor | None = None


def _execute(path: Path):
    """The notebook run top to bottom in a fresh kernel (its files land in a folder of its own),
    as a reader's Jupyter runs it: inline plots, JAX on the CPU."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    folder = tempfile.mkdtemp(prefix=f"{path.stem}-", dir=_CACHE_ROOT)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    cache = os.path.join(_CACHE_ROOT, "notebooks-cache")
    env.update(JAX_PLATFORMS="cpu", SOFTMAX_CE_CACHE_DIR=cache, JAX_COMPILATION_CACHE_DIR=cache)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": folder}})
    client.execute(env=env)
    return notebook


def pytest_collection_finish(session):
    """Starts the notebooks' runs when their tests are among those collected."""
    global _POOL
    wanted = {item.name for item in session.items}
    paths = [p for p in NOTEBOOKS if f"test_notebook_runs[{p.stem}]" in wanted]
    if paths:
        _POOL = ThreadPoolExecutor(1, "notebooks")
        for path in paths:
            _RUNS[path.stem] = _POOL.submit(_execute, path)


def executed_notebook(path: Path):
    """The notebook at ``path`` after its run (started at collection, else run now)."""
    run = _RUNS.get(path.stem)
    return run.result() if run is not None else _execute(path)


def pytest_sessionfinish(session, exitstatus):
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def default_grid():
    """The default grid, once: every dtype, c = 2, 10, 1000, four scales, four label kinds."""
    import verify

    return verify.check()
