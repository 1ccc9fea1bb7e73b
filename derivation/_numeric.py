"""Numeric checks in high precision (mpmath, 40 significant digits).

Expressions are evaluated by walking the SymPy tree. A sum is evaluated once per point and
reused by every partial derivative that contains it, so checking all c partials of a step costs
O(c) for the shared sums plus O(1) per partial, not O(c²).
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import mpmath
import sympy as sp

from ._assumptions import Assumption
from ._symbols import Classes, c, j, k, n, p, sigma, y, z

DIGITS = 40
"""Working precision of every numeric check, in decimal digits."""
TOLERANCE = mpmath.mpf(10) ** -25
"""Relative agreement asked of two sides that are claimed equal."""
SIZES = (1, 2, 3, 7, 12)
"""Numbers of classes a symbolic-c step is instantiated at."""
POINTS = 2
"""Random points per size."""
_FREE = (k, j, n, p)
_NAMES = frozenset({"c", "z", "y", "sigma"})
_INDEX = {str(x): x for x in _FREE}


class Undefined(ValueError):
    """An expression has no value at a point (an index outside 1..c)."""


class Evaluator:
    """Evaluate SymPy expressions at one point: a value for every symbol and indexed base."""

    def __init__(self, values: Mapping[sp.Basic, object], cache: dict | None = None) -> None:
        """``cache`` may be shared by evaluators whose values differ only in free indices."""
        self.values = dict(values)
        self._sums: dict[tuple, object] = {} if cache is None else cache

    def __call__(self, expr: sp.Basic) -> object:
        ev = self
        if expr.is_Number:
            return mpmath.mpf(expr.p) / expr.q if expr.is_Rational else mpmath.mpf(str(expr))
        if expr.is_Symbol:
            return self.values[expr]
        if isinstance(expr, sp.Indexed):
            values, at = self.values[expr.base], ev(expr.indices[0])
            if at != int(at) or not 1 <= int(at) <= len(values):
                raise Undefined(f"{expr} at index {at} is outside 1..{len(values)}")
            return values[int(at) - 1]
        if expr.is_Add:
            return mpmath.fsum(ev(a) for a in expr.args)
        if expr.is_Mul:
            return mpmath.fprod(ev(a) for a in expr.args)
        if expr.is_Pow:
            return ev(expr.base) ** ev(expr.exp)
        if isinstance(expr, sp.exp):
            return mpmath.exp(ev(expr.args[0]))
        if isinstance(expr, sp.log):
            return mpmath.log(ev(expr.args[0]))
        if isinstance(expr, sp.KroneckerDelta):
            return mpmath.mpf(int(ev(expr.args[0]) == ev(expr.args[1])))
        if isinstance(expr, sp.Sum):
            return self._sum(expr)
        if expr is sp.pi:
            return mpmath.pi
        if expr is sp.E:
            return mpmath.e
        # Any other function of numbers: let SymPy evaluate it at our precision.
        value = expr.func(*(_to_sympy(ev(a)) for a in expr.args)).evalf(DIGITS)
        real, imag = value.as_real_imag()
        if imag == 0:
            return mpmath.mpf(str(real))
        return mpmath.mpc(str(real), str(imag))

    def _sum(self, s: sp.Sum) -> object:
        key = (s, tuple(self.values.get(x) for x in _symbols_of(s)))
        if key not in self._sums:
            self._sums[key] = self._over(s.function, s.limits)
        return self._sums[key]

    def _over(self, body: sp.Expr, limits: tuple) -> object:
        """Σ of ``body`` over ``limits`` (the first is innermost, as in ``sympy.Sum``)."""
        index, lo, hi = limits[-1]
        first, last = int(self(lo)), int(self(hi))
        sign = 1
        if last < first:  # Karr's convention, as SymPy: Σ_{a}^{b} = −Σ_{b+1}^{a−1} for b < a
            first, last, sign = last + 1, first - 1, -1
        span = range(first, last + 1)
        inner = limits[:-1]
        at = _delta_partner(body, index) if not inner else None
        if at is not None:  # every other term is exactly 0 · (a finite number)
            where = self(at)
            span = [int(where)] if where == int(where) and int(where) in span else []
        saved = self.values.get(index)
        total = []
        for value in span:
            self.values[index] = value
            total.append(self._over(body, inner) if inner else self(body))
        if saved is None:
            self.values.pop(index, None)
        else:
            self.values[index] = saved
        return sign * mpmath.fsum(total)


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
def _symbols_of(s: sp.Sum) -> tuple[sp.Symbol, ...]:
    """The plain symbols a sum depends on (its free indices and c): what its value is keyed by."""
    return tuple(sorted((x for x in s.free_symbols if isinstance(x, sp.Symbol)), key=str))


def softmax_values(logits: list) -> list:
    """σ at a point, straight from its definition, in the working precision."""
    exps = [mpmath.exp(v) for v in logits]
    denominator = mpmath.fsum(exps)
    return [e / denominator for e in exps]


@dataclass(frozen=True, slots=True)
class Point:
    """A point drawn for a check: the number of classes, the values, and the free indices."""

    classes: int
    values: dict
    choices: list[int] | None = None
    cache: dict | None = None
    """Sums already evaluated at this draw (shared by its points; they differ in indices)."""

    def evaluate(self, expr: sp.Basic, **indices: int) -> object:
        values = self.values if not indices else {**self.values,
                                                  **{_INDEX[n]: v for n, v in indices.items()}}
        return Evaluator(values, self.cache)(expr)

    def readable(self, exprs: list[sp.Basic]) -> dict[str, object]:
        """``{symbol: value}`` for the symbols of ``exprs`` (indexed ones one by one)."""
        names = set().union(*(e.free_symbols for e in exprs))  # z[k] brings its label z too
        bases = {base for base in (z, y, sigma) if base.label in names}
        if sigma in bases:
            bases.add(z)  # σ is a function of z: give z, so the point can be rebuilt
        out: dict[str, object] = {}
        for key, value in self.values.items():
            if isinstance(value, list):
                if key in bases:
                    for pos, v in enumerate(value, start=1):
                        out[f"{key}[{pos}]"] = _plain(v)
            elif key in names or (key == p and y in bases):
                out[str(key)] = value if isinstance(value, int) else _plain(value)
        return out


def _plain(value: object) -> object:
    return float(value) if isinstance(value, mpmath.mpf) else complex(value)


def _to_sympy(value: object) -> sp.Expr:
    if isinstance(value, mpmath.mpc):
        return sp.Float(value.real, DIGITS) + sp.I * sp.Float(value.imag, DIGITS)
    return sp.Float(value, DIGITS)


def sizes(classes: Classes) -> tuple[int, ...]:
    return SIZES if isinstance(classes, sp.Basic) else (int(classes),)


def _labels(rng: random.Random, size: int, keys: set[str], at: int) -> list:
    """One-hot at ``at``; positive and normalised when they must sum to one; otherwise any real
    labels, negative ones included (the gradient σ_k Σy − y_k holds for all of them)."""
    if "one-hot" in keys:
        return [mpmath.mpf(int(pos == at)) for pos in range(1, size + 1)]
    if "sums-to-one" in keys:
        raw = [mpmath.mpf(rng.randint(1, 10**6)) / 10**6 + mpmath.mpf("0.05") for _ in range(size)]
        total = mpmath.fsum(raw)
        return [v / total for v in raw]
    return [mpmath.mpf(rng.randint(-10**6, 15 * 10**5)) / 10**6 for _ in range(size)]


COMBINATIONS = 16
"""At most this many assignments of the other free indices per point, when one index varies
along a direction (a Hessian at large c); evenly spread over 1..c."""


def points(exprs: list[sp.Basic], classes: Classes, assumptions: tuple[Assumption, ...],
           vary: sp.Symbol | None = None, seed: int = 0) -> Iterator[Point]:
    """Points at which to compare: every size, a few random draws, every value of each free index.

    The draws respect the assumptions (one-hot labels, labels that sum to one, k = p, n ≠ p).
    With ``vary``, that index is left free: ``point.choices`` lists its allowed values.
    """
    keys = {a.key for a in assumptions}
    free: set[sp.Symbol] = set()
    others: set[sp.Symbol] = set()
    for e in exprs:
        free |= {x for x in e.free_symbols if x in _FREE}
        others |= {x for x in e.free_symbols
                   if isinstance(x, sp.Symbol) and x not in _FREE and x.name not in _NAMES}
    rng = random.Random(seed)
    for size in sizes(classes):
        for _ in range(POINTS):
            label_class = rng.randint(1, size)
            values: dict = {
                z: [mpmath.mpf(rng.randint(-3 * 10**6, 3 * 10**6)) / 10**6 for _ in range(size)],
                y: _labels(rng, size, keys, label_class),
                p: label_class,
                c: size,
            }
            for x in sorted(others, key=str):
                values[x] = _draw(rng, x)
            values[sigma] = softmax_values(values[z])
            cache: dict = {}
            ranges = {x: _allowed(x, size, keys, label_class) for x in free - {p}}
            choices = ranges.pop(vary, [label_class] if vary == p else None)
            names = sorted(ranges, key=str)
            combos = list(itertools.product(*(ranges[x] for x in names)))
            if vary is not None and len(combos) > COMBINATIONS:
                combos = [combos[round(t * (len(combos) - 1) / (COMBINATIONS - 1))]
                          for t in range(COMBINATIONS)]
            for combo in _limit(combos, size):
                point = dict(values)
                point.update(zip(names, combo))
                yield Point(size, point, choices, cache)


def _allowed(x: sp.Symbol, size: int, keys: set[str], label_class: int) -> list[int]:
    if x == k and "k-is-p" in keys:
        return [label_class]
    if x == n and "n-not-p" in keys:
        return [v for v in range(1, size + 1) if v != label_class]
    return list(range(1, size + 1))


def _limit(combos: list[tuple], size: int) -> Iterator[tuple]:
    """All index combinations for one index, and for two (a Hessian) up to c = 16; beyond, O(c)
    pairs that still meet every diagonal offset: the band |a − b| ≤ 1, the first and last rows
    and columns, and the anti-diagonal."""
    edges = {1, size}
    for combo in combos:
        if len(combo) <= 1 or size <= 16:
            yield combo
            continue
        a, b = combo
        if abs(a - b) <= 1 or a in edges or b in edges or a + b == size + 1:
            yield combo


def _draw(rng: random.Random, x: sp.Symbol) -> object:
    if x.is_integer:
        low = 1 if x.is_positive else 0 if x.is_nonnegative else -3
        return rng.randint(low, 5)
    magnitude = mpmath.mpf(rng.randint(5 * 10**5, 25 * 10**5)) / 10**6
    if x.is_positive or x.is_nonnegative:
        return magnitude
    return magnitude if rng.random() < 0.5 else -magnitude


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

    def along(t: object) -> object:
        values = dict(point.values)
        moved = list(values[base])
        for position, weight in direction.items():
            moved[position - 1] += t * weight
        values[base] = moved
        if base == z:  # the softmax moves with its logits
            values[sigma] = softmax_values(moved)
        return Evaluator(values)(expr)

    return mpmath.diff(along, 0)


def direction(point: Point, seed: int) -> dict[int, object]:
    """A random direction over the varying index's allowed values (a single one: a unit step)."""
    rng = random.Random(seed)
    if len(point.choices) == 1:
        return {point.choices[0]: mpmath.mpf(1)}
    return {x: mpmath.mpf(rng.randint(-10**6, 10**6)) / 10**6 for x in point.choices}
