r"""Ellipsis sums: ``y_1 \log \hat{y}_1 + y_2 \log \hat{y}_2 + \dots + y_c \log \hat{y}_c`` read
as :math:`\sum_{i=1}^{c} y_i \log \hat{y}_i` when the terms follow one pattern.

The pattern is taken from the last term: an index of it that runs (``c`` above) is replaced by a
summation index, and every other term written must be that template at some index value — the
first at an integer (the lower limit), the ones before the first ``\dots`` at consecutive
integers, the others at any value (``y_p \log \hat{y}_p``). Anything else is not guessed at.
"""

from __future__ import annotations

import sympy as sp


def _fresh(terms: list[sp.Basic]) -> sp.Symbol:
    used = {s.name for t in terms for s in t.free_symbols if isinstance(s, sp.Symbol)}
    used |= {str(b) for t in terms for b in (e.base for e in t.atoms(sp.Indexed))}
    return sp.Symbol(next(name for name in ("i", "j", "m", "l", "q", "r", "s") if name not in used))


def _with_index(term: sp.Basic, old: sp.Basic, new: sp.Basic) -> sp.Basic:
    """``term`` with the index ``old`` of every entry replaced by ``new`` (entries only)."""
    return term.replace(
        lambda e: isinstance(e, sp.Indexed) and old in e.indices,
        lambda e: sp.Indexed(e.base, *[new if x == old else x for x in e.indices]))


def _indices(term: sp.Basic) -> list[sp.Basic]:
    seen: list[sp.Basic] = []
    for entry in sorted(term.atoms(sp.Indexed), key=sp.srepr):
        for x in entry.indices:
            if (x.is_Symbol or x.is_Integer) and x not in seen:
                seen.append(x)
    return seen


def _at(template: sp.Basic, index: sp.Symbol, term: sp.Basic) -> sp.Basic | None:
    """The index value at which ``template`` is ``term``, or ``None``."""
    for value in _indices(term):
        if sp.expand(template.xreplace({index: value}) - term) == 0:
            return value
    return None


class Unclear(ValueError):
    """The terms around an ellipsis do not follow one pattern."""


def as_sum(terms: list[object], dots: type) -> sp.Basic:
    """Σ for the terms (SymPy expressions and ``dots`` markers) in the order written."""
    explicit = [(pos, t) for pos, t in enumerate(terms) if not isinstance(t, dots)]
    if len(explicit) < 2:
        raise Unclear("an ellipsis needs a term written on each side")
    last = explicit[-1][1]
    index = _fresh([t for _, t in explicit])
    for running in [x for x in _indices(last) if x.is_Symbol] + [x for x in _indices(last)
                                                                 if x.is_Integer]:
        template = _with_index(last, running, index)
        if index not in template.free_symbols:
            continue
        values = [_at(template, index, t) for _, t in explicit]
        if any(v is None for v in values) or not values[0].is_Integer:
            continue
        first_dots = next(pos for pos, t in enumerate(terms) if isinstance(t, dots))
        lead = [v for (pos, _), v in zip(explicit, values) if pos < first_dots]
        if any(not v.is_Integer for v in lead) or any(
                b - a != 1 for a, b in zip(lead, lead[1:])):
            continue
        if running.is_Integer and running <= lead[-1]:
            continue
        return sp.Sum(template, (index, values[0], running))
    shown = " + ".join("..." if isinstance(t, dots) else sp.sstr(t) for t in terms)
    raise Unclear(f"the terms around '\\dots' do not follow one pattern that runs over an index "
                  f"(read: {shown[:120]})")


def resolve(terms: list[object]) -> sp.Basic:
    """The value of a sum whose terms are listed, reading an ellipsis as Σ when it is clear."""
    from ._text_parse import ReadError, _Dots

    if not any(isinstance(t, _Dots) for t in terms):
        return sp.Add(*terms)
    try:
        return as_sum(terms, _Dots)
    except Unclear as error:
        raise ReadError(f"ellipsis sum not read: {error}") from None
