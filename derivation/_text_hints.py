"""For a step that fails: a one-line hint when the difference is simple (a sign, a constant
factor, a missing term, a name that means two things), and the assumptions from a small
catalogue that would make it hold (``holds if n ≠ p``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import sympy as sp

from ._symbols import c as classes_symbol
from ._text_assume import CONDITION, NORMALISE, SUBSTITUTE, Assumed

_FACTORS = (2, sp.Rational(1, 2), 3, sp.Rational(1, 3), 4, sp.Rational(1, 4), 10)
MAX_CANDIDATES = 8
"""At most this many catalogue assumptions are tried for one failing step."""


def _latex(expr: sp.Basic) -> str:
    return sp.latex(expr)


def _name(x: sp.Basic) -> str:
    return x.name if isinstance(x, sp.Symbol) else str(x)


def hint(before: sp.Basic, after: sp.Basic, holds: Callable[[sp.Basic, sp.Basic], bool],
         functions: tuple = (), previous_tag: str = "", what: str = "the previous one") -> str:
    """One line on how ``after`` differs from ``before`` (``what`` names it), or ``""``.

    ``holds(a, b)`` checks a == b with the same engine and assumptions as the step.
    """
    reuse = _name_reused(before, after, holds, functions, previous_tag)
    if reuse:
        return reuse
    if before != 0 and holds(-before, after):
        return f"sign: this line is the negative of {what}"
    for factor in _FACTORS:
        for k in (factor, -factor):
            if holds(k * before, after):
                return f"constant factor: this line is {k} times {what}"
    difference = sp.expand(after - before)
    if difference != 0 and sp.count_ops(difference) <= 6:
        return f"missing term: this line differs from {what} by ${_latex(difference)}$"
    return ""


def _name_reused(before, after, holds, functions, previous_tag) -> str:
    """The line is the previous one with an entry x_p replaced by a defined function applied
    to x itself: x names that function's output before and its input now."""
    from ._text_values import apply as _apply

    for name, parameter, body, tag in sorted(functions, key=lambda f: (not f[3], f[0])):
        for entry in sorted(before.atoms(sp.Indexed), key=sp.srepr):
            replaced = before.xreplace({entry: _apply(parameter, body, entry)})
            if replaced != before and holds(replaced, after):
                what = "the softmax" if _is_softmax(parameter, body) else f"{name}"
                where_out = f" in {previous_tag}" if previous_tag else " in the previous line"
                where_in = f" in {tag}" if tag else f" in the definition of {name}"
                symbol = _latex(entry.base)
                return (f"${symbol}$ names {what} output{where_out} and its input{where_in}: "
                        f"substituting {tag or name} into a line written in ${symbol}$ uses one "
                        f"name for two things (name the logits apart, e.g. z)")
    return ""


def _is_softmax(parameter: sp.Basic, body: sp.Basic) -> bool:
    if not isinstance(parameter, sp.Indexed):
        return False
    numerator, denominator = sp.fraction(body)
    return (numerator == sp.exp(parameter) and isinstance(denominator, sp.Sum)
            and isinstance(denominator.function, sp.exp))


def catalogue(before: sp.Basic, after: sp.Basic, wrt: sp.Basic | None) -> list[Assumed]:
    """Assumptions worth trying: two free indices equal or distinct, labels one-hot at a free
    index, labels summing to one, a symbol positive."""
    exprs = [before, after]
    free = sorted({x for e in exprs for x in e.free_symbols
                   if isinstance(x, sp.Symbol) and x.is_integer and x != classes_symbol}, key=str)
    bases = sorted({e.base for x in exprs for e in x.atoms(sp.Indexed)}, key=str)
    if wrt is not None and isinstance(wrt, sp.Indexed):
        bases = [b for b in bases if b != wrt.base]
    labels = {b.label for x in exprs for b in x.atoms(sp.IndexedBase)}
    plain = sorted({x for e in exprs for x in e.free_symbols  # not a vector's name (y of y_i)
                    if isinstance(x, sp.Symbol) and not x.is_integer and x not in labels}, key=str)
    out: list[Assumed] = []
    for a, b in itertools.combinations(free, 2):
        out.append(Assumed(f"{a} \\neq {b}", CONDITION, a, b, "!="))
        out.append(Assumed(f"{a} = {b}", SUBSTITUTE, a, b, "=="))
    taken = {q.name for q in free}  # the entry's own index: one no free index uses (not δ_ii)
    i = sp.Symbol(next(n for n in ("i", "j", "l", "m", "r") if n not in taken),
                  integer=True, positive=True)
    for base in bases:
        name = _latex(base)
        for q in free:
            entry = sp.Indexed(base, i)
            out.append(Assumed(f"{name}_{i} = \\delta_{{{i}{q}}}", SUBSTITUTE, entry,
                               sp.KroneckerDelta(i, q), "=="))
        total = sp.Sum(sp.Indexed(base, i), (i, 1, classes_symbol))
        out.append(Assumed(f"\\sum_{{i=1}}^{{c}} {name}_i = 1", NORMALISE, total, sp.Integer(1),
                           "=="))
    for x in plain:
        out.append(Assumed(f"{_latex(x)} > 0", CONDITION, x, sp.Integer(0), ">"))
    return out[:MAX_CANDIDATES]
