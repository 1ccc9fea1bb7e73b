"""Whether ``y(1 - \\hat{y})`` is a function applied or a product, function definitions
that stand after their first use ("… = σ(x) − y, where σ(x) = 1/(1 + e^{−x})"), and a vector
defined whole as the softmax of another (``p = \\mathrm{softmax}(z)``: ``p_i = softmax(z)_i``).

The grammar reads a letter before a bracket as a call; a reader of course notes does not:
``x(x+2)e^x`` and ``-y(1-\\hat{y})`` are products. A call is read as a product when the
document never defines the name as a function, uses the name on its own elsewhere (``y`` in
``-y \\log \\hat{y}``), and the name is not one conventionally given to functions (``f``,
``g``, ``h``, ``σ``, ``φ``).
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ._text_parse import Parsed, softmax_entry

_FUNCTION_NAMES = frozenset({"f", "g", "h", "sigma", "phi", "varphi", "psi", "softmax"})


def _expressions(parsed: list[Parsed]) -> list[sp.Basic]:
    return [e for p in parsed if p.relation for e in
            ([p.relation.first] if p.relation.first is not None else [])
            + [x for _, x in p.relation.rest]]


def function_definitions(parsed: list[Parsed]) -> list[tuple[int, sp.Basic, sp.Basic]]:
    """Rows ``F(v) = body`` (a named function of one symbol or entry): (index, F(v), body)."""
    out = []
    for index, p in enumerate(parsed):
        r = p.relation
        if (r is not None and isinstance(r.first, sp.core.function.AppliedUndef)
                and len(r.first.args) == 1
                and isinstance(r.first.args[0], (sp.Symbol, sp.Indexed))
                and r.rest and r.rest[0][0] == "="):
            out.append((index, r.first, r.rest[0][1]))
    return out


def calls_as_products(parsed: list[Parsed]) -> list[Parsed]:
    """``parsed`` with every call of a name that is no function (see the module) a product."""
    exprs = _expressions(parsed)
    functions = {str(f.func) for _, f, _ in function_definitions(parsed)}
    bare = {s.name for e in exprs for s in e.free_symbols if isinstance(s, sp.Symbol)}
    products = {str(f.func) for e in exprs for f in e.atoms(sp.core.function.AppliedUndef)
                if len(f.args) == 1} & bare
    products -= functions | _FUNCTION_NAMES
    if not products:
        return parsed

    def rewrite(e: sp.Basic) -> sp.Basic:
        return e.replace(
            lambda x: isinstance(x, sp.core.function.AppliedUndef) and str(x.func) in products,
            lambda x: sp.Mul(sp.Symbol(str(x.func)), x.args[0]))

    out = []
    for p in parsed:
        r = p.relation
        if r is None:
            out.append(p)
            continue
        first = None if r.first is None else rewrite(r.first)
        rest = tuple((rel, rewrite(x)) for rel, x in r.rest)
        out.append(replace(p, relation=replace(r, first=first, rest=rest)))
    return out


def vectors_defined_whole(parsed: list[Parsed]) -> list[Parsed]:
    """``parsed`` with ``p = \\mathrm{softmax}(z)`` read as ``p_i = \\mathrm{softmax}(z)_i`` where
    the document uses ``p_i``: a definition of every entry, rather than of an opaque number p.
    (Not ``p = \\sigma(z)``: applied to a whole vector σ is as often the sigmoid, entrywise.)"""
    exprs = _expressions(parsed)
    vectors = {str(x.base) for e in exprs for x in e.atoms(sp.Indexed)}
    out = []
    for p in parsed:
        r = p.relation
        value = r.rest[0][1] if r is not None and r.rest and r.rest[0][0] == "=" else None
        if (isinstance(r.first if r else None, sp.Symbol) and r.first.name in vectors
                and isinstance(value, sp.core.function.AppliedUndef) and len(value.args) == 1
                and isinstance(value.args[0], sp.Symbol) and str(value.func) == "softmax"):
            taken = {str(x) for e in (r.first, value) for x in e.free_symbols}
            index = sp.Symbol(next(n for n in ("i", "k", "j", "m", "l") if n not in taken))
            rest = (("=", softmax_entry(value, index)), *r.rest[1:])
            r = replace(r, first=sp.Indexed(sp.IndexedBase(r.first.name), index), rest=rest)
            p = replace(p, relation=r)
        out.append(p)
    return out
