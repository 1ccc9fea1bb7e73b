"""Checking one step: symbolically where the named rules reduce the difference to zero, and in
every case numerically at random points in 40-digit precision.

A step holds (``symbolic`` or ``numeric``), fails (``failed``, with a counterexample), has no
value at any point tried (``undefined``), or cannot be checked (``unchecked``, with why). Only the
first two hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from ._assumptions import Assumption
from ._numeric import (DIGITS, TOLERANCE, NoValue, Point, Undefined, Unsupported, close,
                       direction, directional_derivative)
from ._points import points
from ._rules import reduce_to_canonical
from ._symbols import Classes, apart_from, partial

SYMBOLIC, NUMERIC, FAILED = "symbolic", "numeric", "failed"
UNDEFINED, UNCHECKED = "undefined", "unchecked"
HOLDS = frozenset({SYMBOLIC, NUMERIC})


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a step was checked: ``status`` is ``symbolic``, ``numeric``, ``failed``,
    ``undefined`` (no value at any point tried) or ``unchecked`` (``detail`` says why)."""

    status: str
    detail: str
    counterexample: dict[str, object] | None = None
    points: int = 0
    """Points at which both sides had a value and were compared."""
    skipped: int = 0
    """Points skipped because a side had no finite value there."""

    @property
    def holds(self) -> bool:
        return self.status in HOLDS


def _proved_zero(difference: sp.Basic, classes: Classes,
                 assumptions: tuple[Assumption, ...]) -> bool:
    try:
        reduced = reduce_to_canonical(difference, classes, tuple(a.rewrite for a in assumptions))
    except (Exception, RecursionError):  # noqa: BLE001 - SymPy may raise anything; numeric decides
        return False
    return reduced == 0


def evaluated(expr: sp.Basic) -> sp.Basic:
    """Unevaluated derivatives and substitutions carried out; integrals, limits and infinite
    sums where SymPy can (the rest are evaluated numerically)."""
    kinds = (sp.Derivative, sp.Subs, sp.Integral, sp.Limit)

    def infinite(e: sp.Basic) -> bool:
        return isinstance(e, (sp.Sum, sp.Product)) and e.has(sp.oo, -sp.oo)

    if not expr.has(*kinds) and not any(infinite(e) for e in expr.atoms(sp.Sum, sp.Product)):
        return expr
    def done(e: sp.Basic) -> sp.Basic:
        if isinstance(e, sp.Derivative):
            for v, _ in e.variable_count:
                e = e.func(apart_from(e.expr, v), *e.variable_count)
        return e.doit()

    return expr.replace(lambda e: isinstance(e, kinds) or infinite(e), done)


def _not_checkable(expr: sp.Basic) -> str | None:
    """Why ``expr`` is no expression to compare (a relation, a truth value), or ``None``."""
    if isinstance(expr, sp.core.relational.Relational) or (
            isinstance(expr, sp.logic.boolalg.Boolean) and not isinstance(expr, sp.Expr)):
        return f"{sp.sstr(expr)} is a {type(expr).__name__} (a relation or truth value), not a value"
    if not isinstance(expr, (sp.Expr, sp.MatrixBase)):
        return f"{sp.sstr(expr)[:60]} is a {type(expr).__name__}, not a value"
    return None


def _undefined_functions(exprs: list[sp.Basic]) -> list[str]:
    return sorted({str(f.func) for e in exprs for f in e.atoms(sp.core.function.AppliedUndef)})


def _numeric(left, right, exprs, classes, assumptions) -> tuple:
    """Compare ``left(point)`` with ``right(point)`` at every point; stop at the first mismatch
    (an index outside 1..c is a mismatch; a point where a side has no finite value is skipped)."""
    worst, count, skipped = mpmath.mpf(0), 0, 0
    with mpmath.workdps(DIGITS):
        for point in points(exprs, classes, assumptions):
            try:
                a, b = left(point), right(point)
            except Undefined as error:
                return point.readable(exprs), error, None, count, worst, skipped
            except NoValue:
                skipped += 1
                continue
            if not close(a, b) and _outside_real(point, exprs):
                skipped += 1
                continue
            if not close(a, b) and _confirmed(left, right, point):
                return point.readable(exprs), a, b, count, worst, skipped
            count += 1
            worst = max(worst, abs(a - b) / max(1, abs(a), abs(b)))
    return None, None, None, count, worst, skipped


def _outside_real(point: Point, sides: list[sp.Basic],
                  indices: list[dict] | None = None) -> bool:
    """Both sides take the logarithm (or a fractional power) of a negative number here: in real
    variables neither has a value, so the point is outside the claim's domain and is skipped.
    (When only one side does, the two are compared as they are: ``log(x²) = 2 log x`` fails at
    x < 0, and ``log(exp(i·x)) = i·x`` is compared as the complex claim it is; so is any claim
    that writes the imaginary unit.)"""
    if any(side.has(sp.I) for side in sides):
        return False
    return all(any(point.outside_real(side, at) for at in (indices or [None]))
               for side in sides)


