"""The records a derivation is made of: immutable values, rendered elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ._check import FAILED
from ._loss import Loss


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a derivation: ``lhs = expr``, obtained by ``rule``.

    ``lhs`` and ``lhs_latex`` name what the expression is (``C``, ``∂C/∂z_k``, ...), ``check`` is
    ``symbolic``, ``numeric`` or ``failed`` and ``detail`` says how the check went.
    ``counterexample`` is set when the check failed. ``tag`` is the equation number a source
    gave the line, e.g. ``(3)``.
    """

    lhs: str
    lhs_latex: str
    expr: sp.Basic
    rule: str
    assumptions: tuple[str, ...]
    check: str
    detail: str
    counterexample: dict[str, object] | None = None
    tag: str = ""
    written: sp.Basic | None = None
    """The line as the source wrote it (unevaluated), when SymPy would re-arrange ``expr``;
    renderings show it, checks use ``expr`` (the same value)."""

    @property
    def holds(self) -> bool:
        return self.check != FAILED

    @property
    def shown(self) -> sp.Basic:
        """What the renderings show: the line as written where it was kept, else ``expr``."""
        return self.expr if self.written is None else self.written


@dataclass(frozen=True, slots=True)
class Route:
    """One independent derivation of ``result``: it holds when every step holds and the last
    step's expression is the stated result."""

    name: str
    steps: tuple[Step, ...]
    result: sp.Basic

    @property
    def holds(self) -> bool:
        return all(s.holds for s in self.steps) and self.steps[-1].expr == self.result


@dataclass(frozen=True, slots=True)
class Derivation:
    """The gradient of categorical cross-entropy by several routes, and its Hessian.

    ``classes`` is ``None`` for any number of classes c; ``result`` is the closed form every
    route ends at.
    """

    classes: int | None
    labels: str
    routes: tuple[Route, ...]
    hessian: Route | None
    result: sp.Basic
    loss: Loss | None = None
    """The loss variant derived; ``None`` for the plain loss (which has a Hessian route)."""

    @property
    def holds(self) -> bool:
        return (all(r.holds and r.result == self.result for r in self.routes)
                and (self.hessian is None or self.hessian.holds))

    def to_latex(self) -> str:
        from ._render import to_latex

        return to_latex(self)

    def to_markdown(self) -> str:
        from ._render import to_markdown

        return to_markdown(self)

    def to_text(self) -> str:
        from ._render import to_text

        return to_text(self)

    def to_json(self) -> str:
        from ._render import to_json

        return to_json(self)
