"""The softmax cross-entropy gradient, derived step by step with every step machine-checked.

>>> import derivation
>>> derivation.derive(classes=None, labels="onehot").holds
True
"""

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
from ._theory import Theory as Theory
from ._theory import theory as theory
from ._text_check import NoMath as NoMath
from ._text_check import TextCheck as TextCheck
from ._text_check import TextStep as TextStep
from ._text_check import check_text as check_text

__all__ = ["derive", "check_chain", "theory", "symbols", "latex", "Derivation", "Route", "Step",
           "ChainCheck", "Outcome", "Theory", "LABELS",
           "NoMath", "TextCheck", "TextStep", "check_text", "Loss"]