def _confirmed(left, right, point: Point) -> bool:
    """A mismatch found at the working precision is confirmed at twice it (so a cancellation
    that lost the digits is not reported as a difference)."""
    try:
        with mpmath.workdps(2 * DIGITS):
            fresh = Point(point.classes, point.values, point.choices, {})
            return not close(left(fresh), right(fresh))
    except (NoValue, Undefined):
        return True


def _outcome(proved: bool, found, relation: str) -> Outcome:
    where, a, b, count, worst, skipped = found
    tried = count + skipped + (where is not None)
    if where is not None:
        at = ", ".join(f"{name} = {value:.6g}" if isinstance(value, float) else f"{name} = {value}"
                       for name, value in where.items() if "[" not in name)
        suffix = f" at {at}" if at else ""
        if isinstance(a, (Undefined, NoValue)):
            return Outcome(FAILED, f"does not hold: {a}{suffix}", where)
        detail = (f"does not hold: {relation} gives {mpmath.nstr(a, 12)}, this line gives "
                  f"{mpmath.nstr(b, 12)}{suffix} (point {tried} of those tried)")
        return Outcome(FAILED, detail, where)
    if count == 0 and skipped:
        if proved:
            return Outcome(SYMBOLIC, f"equals {relation}: the difference reduces to 0; it has no "
                                     f"value at any of the {skipped} points tried")
        return Outcome(UNDEFINED, f"undefined at every point tried ({skipped} points): neither "
                                  "side has a finite value there")
    if count == 0:  # no point satisfies the assumptions: nothing was evaluated
        if proved:
            return Outcome(SYMBOLIC, f"equals {relation}: the difference reduces to 0; no point "
                                     f"satisfies the assumptions here, so none was evaluated")
        return Outcome(FAILED, "could not be checked: the difference does not reduce to 0 and no "
                               "point satisfies the assumptions")
    gaps = f", {skipped} more skipped where a side has no (real) value" if skipped else ""
    numbers = (f"numerically at {count} points{gaps} ({DIGITS} digits, max relative difference "
               f"{mpmath.nstr(worst, 2)})")
    if proved:
        return Outcome(SYMBOLIC, f"equals {relation}: the difference reduces to 0; "
                                 f"confirmed {numbers}", None, count, skipped)
    return Outcome(NUMERIC, f"equals {relation} {numbers}; not reduced to 0 symbolically",
                   None, count, skipped)


def equal(before: sp.Basic, after: sp.Basic, classes: Classes,
          assumptions: tuple[Assumption, ...] = ()) -> Outcome:
    """Check ``after == before`` under the assumptions."""
    for expr in (before, after):
        why = _not_checkable(expr)
        if why is not None:
            return Outcome(UNCHECKED, f"not checked: {why}")
    if isinstance(before, sp.MatrixBase) or isinstance(after, sp.MatrixBase):
        return _matrices(before, after, classes, assumptions)
    try:
        before, after = evaluated(before), evaluated(after)
        proved = _proved_zero(after - before, classes, assumptions)
        undefined = _undefined_functions([before, after])
        if undefined and not proved:
            return Outcome(UNCHECKED, f"not checked: {', '.join(undefined)} is an undefined "
                                      "function (no value at numbers) and the difference does "
                                      "not reduce to 0 symbolically")
        if undefined:
            return Outcome(SYMBOLIC, "equals the previous line: the difference reduces to 0 "
                                     f"({', '.join(undefined)} undefined: no numeric check)")
        found = _numeric(lambda pt: pt.evaluate(before), lambda pt: pt.evaluate(after),
                         [before, after], classes, assumptions)
        difference = after - before
        where, _, _, count, _, skipped = found
        if where is None and (count or skipped) and difference.is_Rational and difference != 0:
            # exactly a nonzero number, at points that satisfy the assumptions: no tolerance of
            # the numeric check (nor a value too large to evaluate) may hide it
            return Outcome(FAILED, f"does not hold: this line and the previous one differ by "
                                   f"exactly {sp.sstr(difference)}", {})
    except Unsupported as error:
        return Outcome(UNCHECKED, f"not checked: {error}")
    except RecursionError:
        return Outcome(UNCHECKED, "not checked: the expression is nested too deeply")
    return _outcome(proved, found, "the previous line")


