"""Shared by every test module: one persistent cache of compiled programs for the session, and
the default grid, checked once.

The cache lives in a temporary directory made for the session (never the user's own cache) and
is named in the environment before anything compiles, so that the CLI in a subprocess and the
notebooks' kernels read and write it too: each program compiles once in the whole suite.
"""

import os
import shutil
import tempfile

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


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def default_grid():
    """The default grid, once: every dtype, c = 2, 10, 1000, four scales, four label kinds."""
    import verify

    return verify.check()
