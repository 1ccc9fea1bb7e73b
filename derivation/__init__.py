"""The softmax cross-entropy gradient, derived step by step with every step machine-checked.

>>> import derivation
>>> derivation.derive(classes=None, labels="onehot").holds
True

The names are imported on first use, so that ``from derivation import Loss`` (which ``verify``
does on every run) does not import SymPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._chain import ChainCheck as ChainCheck
    from ._chain import check_chain as check_chain
    from ._check import Outcome as Outcome
    from ._derive import LABELS as LABELS
    from ._derive import derive as derive
    from ._loss import Loss as Loss
    from ._model import Derivation as Derivation
    from ._model import Route as Route
    from ._model import Step as Step
    from ._render import latex as latex
    from ._symbols import locals_ as symbols
    from ._text_check import NoMath as NoMath
    from ._text_check import TextCheck as TextCheck
    from ._text_check import TextStep as TextStep
    from ._text_check import check_text as check_text
    from ._theory import Theory as Theory
    from ._theory import theory as theory

__all__ = ["derive", "check_chain", "theory", "symbols", "latex", "Derivation", "Route", "Step",
           "ChainCheck", "Outcome", "Theory", "LABELS",
           "NoMath", "TextCheck", "TextStep", "check_text", "Loss"]

_HOMES = {
    "ChainCheck": ("._chain", "ChainCheck"),
    "check_chain": ("._chain", "check_chain"),
    "Outcome": ("._check", "Outcome"),
    "LABELS": ("._derive", "LABELS"),
    "derive": ("._derive", "derive"),
    "Loss": ("._loss", "Loss"),
    "Derivation": ("._model", "Derivation"),
    "Route": ("._model", "Route"),
    "Step": ("._model", "Step"),
    "latex": ("._render", "latex"),
    "symbols": ("._symbols", "locals_"),
    "NoMath": ("._text_check", "NoMath"),
    "TextCheck": ("._text_check", "TextCheck"),
    "TextStep": ("._text_check", "TextStep"),
    "check_text": ("._text_check", "check_text"),
    "Theory": ("._theory", "Theory"),
    "theory": ("._theory", "theory"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'derivation' has no attribute {name!r}")
    module, attribute = home
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
