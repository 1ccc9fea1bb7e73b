"""Where a numeric check compares: points drawn for the symbols of the expressions.

Every size of c (at least the largest concrete index written), a few seeded random draws each,
and every value of each free index (1..c). The derivation's own symbols are drawn as it means
them (logits, labels one-hot or summing to one when assumed, σ = softmax(z)); anyone else's by
what they are (:mod:`._scan`): reals at several magnitudes and both signs, and near the numbers
the expressions contain. Points where an assumption's relation is false are left out.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Iterator

import mpmath
import sympy as sp

from ._assumptions import Assumption
from ._numeric import SIZES, NoValue, Point, Undefined, Unsupported, close, softmax_values
from ._scan import Scan, scan
from ._symbols import Classes, c, k, n, p, sigma, y, z

EXPONENTS = (-3, 3)
"""Plain real symbols are drawn as ±10^u with u uniform in this range: several magnitudes."""
SCALAR_POINTS = 12
"""Points for a step with no classes in it (only plain symbols)."""
POINTS = 2
"""Random points per size."""
MAX_INDEX = 1000
"""The largest concrete index (or a sum's number for a bound) a numeric check evaluates at: its
vectors have at least that many entries, each drawn to 40 digits."""


def sizes(classes: Classes, found: Scan) -> tuple[int, ...]:
    """The numbers of classes to check at: each at least the largest concrete index, and never
    fewer than three where there are classes (a claim true only at c = 12 is not checked at
    c = 12 alone)."""
    if not isinstance(classes, sp.Basic):
        return (int(classes),)
    largest = found.largest_index
    if largest > MAX_INDEX:
        raise Unsupported(f"an index or a sum's bound of {largest:,} needs more classes than the "
                          f"numeric check evaluates (at most {MAX_INDEX:,})")
    if not found.sized:
        return (max(1, largest),)
    found_sizes = {max(size, largest) for size in SIZES}
    if len(found_sizes) < 3:
        found_sizes |= {largest + 1, largest + 5}
    return tuple(sorted(found_sizes))


def _labels(rng: random.Random, size: int, keys: set[str], at: int) -> list:
    """One-hot at ``at``; positive and normalised when they must sum to one; otherwise any real
    labels, negative ones included (the gradient σ_k Σy − y_k holds for all of them)."""
    if "one-hot" in keys:
        return [mpmath.mpf(int(pos == at)) for pos in range(1, size + 1)]
    if "sums-to-one" in keys:
        return _normalised(rng, size)
    return [mpmath.mpf(rng.randint(-10**6, 15 * 10**5)) / 10**6 for _ in range(size)]


def _normalised(rng: random.Random, size: int) -> list:
    raw = [mpmath.mpf(rng.randint(1, 10**6)) / 10**6 + mpmath.mpf("0.05") for _ in range(size)]
    total = mpmath.fsum(raw)
    return [v / total for v in raw]


COMBINATIONS = 16
"""At most this many assignments of the other free indices per point, when one index varies
along a direction (a Hessian at large c); evenly spread over 1..c."""
MAX_COMBINATIONS = 48
"""At most this many assignments of three or more free indices per draw (seeded sample)."""


def seed_of(exprs: list[sp.Basic], seed: int = 0) -> int:
    """A seed drawn from the expressions themselves: the kinds of their nodes and their atoms,
    sorted, so stable across runs and processes (never Python's salted ``hash``)."""
    parts = sorted(type(node).__name__ if node.args else f"{type(node).__name__}:{node}"
                   for e in exprs for node in sp.preorder_traversal(e))
    return zlib.crc32("\n".join(parts).encode()) ^ seed


def points(exprs: list[sp.Basic], classes: Classes, assumptions: tuple[Assumption, ...],
           vary: sp.Symbol | None = None, seed: int = 0) -> Iterator[Point]:
    """Points at which to compare: every size, a few random draws, every value of each free index.

    The draws respect the assumptions (one-hot labels, labels that sum to one, k = p, n ≠ p,
    and any relation an assumption states: points where it is false are left out).
    With ``vary``, that index is left free: ``point.choices`` lists its allowed values.
    """
    keys = {a.key for a in assumptions}
    found = scan(exprs, extra=[a.condition for a in assumptions if a.condition is not None])
    normalised = {a.normalises for a in assumptions if a.normalises is not None}
    conditions = [a.condition for a in assumptions if a.condition is not None]
    rng = random.Random(seed_of(exprs, seed))
    draws = POINTS if found.sized or not isinstance(classes, sp.Basic) else SCALAR_POINTS
    for size in sizes(classes, found):
        for _ in range(draws):
            label_class = rng.randint(1, size)
            values: dict = {
                z: [mpmath.mpf(rng.randint(-3 * 10**6, 3 * 10**6)) / 10**6 for _ in range(size)],
                y: _labels(rng, size, keys, label_class),
                p: label_class,
                c: size,
            }
            for base in found.bases:
                values[base] = (_normalised(rng, size) if base in normalised
                                else [_draw_real(rng, base, (-2, 1), ()) for _ in range(size)])
            for x in found.bounds:
                values[x] = rng.randint(1, size)
            for x in found.plain:
                values[x] = _draw(rng, x, found.constants)
            values[sigma] = softmax_values(values[z])
            cache: dict = {}
            ranges = {x: _allowed(x, size, keys, label_class) for x in found.indices - {p}}
            choices = ranges.pop(vary, [label_class] if vary == p else None)
            names = sorted(ranges, key=str)
            combos = list(itertools.product(*(ranges[x] for x in names)))
            if vary is not None and len(combos) > COMBINATIONS:
                combos = [combos[round(t * (len(combos) - 1) / (COMBINATIONS - 1))]
                          for t in range(COMBINATIONS)]
            combos = list(_limit(combos, size))
            if len(combos) > MAX_COMBINATIONS:
                combos = sorted(rng.sample(combos, MAX_COMBINATIONS))
            for combo in combos:
                point = dict(values)
                point.update(zip(names, combo))
                candidate = Point(size, point, choices, cache)
                if vary is not None and choices is not None and conditions:
                    allowed = [x for x in choices if all(
                        _satisfied(candidate, relation, {vary: x}) for relation in conditions)]
                    if allowed:
                        yield Point(size, point, allowed, cache)
                elif all(_satisfied(candidate, relation) for relation in conditions):
                    yield candidate


def _satisfied(point: Point, relation: sp.Basic, extra: dict | None = None) -> bool:
    """Whether a stated relation holds at the point (one that cannot be evaluated: no)."""
    try:
        left = point.evaluate(relation.lhs, extra)
        right = point.evaluate(relation.rhs, extra)
    except (NoValue, Undefined, Unsupported):
        return False
    if isinstance(left, mpmath.mpc) or isinstance(right, mpmath.mpc):
        return False
    ops = {"==": lambda a, b: close(a, b), "!=": lambda a, b: not close(a, b),
           "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
           ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    return bool(ops[relation.rel_op](left, right))


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
        if len(combo) != 2 or size <= 16:
            yield combo
            continue
        a, b = combo
        if abs(a - b) <= 1 or a in edges or b in edges or a + b == size + 1:
            yield combo


def _draw_real(rng: random.Random, x: sp.Basic, exponents: tuple[int, int],
               constants: tuple) -> object:
    """±10^u, u uniform in ``exponents`` (so several magnitudes and both signs), or, now and
    then, next to a number written in the expressions (where Abs and Piecewise turn)."""
    if constants and rng.random() < 0.3:
        value = mpmath.mpf(rng.choice(constants)) + mpmath.mpf(rng.randint(-10**6, 10**6)) / 10**6
    else:
        exponent = rng.randint(exponents[0] * 10**6, exponents[1] * 10**6) / 10**6
        value = mpmath.mpf(f"{10 ** exponent:.6g}")  # six digits: a counterexample one can read
        value = value if rng.random() < 0.5 else -value
    if x.is_positive or x.is_nonnegative:
        value = abs(value) or mpmath.mpf("0.5")
    elif x.is_negative or x.is_nonpositive:
        value = -abs(value) or mpmath.mpf("-0.5")
    return value


def _draw(rng: random.Random, x: sp.Symbol, constants: tuple) -> object:
    if x.is_integer:
        low = 1 if x.is_positive else 0 if x.is_nonnegative else -12
        high = -1 if x.is_negative else 0 if x.is_nonpositive else 12
        return rng.randint(low, high)
    return _draw_real(rng, x, EXPONENTS, constants)
