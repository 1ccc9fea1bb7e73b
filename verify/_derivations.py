"""The derivations ``softmax-ce report`` shows, derived once per version of the code.

Deriving checks every step with SymPy, seconds of work whose result depends only on the
derivation's code and SymPy's version. With the persistent cache on (:mod:`._cache`), the
report's Markdown and whether the derivation holds are kept under a key made of the SHA-256 of
every source file of ``derivation``, SymPy's version and the class count: a change to any of
them derives (and checks) afresh, and a corrupt entry is derived again.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import version
from pathlib import Path

from . import _cache


@cache
def _sources() -> str:
    """The SHA-256 of the derivation package's files (name and bytes), without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("derivation")
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    digest = hashlib.sha256()
    if folder is not None:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".lark"):
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def markdown(classes: int | None) -> tuple[str, bool]:
    """``derivation.derive(classes=classes)`` as Markdown, and whether it holds: from the cache
    where it was kept by the same code, else derived (and kept)."""
    key = (_sources(), version("sympy"), classes)
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
