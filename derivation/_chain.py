"""``check_chain``: someone's own derivation, a chain of expressions each claimed equal to the
one before it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from . import _check
from ._symbols import c


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The outcome of :func:`check_chain`; ``links[i]`` is how expression i+1 was checked
    against expression i."""

    expressions: tuple[sp.Basic, ...]
    links: tuple[_check.Outcome, ...]

    @property
    def holds(self) -> bool:
        return self.failed_step is None

    @property
    def failed_step(self) -> int | None:
        """0-based index of the first expression not shown equal to its predecessor: it differs
        (``failed``), has no value at any point tried (``undefined``) or could not be checked
        (``unchecked``); its link's ``detail`` says which."""
        for index, link in enumerate(self.links, start=1):
            if not link.holds:
                return index
        return None

    @property
    def counterexample(self) -> dict[str, object] | None:
        """``{symbol: value}`` at which the failing expression and its predecessor differ."""
        step = self.failed_step
        return None if step is None else self.links[step - 1].counterexample


def check_chain(expressions: Sequence[sp.Basic]) -> ChainCheck:
    r"""Check that each expression equals the one before it.

    Each link is checked symbolically where the derivation's rules reduce the difference to
    zero, and numerically at random points in 40-digit precision in every case; sums over
    :math:`1..c` are instantiated at c = 1, 2, 3, 7 and 12 (never below the largest index
    written). The symbols of ``derivation`` (``z``, ``y``, ``sigma`` indexed 1..c) may be used,
    as may any other SymPy symbols, whatever their names: real ones are drawn at several
    magnitudes and both signs. Points where a side has no finite value are skipped; a link with
    no value anywhere is ``undefined``, and one that cannot be evaluated (an undefined
    function, a relation) is ``unchecked`` with the reason. Unevaluated ``Derivative`` and
    ``Subs`` are carried out; matrices are compared entry by entry.

    Raises:
        TypeError: an item is not a SymPy expression.
        ValueError: fewer than two expressions.

    Example:
        >>> import sympy as sp, derivation
        >>> x = sp.Symbol("x", positive=True)
        >>> r = derivation.check_chain([sp.log(x**2), 2 * sp.log(x), sp.log(x) * 3])
        >>> r.holds, r.failed_step
        (False, 2)
    """
    if isinstance(expressions, (str, bytes)) or not isinstance(expressions, Sequence):
        raise TypeError(f"expressions: expected a sequence of SymPy expressions, got "
                        f"{type(expressions).__name__}")
    for index, expr in enumerate(expressions):
        if not isinstance(expr, sp.Basic):
            raise TypeError(f"expressions[{index}]: expected a SymPy expression, got "
                            f"{type(expr).__name__} {expr!r}")
    if len(expressions) < 2:
        raise ValueError(f"expressions: expected at least two expressions, got "
                         f"{len(expressions)}")
    links = tuple(_check.equal(before, after, c)
                  for before, after in zip(expressions, expressions[1:]))
    return ChainCheck(tuple(expressions), links)
