"""What a check must draw values for: each symbol of the expressions, classified by what it is.

Symbols are told apart by identity (name *and* assumptions), so a user's plain ``y`` or ``c`` is
never taken for the derivation's ``y`` (a vector) or ``c`` (the number of classes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sympy as sp

from ._symbols import c, j, k, n, p, sigma, y, z

_PACKAGE_BASES = frozenset({z, y, sigma})
_PACKAGE_INDICES = frozenset({k, j, n, p})


@dataclass(frozen=True, slots=True)
class Scan:
    """The symbols of some expressions, by kind.

    ``bases``: vectors other than the derivation's own (drawn as reals over 1..c);
    ``indices``: free indices (each drawn over 1..c); ``bounds``: integer symbols that bound a
    sum (drawn from 1..c); ``plain``: every other symbol; ``constants``: numbers written in the
    expressions (points are drawn near them too); ``largest_index``: the largest concrete index
    written (c is never smaller); ``sized``: whether anything depends on the number of classes.
    """

    bases: tuple[sp.IndexedBase, ...]
    indices: frozenset[sp.Symbol]
    bounds: tuple[sp.Symbol, ...]
    plain: tuple[sp.Symbol, ...]
    constants: tuple[object, ...]
    largest_index: int
    sized: bool


def _key(x: sp.Basic) -> str:
    return sp.srepr(x)


def _bound_free(exprs: list[sp.Basic]) -> set[sp.Basic]:
    return set().union(*(e.free_symbols for e in exprs)) if exprs else set()


def _largest_summed_index(s: sp.Sum | sp.Product) -> int:
    """The largest index an entry takes in a sum with numbers for bounds (``Σ_{i=1}^{10} z_i``
    needs ten classes; ``z_{i+1}`` eleven), or 0."""
    largest = 0
    for var, lo, hi in s.limits:
        if not (lo.is_Integer and hi.is_Integer):
            continue
        for entry in s.function.atoms(sp.Indexed):
            for index in entry.indices:
                if index.free_symbols == {var} and index.is_polynomial(var) \
                        and sp.degree(index, var) == 1:
                    ends = (index.subs(var, lo), index.subs(var, hi))
                    largest = max(largest, *(int(x) for x in ends if x.is_Integer))
    return largest


def scan(exprs: Iterable[sp.Basic], extra: Iterable[sp.Basic] = ()) -> Scan:
    """Classify the symbols of ``exprs`` (and of ``extra``, e.g. assumptions' relations)."""
    exprs = list(exprs) + list(extra)
    symbols: set[sp.Symbol] = set()
    for e in exprs:  # an entry's free symbols include its base's label: not a symbol of its own
        outside = e.xreplace({entry: sp.Dummy() for entry in e.atoms(sp.Indexed)})
        symbols |= {x for x in outside.free_symbols if isinstance(x, sp.Symbol)}
        symbols |= {x for entry in e.atoms(sp.Indexed) for index in entry.indices
                    for x in index.free_symbols if x in e.free_symbols}
    symbols = {x for x in symbols if not isinstance(x, sp.Dummy) or x in _bound_free(exprs)}
    bases, indices, bounds, largest = set(), set(), set(), 0
    constants: set[object] = set()
    for e in exprs:
        for entry in e.atoms(sp.Indexed):
            bases.add(entry.base)
            for index in entry.indices:
                if index.is_Integer:
                    largest = max(largest, int(index))
                indices |= index.free_symbols & symbols
        for delta in e.atoms(sp.KroneckerDelta):  # δ_{i,13}, or ∂/∂z_13 carried out
            indices |= delta.free_symbols & symbols
            largest = max(largest, *(int(x) for x in delta.args if x.is_Integer), 0)
        for s in e.atoms(sp.Sum, sp.Product):
            for _, lo, hi in s.limits:
                bounds |= (lo.free_symbols | hi.free_symbols) & symbols
            largest = max(largest, _largest_summed_index(s))
        for number in e.atoms(sp.Number):
            if number.is_Rational and abs(number) < 10**6:
                constants.add(number.p / number.q)
    indices |= symbols & _PACKAGE_INDICES
    indices -= {c}
    bounds -= indices | {c}
    plain = symbols - indices - bounds - {c}
    sized = bool(bases or indices or bounds or c in symbols)
    return Scan(
        bases=tuple(sorted(bases - _PACKAGE_BASES, key=_key)),
        indices=frozenset(indices),
        bounds=tuple(sorted(bounds, key=_key)),
        plain=tuple(sorted(plain, key=_key)),
        constants=tuple(sorted(constants)),
        largest_index=largest,
        sized=sized,
    )