def _matrices(before, after, classes, assumptions) -> Outcome:
    if not (isinstance(before, sp.MatrixBase) and isinstance(after, sp.MatrixBase)):
        return Outcome(FAILED, "does not hold: a matrix is compared with a scalar")
    if before.shape != after.shape:
        return Outcome(FAILED, f"does not hold: shapes {before.shape} and {after.shape} differ")
    outcomes = [equal(a, b, classes, assumptions) for a, b in zip(before, after)]
    for position, outcome in enumerate(outcomes):
        if not outcome.holds:
            row, col = divmod(position, before.shape[1])
            return Outcome(outcome.status, f"entry ({row + 1}, {col + 1}): {outcome.detail}",
                           outcome.counterexample)
    status = SYMBOLIC if all(o.status == SYMBOLIC for o in outcomes) else NUMERIC
    return Outcome(status, f"every entry of the {before.shape[0]}×{before.shape[1]} matrix "
                           f"equals the previous line's ({status})")


def derivative(of: sp.Basic, claimed: sp.Basic, wrt: sp.Basic, classes: Classes,
               assumptions: tuple[Assumption, ...] = ()) -> Outcome:
    """Check ``claimed == d(of)/d(wrt)`` under the assumptions.

    By an entry of a vector, numerically all the partials at once: along a random direction v
    over the values of the index of ``wrt``, d/dt of(z + t·v) must equal Σₓ vₓ·claimed(x) (as
    ``check_grads`` does in JAX). Only when that fails are the partials compared one by one, to
    name the failing one. By a plain symbol: SymPy's derivative, compared with :func:`equal`.
    """
    if not isinstance(wrt, sp.Indexed) or not wrt.indices[0].is_Symbol:
        outcome = equal(sp.diff(evaluated(of), wrt), claimed, classes, assumptions)
        return Outcome(outcome.status,
                       outcome.detail.replace("the previous line", f"the derivative by {wrt}"),
                       outcome.counterexample)
    of, claimed = evaluated(of), evaluated(claimed)
    try:
        proved = _proved_zero(partial(of, wrt, classes) - claimed, classes, assumptions)
    except Exception:  # noqa: BLE001 - differentiation failed symbolically; numeric decides
        proved = False
    (index,) = wrt.indices
    relation = f"the derivative by {sp.sstr(wrt)}"
    worst, count, skipped = mpmath.mpf(0), 0, 0
    try:
        with mpmath.workdps(DIGITS):
            # the index must be drawn even where neither side has it (a claimed 0, ∂L/∂z_k of
            # an L written without k): then wrt's own index is one of the expressions scanned
            scanned = [of, claimed] if index in of.free_symbols | claimed.free_symbols \
                else [of, claimed, wrt]
            for number, point in enumerate(points(scanned, classes, assumptions, vary=index)):
                if not point.choices:
                    continue
                v = direction(point, number)
                at = point
                if index in of.free_symbols:  # ∂L/∂z_t of an L about class t: t fixed, one by one
                    x = point.choices[number % len(point.choices)]
                    at, v = Point(point.classes, {**point.values, index: x}, [x]), {x: 1}
                try:
                    a = directional_derivative(of, wrt, at, v)
                    b = mpmath.fsum(w * at.evaluate(claimed, {index: x}) for x, w in v.items())
                except Undefined as error:
                    return _outcome(proved, (point.readable([of, claimed]), error, None, count,
                                             worst, skipped), relation)
                except NoValue:
                    skipped += 1
                    continue
                if not close(a, b) and _outside_real(at, [of]):  # no real derivative here
                    skipped += 1
                    continue
                if not close(a, b):
                    return _outcome(proved, _first_failing_partial(of, claimed, wrt, point, count)
                                    + (skipped,), relation)
                count += len(v)
                worst = max(worst, abs(a - b) / max(1, abs(a), abs(b)))
    except Unsupported as error:
        return Outcome(UNCHECKED, f"not checked: {error}")
    return _outcome(proved, (None, None, None, count, worst, skipped), relation)


def _first_failing_partial(of, claimed, wrt, point, count) -> tuple:
    (index,) = wrt.indices
    for x in point.choices:
        at = Point(point.classes, {**point.values, index: x}, [x], point.cache)
        try:
            a = directional_derivative(of, wrt, at, {x: mpmath.mpf(1)})
            b = at.evaluate(claimed)
        except (Undefined, NoValue) as error:
            return at.readable([of, claimed, wrt]), error, None, count, None
        if not close(a, b):
            return at.readable([of, claimed, wrt]), a, b, count, None
    # The partials agree one by one but not along the direction: report the direction's point.
    return point.readable([of, claimed]), mpmath.nan, mpmath.nan, count, None


__all__ = ["Outcome", "equal", "derivative", "evaluated", "SYMBOLIC", "NUMERIC", "FAILED",
           "UNDEFINED", "UNCHECKED", "HOLDS", "TOLERANCE"]
