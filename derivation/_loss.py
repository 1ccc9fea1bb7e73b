r"""``Loss``: one specification of the loss, shared by ``derivation`` and ``verify``.

Per row r with logits :math:`z_r \in \mathbb{R}^c`, in this fixed order:

.. math::

    u = z_r / T, \qquad u \leftarrow \mathrm{cap}\,\tanh(u/\mathrm{cap})
    \ \text{(when softcap is set)}, \qquad \mathrm{lse} = \log \sum_k e^{u_k},

    q = (1-\varepsilon)\,t + \varepsilon/c, \qquad
    \ell_r = -\sum_k w_k q_k (u_k - \mathrm{lse}) + \lambda\,\mathrm{lse}^2,

where t is the one-hot of an index target or a probability target, and w = 1 without weights.
A class whose logit is −∞ (masked, or a padded lane) stays at −∞ through the soft-cap.
An index target equal to ``ignore_index`` has mask :math:`m_r = 0` (else 1). Reductions:
``none`` gives :math:`m_r \ell_r`, ``sum`` :math:`\sum_r m_r \ell_r`, ``mean``
:math:`\sum_r m_r \ell_r / \sum_r m_r w_{t_r}` for index targets and
:math:`\sum_r \ell_r / \mathrm{rows}` for probability targets. With z_loss = 0, no softcap and
T = 1 this is PyTorch's ``F.cross_entropy``. ``Loss()`` is the plain loss
:math:`C = -\sum_{r,k} y_{rk} \log \sigma(z_r)_k`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

REDUCTIONS = ("mean", "sum", "none")
"""How the rows' losses are combined (PyTorch's names)."""
TARGETS = ("indices", "probabilities")
"""What a target is: a class index per row, or a probability vector per row."""


def _number(name: str, value: object, accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected {accepted}, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int past float's range
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected {accepted}, got {value!r}")
    return number


def _choice(name: str, value: object, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        import difflib

        close = [a for a in accepted if a.lower() == str(value).strip().lower()]  # MEAN
        close = close or difflib.get_close_matches(str(value), accepted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name}: unknown value {value!r}{hint} (accepted: {', '.join(accepted)})")
    return str(value)


def _weights(value: object) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValueError(f"weight: expected a sequence of positive finite numbers, one per class,"
                         f" or None, got {value!r}")
    out = []
    for position, entry in enumerate(value):  # type: ignore[arg-type]
        number = _number("weight", entry, "positive finite numbers")
        if number <= 0:
            raise ValueError(f"weight: entry {position} is {entry!r}; expected positive finite "
                             f"numbers")
        out.append(number)
    if not out:
        raise ValueError("weight: expected at least one class weight (or None), got an empty "
                         "sequence")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Loss:
    r"""The loss a gradient is of: PyTorch's ``F.cross_entropy`` options plus z-loss,
    soft-capping and temperature, composed in the order of the module docstring.

    Attributes:
        label_smoothing: ε in [0, 1]: the targets become :math:`(1-\varepsilon)t + \varepsilon/c`.
        weight: one positive finite weight per class, or ``None`` (all 1).
        ignore_index: rows whose index target equals it are masked out (index targets only).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        z_loss: λ ≥ 0, the coefficient of :math:`\mathrm{lse}^2` per row.
        softcap: cap > 0, or ``None``: the logits become :math:`\mathrm{cap}\tanh(u/\mathrm{cap})`.
        temperature: T > 0: the logits are divided by it first.
        targets: ``"indices"`` (a class per row) or ``"probabilities"`` (a vector per row).

    Raises:
        ValueError: a field out of range, naming the field and what it accepts.

    Example:
        >>> from derivation import Loss
        >>> Loss(label_smoothing=0.1, reduction="mean").to_json()
        {'label_smoothing': 0.1, 'reduction': 'mean'}
    """

    label_smoothing: float = 0.0
    weight: tuple[float, ...] | None = None
    ignore_index: int | None = None
    reduction: str = "sum"
    z_loss: float = 0.0
    softcap: float | None = None
    temperature: float = 1.0
    targets: str = "probabilities"

    def __post_init__(self) -> None:
        smoothing = _number("label_smoothing", self.label_smoothing, "a number in [0, 1]")
        if not 0 <= smoothing <= 1:
            raise ValueError(f"label_smoothing: expected a number in [0, 1], got "
                             f"{self.label_smoothing!r}")
        z_loss = _number("z_loss", self.z_loss, "a finite number >= 0")
        if z_loss < 0:
            raise ValueError(f"z_loss: expected a finite number >= 0, got {self.z_loss!r}")
        temperature = _number("temperature", self.temperature, "a finite number > 0")
        if temperature <= 0:
            raise ValueError(f"temperature: expected a finite number > 0, got "
                             f"{self.temperature!r}")
        softcap = self.softcap
        if softcap is not None:
            softcap = _number("softcap", softcap, "a finite number > 0 or None")
            if softcap <= 0:
                raise ValueError(f"softcap: expected a finite number > 0 or None, got "
                                 f"{self.softcap!r}")
        reduction = _choice("reduction", self.reduction, REDUCTIONS)
        targets = _choice("targets", self.targets, TARGETS)
        ignore = self.ignore_index
        if ignore is not None:
            if isinstance(ignore, bool) or not isinstance(ignore, numbers.Integral):
                raise ValueError(f"ignore_index: expected an integer or None, got {ignore!r}")
            if targets != "indices":
                raise ValueError(f"ignore_index: applies to index targets only; set "
                                 f"targets='indices' (got targets={targets!r})")
            ignore = int(ignore)
            if not -(2**63) <= ignore < 2**63:  # targets are int64 arrays in every framework
                raise ValueError(f"ignore_index: expected an integer in int64's range "
                                 f"[-2**63, 2**63 - 1], got {ignore}")
        for name, value in (("label_smoothing", smoothing), ("weight", _weights(self.weight)),
                            ("ignore_index", ignore), ("reduction", reduction),
                            ("z_loss", z_loss), ("softcap", softcap),
                            ("temperature", temperature), ("targets", targets)):
            object.__setattr__(self, name, value)

    @property
    def is_plain(self) -> bool:
        """Whether this is ``Loss()``, the plain loss :math:`-\\sum y \\log \\sigma(z)`."""
        return self == Loss()

    def weight_for(self, classes: int) -> tuple[float, ...]:
        """The class weights for ``classes`` classes (all 1 without ``weight``).

        Raises:
            ValueError: ``weight`` has another length.
        """
        if self.weight is None:
            return (1.0,) * classes
        if len(self.weight) != classes:
            raise ValueError(f"weight: {len(self.weight)} weights given, but the check has "
                             f"{classes} classes (give one weight per class)")
        return self.weight

    def to_json(self) -> dict[str, Any]:
        """The fields that differ from their defaults, as JSON values (``{}`` for ``Loss()``)."""
        out: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value != spec.default:
                out[spec.name] = list(value) if isinstance(value, tuple) else value
        return out

    def describe(self) -> str:
        """The options in words, e.g. ``label_smoothing=0.1, reduction=mean`` (``plain`` when
        none is set)."""
        parts = []
        for name, value in self.to_json().items():
            shown = ",".join(f"{v:g}" for v in value) if isinstance(value, list) else (
                f"{value:g}" if isinstance(value, float) else str(value))
            parts.append(f"{name}={shown}")
        return ", ".join(parts) if parts else "plain"

    def flags(self) -> list[str]:
        """The CLI flags that give this loss (none for ``Loss()``)."""
        out = []
        for name, value in self.to_json().items():
            shown = ",".join(repr(v) for v in value) if isinstance(value, list) else (
                repr(value) if isinstance(value, float) else str(value))
            out += [f"--{name.replace('_', '-')}", shown]
        return out


__all__ = ["Loss", "REDUCTIONS", "TARGETS"]
