"""The derivations ``softmax-ce report`` shows, derived once per version of the code, in a
process of their own.

Deriving checks every step with SymPy, seconds of work whose result depends only on the
derivation's code and SymPy's version. With the persistent cache on (:mod:`._cache`), the
report's Markdown and whether the derivation holds are kept under a key made of the SHA-256 of
every source file of ``derivation``, SymPy's version and the class count: a change to any of
them derives (and checks) afresh, and a corrupt entry is derived again.

The report starts them in a process of its own (:class:`Deriving`: this module run as a script,
on the report's own ``sys.path``) before it imports JAX: in the report's own process SymPy's
seconds took turns with the check under one GIL; beside it they run on another core while JAX is
imported and the check compiles. That process imports neither JAX nor, when the cache holds
them, SymPy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version

from . import _cache

REPORTED: tuple[int | None, ...] = (None, 3)
"""The report's derivations: for any number of classes, and written out for three."""


def markdown(classes: int | None) -> tuple[str, bool]:
    """``derivation.derive(classes=classes)`` as Markdown, and whether it holds: from the cache
    where it was kept by the same code, else derived (and kept)."""
    key = (_cache.sources("derivation"), version("sympy"), classes)
    kept = _cache.load_text("derivation", key)
    if kept is not None:
        try:
            record = json.loads(kept)
            return str(record["markdown"]), bool(record["holds"])
        except (ValueError, KeyError, TypeError):
            pass  # not ours: derive afresh
    import derivation

    derived = derivation.derive(classes=classes)
    text, holds = derived.to_markdown(), derived.holds
    _cache.store_text("derivation", key, json.dumps({"markdown": text, "holds": holds}))
    return text, holds


def reported() -> list[tuple[str, bool]]:
    """:func:`markdown` of each of :data:`REPORTED`, in this process."""
    return [markdown(classes) for classes in REPORTED]


class Deriving:
    """:func:`reported`, started in a process of its own (the cache on unless ``no_cache``);
    :meth:`result` waits for it. The process's output is read, never shown: should it fail, the
    derivations are derived in this process, where an error is the command's own."""

    def __init__(self, no_cache: bool) -> None:
        env = dict(os.environ)
        if no_cache:
            env[_cache.NO_CACHE] = "1"
        # This process's own path, not ``-m``'s (which puts the current directory first, where
        # another checkout's verify may lie).
        start = (f"import runpy, sys; sys.path[:] = {sys.path!r}; "
                 f"runpy.run_module({__name__!r}, run_name='__main__')")
        try:
            self._process: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, "-c", start], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        except OSError:  # no process to be had: derived here
            self._process = None

    def result(self) -> list[tuple[str, bool]]:
        """The derivations' Markdown and whether each holds, in the order of
        :data:`REPORTED`."""
        if self._process is not None:
            out, _ = self._process.communicate()
            if self._process.returncode == 0:
                try:
                    derived = [(str(text), bool(holds)) for text, holds in json.loads(out)]
                except (ValueError, TypeError):
                    derived = []
                if len(derived) == len(REPORTED):
                    return derived
        return reported()

    def stop(self) -> None:
        """Ends the process if it still runs (the command failed or was interrupted)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


if __name__ == "__main__":
    _cache.enable_texts()
    print(json.dumps(reported()))
