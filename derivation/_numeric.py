"""Numeric checks in high precision (mpmath, 40 significant digits).

Expressions are evaluated by walking the SymPy tree. A sum is evaluated once per point and
reused by every partial derivative that contains it, so checking all c partials of a step costs
O(c) for the shared sums plus O(1) per partial, not O(c²).

A point where a side has no finite value raises :class:`NoValue` (the check skips it); an index
outside 1..c raises :class:`Undefined` (a failure); what has no value at numbers at all (an
undefined function) raises :class:`Unsupported`. Where the points come from: :mod:`._points`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from ._symbols import p, sigma, y, z

DIGITS = 40
"""Working precision of every numeric check, in decimal digits."""
TOLERANCE = mpmath.mpf(10) ** -25
"""Relative agreement asked of two sides that are claimed equal."""
SIZES = (1, 2, 3, 7, 12)
"""Numbers of classes a symbolic-c step is instantiated at (each at least the largest concrete
index written, so that ``y_3`` is never checked at c = 1); drawn in :mod:`._points`."""
_HUGE = mpmath.mpf(10) ** 6


class Undefined(ValueError):
    """An expression has no value at a point because an index lies outside 1..c: a definite
    failure, not a point to skip."""


class NoValue(ArithmeticError):
    """An expression has no finite value at a point (a division by zero, log 0, an overflow):
    the point is skipped."""


class Unsupported(TypeError):
    """An expression that cannot be evaluated at numbers at all (an undefined function)."""


class Evaluator:
    """Evaluate SymPy expressions at one point: a value for every symbol and indexed base."""

    def __init__(self, values: Mapping[sp.Basic, object], cache: dict | None = None) -> None:
        """``cache`` may be shared by evaluators whose values differ only in free indices."""
        self.values = dict(values)
        self._sums: dict[tuple, object] = {} if cache is None else cache
        self.outside = False
        """Set when a logarithm of a negative number or a fractional power of one was taken
        (the value is then the principal complex one): a real expression has no value here."""

    def __call__(self, expr: sp.Basic) -> object:
        ev = self
        if expr.is_Number:
            if expr.is_Rational:
                return mpmath.mpf(expr.p) / expr.q
            if not expr.is_finite:
                raise NoValue(f"{expr} is not a finite number")
            return mpmath.mpf(str(expr))
        if expr.is_Symbol:
            if expr not in self.values:
                raise Unsupported(f"no value for the symbol {expr}")
            return self.values[expr]
        if isinstance(expr, sp.Indexed):
            return self._entry(expr)
        if expr.is_Add:
            return mpmath.fsum(ev(a) for a in expr.args)
        if expr.is_Mul:
            return mpmath.fprod(ev(a) for a in expr.args)
        if expr.is_Pow:
            base, exponent = ev(expr.base), ev(expr.exp)
            if abs(exponent) > _HUGE and abs(base) != 1:
                raise NoValue(f"{expr}: the power is too large to evaluate")
            if _negative(base) and not (_real(exponent) and exponent == int(mpmath.re(exponent))):
                self.outside = True
            return base ** exponent
        if isinstance(expr, sp.exp):
            arg = ev(expr.args[0])
            if mpmath.re(arg) > _HUGE:
                raise NoValue(f"{expr}: too large to evaluate")
            return mpmath.exp(arg)
        if isinstance(expr, sp.log):
            arg = ev(expr.args[0])
            self.outside = self.outside or _negative(arg)
            return mpmath.log(arg)
        if isinstance(expr, sp.tanh):  # in mpmath, so that numerical derivatives see its slope
            return mpmath.tanh(ev(expr.args[0]))
        if isinstance(expr, sp.KroneckerDelta):
            return mpmath.mpf(int(ev(expr.args[0]) == ev(expr.args[1])))
        if isinstance(expr, (sp.Sum, sp.Product)) and _finite_limits(expr):
            return self._sum(expr)
        if expr is sp.pi:
            return mpmath.pi
        if expr is sp.E:
            return mpmath.e
        if isinstance(expr, sp.core.function.AppliedUndef):
            raise Unsupported(f"{expr.func} is an undefined function: it has no value at numbers")
        return self._by_sympy(expr)

    def _entry(self, expr: sp.Indexed) -> object:
        if expr.base not in self.values:
            raise Unsupported(f"no values for {expr.base}")
        values, at = self.values[expr.base], self(expr.indices[0])
        if len(expr.indices) != 1:
            raise Unsupported(f"{expr} has {len(expr.indices)} indices; vectors have one")
        if at != int(at) or not 1 <= int(at) <= len(values):
            raise Undefined(f"{expr} at index {at} is outside 1..{len(values)}")
        return values[int(at) - 1]

    def _by_sympy(self, expr: sp.Basic) -> object:
        """Any other function of numbers (Abs, sin, Piecewise, an Integral, a Limit): put the
        values in and let SymPy evaluate it at our precision."""
        if not isinstance(expr, sp.Expr):
            raise Unsupported(f"{type(expr).__name__} is not a number-valued expression")
        if any(isinstance(a, sp.core.function.AppliedUndef) for a in expr.atoms(sp.Function)):
            raise Unsupported("an undefined function has no value at numbers")
        values = {x: _to_sympy(self(x)) for x in expr.free_symbols
                  if isinstance(x, (sp.Symbol, sp.Indexed))}
        value = sp.N(expr.xreplace(values), DIGITS)
        if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            raise NoValue(f"{expr} has no finite value here")
        real, imag = value.as_real_imag()
        if not (real.is_Number and imag.is_Number):
            raise NoValue(f"{expr} could not be evaluated here")
        if imag == 0:
            return mpmath.mpf(str(real))
        return mpmath.mpc(str(real), str(imag))

    def _sum(self, s: sp.Basic) -> object:
        key = (s, tuple(self.values.get(x) for x in _symbols_of(s)))
        if key not in self._sums:
            self._sums[key] = self._over(s.function, s.limits, isinstance(s, sp.Product))
        return self._sums[key]

    def _over(self, body: sp.Expr, limits: tuple, product: bool = False) -> object:
        """Σ (or Π) of ``body`` over ``limits`` (the first is innermost, as in ``sympy.Sum``)."""
        index, lo, hi = limits[-1]
        first, last = self(lo), self(hi)
        if first != int(first) or last != int(last):
            raise NoValue(f"a sum's limits {lo}, {hi} are not integers here")
        first, last, sign = int(first), int(last), 1
        if last - first > 10**5:
            raise NoValue(f"a sum over {last - first + 1} terms is too long to evaluate")
        if last < first:  # Karr's convention, as SymPy: Σ_{a}^{b} = −Σ_{b+1}^{a−1} for b < a
            first, last, sign = last + 1, first - 1, -1
        span = range(first, last + 1)
        inner = limits[:-1]
        at = _delta_partner(body, index) if not inner and not product else None
        if at is not None:  # every other term is exactly 0 · (a finite number)
            where = self(at)
            span = [int(where)] if where == int(where) and int(where) in span else []
        saved = self.values.get(index)
        total = []
        for value in span:
            self.values[index] = value
            total.append(self._over(body, inner, product) if inner else self(body))
        if saved is None:
            self.values.pop(index, None)
        else:
            self.values[index] = saved
        if product:
            result = mpmath.fprod(total)
            return result if sign == 1 else 1 / result
        return sign * mpmath.fsum(total)


def _real(value: object) -> bool:
    return not isinstance(value, mpmath.mpc) or value.imag == 0


def _negative(value: object) -> bool:
    """A real number below 0 (a complex one with no imaginary part included)."""
    return _real(value) and mpmath.re(value) < 0


def _finite_limits(s: sp.Basic) -> bool:
    return all(not (lo.has(sp.oo, -sp.oo) or hi.has(sp.oo, -sp.oo)) for _, lo, hi in s.limits)


@functools.lru_cache(maxsize=4096)
def _delta_partner(body: sp.Expr, index: sp.Symbol) -> sp.Expr | None:
    """``x`` when ``body`` is a product with a factor δ(index, x), x free of the index."""
    for factor in sp.Mul.make_args(body):
        if isinstance(factor, sp.KroneckerDelta) and index in factor.args:
            other = factor.args[0] if factor.args[1] == index else factor.args[1]
            if index not in other.free_symbols:
                return other
    return None


@functools.lru_cache(maxsize=4096)
def _symbols_of(s: sp.Basic) -> tuple[sp.Basic, ...]:
    """The symbols a sum depends on (its free indices, c, plain symbols): what its value is
    keyed by."""
    return tuple(sorted((x for x in s.free_symbols if isinstance(x, sp.Symbol)), key=str))


def softmax_values(logits: list) -> list:
    """σ at a point, straight from its definition, in the working precision."""
    exps = [mpmath.exp(v) for v in logits]
    denominator = mpmath.fsum(exps)
    return [e / denominator for e in exps]


def finite(value: object) -> bool:
    return not (mpmath.isnan(value) or mpmath.isinf(value))


@dataclass(frozen=True, slots=True)
class Point:
    """A point drawn for a check: the number of classes, the values, and the free indices."""

    classes: int
    values: dict
    choices: list[int] | None = None
    cache: dict | None = field(default=None, compare=False)
    """Sums already evaluated at this draw (shared by its points; they differ in indices)."""

    def evaluate(self, expr: sp.Basic, indices: Mapping[sp.Symbol, int] | None = None) -> object:
        """The value of ``expr`` here (with ``indices`` set to other values). Raises
        :class:`NoValue` where it has no finite value, :class:`Undefined` for an index outside
        1..c, :class:`Unsupported` for what has no value at numbers."""
        values = self.values if not indices else {**self.values, **indices}
        try:
            value = Evaluator(values, self.cache)(expr)
        except (ZeroDivisionError, OverflowError) as error:
            raise NoValue(f"{sp.sstr(expr)[:60]} has no value here ({error})") from None
        if not finite(value):
            raise NoValue(f"{sp.sstr(expr)[:60]} is not finite here")
        return value

    def outside_real(self, expr: sp.Basic, indices: Mapping[sp.Symbol, int] | None = None
                     ) -> bool:
        """Whether evaluating ``expr`` here takes the logarithm of a negative number or a
        fractional power of one: a real expression (a derivation in real variables) has no
        value at such a point. A side that is complex for other reasons (``log(exp(i·x))``)
        is not outside."""
        values = self.values if not indices else {**self.values, **indices}
        evaluator = Evaluator(values)  # no shared sums: every term is walked
        try:
            evaluator(expr)
        except (ArithmeticError, ValueError, TypeError):
            return evaluator.outside
        return evaluator.outside

    def readable(self, exprs: list[sp.Basic]) -> dict[str, object]:
        """``{symbol: value}`` for the symbols of ``exprs`` (indexed ones one by one)."""
        names = set().union(*(e.free_symbols for e in exprs))
        bases = {entry.base for e in exprs for entry in e.atoms(sp.Indexed)}
        if sigma in bases:
            bases.add(z)  # σ is a function of z: give z, so the point can be rebuilt
        out: dict[str, object] = {}
        for key, value in sorted(self.values.items(), key=lambda kv: str(kv[0])):
            if isinstance(value, list):
                if key in bases:
                    for pos, v in enumerate(value, start=1):
                        out[f"{key}[{pos}]"] = _plain(v)
            elif (key in names and not isinstance(key, sp.IndexedBase)) or (key == p and y in bases):
                out[str(key)] = value if isinstance(value, int) else _plain(value)
        return out


def _plain(value: object) -> object:
    if isinstance(value, int):
        return value
    return float(value) if isinstance(value, mpmath.mpf) else complex(value)


def _to_sympy(value: object) -> sp.Expr:
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, mpmath.mpc):
        return sp.Float(value.real, DIGITS) + sp.I * sp.Float(value.imag, DIGITS)
    return sp.Float(value, DIGITS)


def close(a: object, b: object) -> bool:
    """Relative agreement to :data:`TOLERANCE`; NaN never agrees."""
    if mpmath.isnan(a) or mpmath.isnan(b):
        return False
    return abs(a - b) <= TOLERANCE * max(1, abs(a), abs(b))


def directional_derivative(expr: sp.Basic, wrt: sp.Indexed, point: Point,
                           direction: Mapping[int, object]) -> object:
    """d/dt expr(base + t·direction) at t = 0, with ``direction`` over positions of ``wrt.base``
    (mpmath's high-precision numerical differentiation)."""
    base = wrt.base
    if base not in point.values:  # no side mentions the vector: nothing moves with it
        return mpmath.mpf(0)

    def along(t: object) -> object:
        values = dict(point.values)
        moved = list(values[base])
        for position, weight in direction.items():
            moved[position - 1] += t * weight
        values[base] = moved
        if base == z:  # the softmax moves with its logits
            values[sigma] = softmax_values(moved)
        return Evaluator(values)(expr)

    try:
        return mpmath.diff(along, 0)
    except (ZeroDivisionError, OverflowError) as error:
        raise NoValue(f"the derivative has no value here ({error})") from None


def direction(point: Point, seed: int) -> dict[int, object]:
    """A random direction over the varying index's allowed values (a single one: a unit step)."""
    rng = random.Random(seed)
    if len(point.choices) == 1:
        return {point.choices[0]: mpmath.mpf(1)}
    return {x: mpmath.mpf(rng.randint(-10**6, 10**6)) / 10**6 for x in point.choices}
