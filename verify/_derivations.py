"""The derivations ``softmax-ce report`` shows, derived once per version of the code.

Deriving checks every step with SymPy, seconds of work whose result depends only on the
derivation's code and SymPy's version. With the persistent cache on (:mod:`._cache`), the
report's Markdown and whether the derivation holds are kept under a key made of the SHA-256 of
every source file of ``derivation``, SymPy's version and the class count: a change to any of
them derives (and checks) afresh, and a corrupt entry is derived again.
"""

from __future__ import annotations

import json
from importlib.metadata import version

from . import _cache


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
