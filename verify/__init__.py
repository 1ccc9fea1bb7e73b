"""A closed-form gradient of the softmax cross-entropy against ``jax.grad``, cell by cell.

``verify.check()`` maps where σ(z) − y (or your closed form) agrees with autograd over class
counts, dtypes, logit scales and label kinds, and says why wherever it does not.

The names are imported on first use, so that importing ``verify`` (and its CLI) does not import
JAX.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from derivation._loss import Loss as Loss

    from ._assert import assert_gradient as assert_gradient
    from ._check import check as check
    from ._plot import plot as plot
    from ._options import DTYPES as DTYPES
    from ._options import LABEL_KINDS as LABEL_KINDS
    from ._options import TOLERANCES as TOLERANCES
    from ._options import Tolerance as Tolerance
    from ._report import AutogradCheck as AutogradCheck
    from ._report import Cell as Cell
    from ._report import Report as Report
    from ._report import Worst as Worst

__all__ = [
    "DTYPES",
    "LABEL_KINDS",
    "TOLERANCES",
    "AutogradCheck",
    "Cell",
    "Loss",
    "Report",
    "Tolerance",
    "Worst",
    "assert_gradient",
    "check",
    "plot",
]

_HOMES = {
    "assert_gradient": "._assert",
    "check": "._check",
    "plot": "._plot",
    "DTYPES": "._options",
    "LABEL_KINDS": "._options",
    "TOLERANCES": "._options",
    "Tolerance": "._options",
    "AutogradCheck": "._report",
    "Cell": "._report",
    "Loss": "derivation._loss",
    "Report": "._report",
    "Worst": "._report",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
