"""Shared by every test module: one persistent cache of compiled programs for the session, and
the default grid, checked once in each process that asks for it.

The cache lives in a temporary directory made for the session (never the user's own cache) and
is named in the environment before anything compiles, so that the CLI in a subprocess, the
notebooks' kernels and the other workers of a parallel run (pytest-xdist: the README's
``-n 2``) read and write it too: a program compiled by one process is loaded, not
compiled again, by the next that needs it. Processes may share it: this package's entries are
written whole (a temporary name, then renamed); one of JAX's own, written in place, can be read
half-written, and JAX then warns (``verify._cache`` filters it) and compiles the program again.

The notebooks run in their own kernels, started in background threads as soon as the tests are
collected (:func:`executed_notebook`) by one process — the only one, or the first worker of a
parallel run — which leaves each executed notebook in the session's directory for whichever
process runs its test.
"""

import atexit
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... in a parallel run
if _WORKER is None:  # this run's own folder, whatever an outer process named
    os.environ["SOFTMAX_CE_TESTS_ROOT"] = tempfile.mkdtemp(prefix="softmax-ce-tests-")
    atexit.register(shutil.rmtree, os.environ["SOFTMAX_CE_TESTS_ROOT"], ignore_errors=True)
_CACHE_ROOT = os.environ["SOFTMAX_CE_TESTS_ROOT"]  # a worker's: the controller's, inherited
os.environ["SOFTMAX_CE_CACHE_DIR"] = _CACHE_ROOT
os.environ.pop("SOFTMAX_CE_NO_CACHE", None)

from verify import _cache  # noqa: E402 - after the environment names the cache

_CACHE = _cache.enable()
if _CACHE is not None:  # for processes that compile without the CLI (notebook kernels)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_CACHE)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``-n N`` each test file runs whole in one worker, in order, its module fixtures
    computed once (unless ``--dist`` names a scheduling other than xdist's default)."""
    if config.getvalue("dist") == "load":
        from xdist.scheduler import LoadFileScheduling

        return LoadFileScheduling(config, log)
    return None


NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
NOTEBOOK_SECONDS = 300
"""The longest a cell of a notebook may run."""
_EXECUTED = Path(_CACHE_ROOT) / "executed-notebooks"
_RUNNER = _EXECUTED / "runner.pid"  # the process that runs them: gw0 in a parallel run
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
    env.update(JAX_PLATFORMS="cpu")  # the session's cache, named in the environment above
    client = NotebookClient(notebook, timeout=NOTEBOOK_SECONDS, kernel_name="python3",
                            resources={"metadata": {"path": folder}})
    client.execute(env=env)
    return notebook


def _execute_and_leave(path: Path):
    """:func:`_execute`, its notebook (or the error that stopped it) left whole in
    :data:`_EXECUTED` for the other workers of a parallel run."""
    import nbformat

    partial = _EXECUTED / f".{path.stem}.{os.getpid()}"
    try:
        notebook = _execute(path)
    except BaseException as error:
        partial.write_text(f"{type(error).__name__}: {error}")
        partial.replace(_EXECUTED / f"{path.stem}.error")
        raise
    nbformat.write(notebook, partial)
    partial.replace(_EXECUTED / f"{path.stem}.ipynb")
    return notebook


def pytest_collection_finish(session):
    """Starts the notebooks' runs when their tests are among those collected: in this process,
    or, in a parallel run, in the first worker (every worker collects the same tests)."""
    global _POOL
    if _WORKER not in (None, "gw0") or session.config.option.collectonly:
        return
    wanted = {item.name for item in session.items}
    paths = [p for p in NOTEBOOKS if f"test_notebook_runs[{p.stem}]" in wanted]
    if paths:
        run = _execute
        if _WORKER is not None:  # the other workers read them from the session's folder
            _EXECUTED.mkdir(exist_ok=True)
            _RUNNER.write_text(str(os.getpid()))
            run = _execute_and_leave
        _POOL = ThreadPoolExecutor(1, "notebooks")
        for path in paths:
            _RUNS[path.stem] = _POOL.submit(run, path)


def executed_notebook(path: Path):
    """The notebook at ``path`` after its run: started at collection by this process, or by
    the first worker of a parallel run (then read from :data:`_EXECUTED` once it is there)."""
    run = _RUNS.get(path.stem)
    if run is not None:
        return run.result()
    if _WORKER is None:
        return _execute(path)
    import nbformat

    deadline = time.monotonic() + NOTEBOOK_SECONDS * len(NOTEBOOKS)  # far above their run
    while time.monotonic() < deadline:
        if (failed := _EXECUTED / f"{path.stem}.error").exists():
            raise RuntimeError(f"{path.name} did not run: {failed.read_text()}")
        if (done := _EXECUTED / f"{path.stem}.ipynb").exists():
            return nbformat.read(done, as_version=4)
        if not _alive(_RUNNER):  # gw0 crashed (xdist replaces it by another name): run it here
            return _execute(path)
        time.sleep(0.2)
    raise TimeoutError(f"{path.name}: not run by worker gw0 in time")


def _alive(pid_file: Path) -> bool:
    """Whether the process named in ``pid_file`` runs (True while the file is not written)."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return True
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:  # a crashed child not yet reaped: state Z
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except ProcessLookupError:
        return False
    except OSError:  # no /proc: the signal's answer stands
        return True


def pytest_sessionfinish(session, exitstatus):
    """Waits for the notebooks another worker may still wait for, unless the run stops."""
    if _POOL is not None:
        stopping = _WORKER is None or session.shouldstop or session.shouldfail or (
            exitstatus == pytest.ExitCode.INTERRUPTED)
        _POOL.shutdown(cancel_futures=bool(stopping))


@pytest.fixture(scope="session")
def default_grid():
    """The default grid, once: every dtype, c = 2, 10, 1000, four scales, four label kinds."""
    import verify

    return verify.check()
