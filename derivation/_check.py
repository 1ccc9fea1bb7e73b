"""Checking one step: symbolically where the named rules reduce the difference to zero, and in
every case numerically at random points in 40-digit precision."""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from ._assumptions import Assumption
from ._numeric import (DIGITS, TOLERANCE, Point, Undefined, close, direction,
                       directional_derivative, points)
from ._rules import reduce_to_canonical
from ._symbols import Classes, partial

SYMBOLIC, NUMERIC, FAILED = "symbolic", "numeric", "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a step was checked: ``status`` is ``symbolic``, ``numeric`` or ``failed``."""

    status: str
    detail: str
    counterexample: dict[str, object] | None = None


def _proved_zero(difference: sp.Basic, classes: Classes,
                 assumptions: tuple[Assumption, ...]) -> bool:
    try:
        reduced = reduce_to_canonical(difference, classes, tuple(a.rewrite for a in assumptions))
    except Exception:  # noqa: BLE001 - SymPy may raise anything here; the numeric check decides
        return False
    return reduced == 0


def _numeric(left, right, exprs, classes, assumptions) -> tuple:
    """Compare ``left(point)`` with ``right(point)`` at every point; stop at the first mismatch
    (a side with no value there, e.g. an index outside 1..c, is a mismatch)."""
    worst, count = mpmath.mpf(0), 0
    with mpmath.workdps(DIGITS):
        for point in points(exprs, classes, assumptions):
            try:
                a, b = left(point), right(point)
            except Undefined as error:
                return point.readable(exprs), error, None, count, worst
            count += 1
            if not close(a, b):
                return point.readable(exprs), a, b, count, worst
            worst = max(worst, abs(a - b) / max(1, abs(a), abs(b)))
    return None, None, None, count, worst


def _outcome(proved: bool, found, relation: str) -> Outcome:
    where, a, b, count, worst = found
    if where is not None:
        at = ", ".join(f"{name} = {value:.6g}" if isinstance(value, float) else f"{name} = {value}"
                       for name, value in where.items() if "[" not in name)
        suffix = f" at {at}" if at else ""
        if isinstance(a, Undefined):
            return Outcome(FAILED, f"does not hold: {a}{suffix}", where)
        detail = (f"does not hold: {relation} gives {mpmath.nstr(a, 12)}, this line gives "
                  f"{mpmath.nstr(b, 12)}{suffix}")
        return Outcome(FAILED, detail, where)
    if count == 0:  # no point satisfies the assumptions: nothing was evaluated
        if proved:
            return Outcome(SYMBOLIC, f"equals {relation}: the difference reduces to 0; no point "
                                     f"satisfies the assumptions here, so none was evaluated")
        return Outcome(FAILED, "could not be checked: the difference does not reduce to 0 and no "
                               "point satisfies the assumptions")
    numbers = (f"numerically at {count} points ({DIGITS} digits, max relative difference "
               f"{mpmath.nstr(worst, 2)})")
    if proved:
        return Outcome(SYMBOLIC, f"equals {relation}: the difference reduces to 0; "
                                 f"confirmed {numbers}")
    return Outcome(NUMERIC, f"equals {relation} {numbers}; not reduced to 0 symbolically")


def equal(before: sp.Basic, after: sp.Basic, classes: Classes,
          assumptions: tuple[Assumption, ...] = ()) -> Outcome:
    """Check ``after == before`` under the assumptions."""
    proved = _proved_zero(after - before, classes, assumptions)
    found = _numeric(lambda pt: pt.evaluate(before), lambda pt: pt.evaluate(after),
                     [before, after], classes, assumptions)
    return _outcome(proved, found, "the previous line")


def derivative(of: sp.Basic, claimed: sp.Basic, wrt: sp.Indexed, classes: Classes,
               assumptions: tuple[Assumption, ...] = ()) -> Outcome:
    """Check ``claimed == d(of)/d(wrt)`` under the assumptions.

    Numerically, all the partials at once: along a random direction v over the values of the
    index of ``wrt``, d/dt of(z + t·v) must equal Σₓ vₓ·claimed(x) (as ``check_grads`` does in
    JAX). Only when that fails are the partials compared one by one, to name the failing one.
    """
    try:
        proved = _proved_zero(partial(of, wrt, classes) - claimed, classes, assumptions)
    except Exception:  # noqa: BLE001 - differentiation failed symbolically; numeric decides
        proved = False
    (index,) = wrt.indices
    relation = f"the derivative by {sp.sstr(wrt)}"
    worst, count = mpmath.mpf(0), 0
    with mpmath.workdps(DIGITS):
        for number, point in enumerate(points([of, claimed], classes, assumptions, vary=index)):
            if not point.choices:
                continue
            v = direction(point, number)
            try:
                a = directional_derivative(of, wrt, point, v)
                b = mpmath.fsum(w * point.evaluate(claimed, **{str(index): x})
                                for x, w in v.items())
            except Undefined as error:
                return _outcome(proved, (point.readable([of, claimed]), error, None, count, worst),
                                relation)
            count += len(v)
            if not close(a, b):
                return _outcome(proved, _first_failing_partial(of, claimed, wrt, point, count),
                                relation)
            worst = max(worst, abs(a - b) / max(1, abs(a), abs(b)))
    return _outcome(proved, (None, None, None, count, worst), relation)


def _first_failing_partial(of, claimed, wrt, point, count) -> tuple:
    (index,) = wrt.indices
    for x in point.choices:
        at = Point(point.classes, {**point.values, index: x}, [x], point.cache)
        try:
            a = directional_derivative(of, wrt, at, {x: mpmath.mpf(1)})
            b = at.evaluate(claimed)
        except Undefined as error:
            return at.readable([of, claimed, wrt]), error, None, count, None
        if not close(a, b):
            return at.readable([of, claimed, wrt]), a, b, count, None
    # The partials agree one by one but not along the direction: report the direction's point.
    return point.readable([of, claimed]), mpmath.nan, mpmath.nan, count, None


__all__ = ["Outcome", "equal", "derivative", "SYMBOLIC", "NUMERIC", "FAILED", "TOLERANCE"]
