"""Stage 3 of the text checker: what the rows mean, as a reader of course notes takes them.

* A subscripted name is an entry of a vector over the classes 1..c; a name used as an index (or
  a sum's variable) is an integer index; a sum's symbolic upper bound is c; every other symbol
  is real; ``e`` is Euler's number and ``\\pi`` is π.
* A name first given a value by an equation (``C_0 = …``, ``f(y_i) = …``, ``\\sigma_k = …``) is
  a *definition*; later lines may use the name or its value. An equation whose left side was
  defined before continues it; ``&= …`` continues the row before. After
  ``\\frac{\\partial X}{\\partial v} =`` the first line must be the derivative of X's value.
* Inline math in prose only ever defines a name not used before: ``$y_p = 1$`` or ``$i = j$``
  redefines nothing and claims nothing. A displayed line may define a name used before but
  never given a value ("L = -log ŷ_t, ŷ_t = …"); a function defined once (``σ(x) = …``) means
  that throughout, also before its definition. So does ``σ(z)_i`` (``softmax(z)_i``), which
  otherwise means the softmax of z; a definition of it is also checked against the softmax.
* A line with a condition (a ``cases`` entry, ``\\quad \\text{for } i \\neq k``) is checked
  under it and defines nothing.
* A ``cases`` entry is checked under its condition; a derivative by a defined name keeps that
  name a variable (see :mod:`._text_values`).
* Directives ``assume:`` / ``given:`` put relations in force (see :mod:`._text_assume`).

The result is a tuple of :class:`Claim`: what each step says, with every definition expanded.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import sympy as sp

from ._symbols import c as classes_symbol
from ._text_assume import Assumed, directives_in_force, read_directive
from ._text_calls import calls_as_products, function_definitions, vectors_defined_whole
from ._text_extract import Extracted
from ._text_parse import (IMPLICIT_BOUND, SOFTMAX_NOTATION, VECTOR_ACCENTS, Parsed, parse_row,
                          softmax_meaning)
from ._text_values import State, expand
from ._text_values import by_others as _by_others, define as _define
from ._text_values import functions as _functions, names as _names

EQUAL, DERIVATIVE, UNREADABLE, UNSUPPORTED = "equal", "derivative", "unreadable", "unsupported"
INLINE = "inline"
"""An equation in inline math that defines nothing: not a step (prose states, it does not
derive), but the report says it was not checked."""


def _stated_inline(parsed: Parsed) -> list[Claim]:
    """An :data:`INLINE` mark for an equation in prose that says something beyond naming
    (``$2 + 2 = 5$``, ``$\\frac{d\\sigma}{dx} = …$``; not ``$i = j$`` or ``$z$``)."""
    relation = parsed.relation
    sides = [relation.first, *(x for rel, x in relation.rest if rel == "=")]
    names = [isinstance(x, (sp.Symbol, sp.Indexed)) for x in sides]
    if len(sides) < 2 or (any(names) and all(
            named or isinstance(x, sp.Number) for named, x in zip(names, sides))):
        return []  # naming a case ($i = j$, $k = 1$)
    return [Claim(parsed.row.line, parsed.row.text, INLINE)]


@dataclass(frozen=True)
class Claim:
    """One step to check: ``after`` equals ``before`` (or the derivative of ``before`` by
    ``wrt``), both with definitions expanded, under ``assumed``. ``previous_tag`` is the
    equation number of the line ``before`` comes from; ``reason`` says why an unreadable or
    unsupported step is not checked."""

    line: int
    text: str
    kind: str
    before: sp.Basic | None = None
    after: sp.Basic | None = None
    wrt: sp.Basic | None = None
    assumed: tuple[Assumed, ...] = ()
    reason: str = ""
    previous_tag: str = ""
    against: str = ""
    """What ``before`` is when it is not the line before (``the softmax of z``), for the report."""
    functions: tuple = field(default=(), compare=False)
    """Function definitions in force (name, parameter, body, tag), for hints."""
    by_others: tuple = field(default=(), compare=False)
    """For a derivative: (name, the derivative by that defined name instead), for the hint
    that a line is ∂L/∂s where ∂L/∂a was asked (the chain rule's last factor forgotten)."""


_WORDS_LEFT = re.compile(r"\\(text|textrm|mbox|mathrm|textit|dots|ldots|cdots)\b")
"""Words (or an ellipsis) left in a condition: ``i = 1 \\text{ to } c`` is not read as math."""


def _index_names(exprs: list[sp.Basic]) -> tuple[set[str], list[str]]:
    """Names used as indices (entries, deltas, sums' variables); sums' symbolic upper bounds."""
    indices: set[str] = set()
    bounds: list[str] = []
    for e in exprs:
        for entry in e.atoms(sp.Indexed):
            for x in entry.indices:
                indices |= {s.name for s in x.free_symbols}
        for delta in e.atoms(sp.KroneckerDelta):
            indices |= {s.name for s in delta.free_symbols}
        for s in e.atoms(sp.Sum, sp.Product):
            for var, _, hi in s.limits:
                indices.add(var.name)
                if hi.is_Symbol and hi.name not in bounds:
                    bounds.append(hi.name)
    return indices, bounds


def normaliser(exprs: list[sp.Basic]) -> dict[sp.Symbol, sp.Basic]:
    """Document-wide: each plain symbol to what it means (see the module's docstring)."""
    indices, bounds = _index_names(exprs)
    implicit = IMPLICIT_BOUND.name
    bounds = [name for name in bounds if name != implicit] + [implicit]  # written ones first
    bases = {str(e.base) for x in exprs for e in x.atoms(sp.Indexed)}
    mapping: dict[sp.Symbol, sp.Basic] = {}
    for x in set().union(*(e.free_symbols for e in exprs)) if exprs else ():
        if not isinstance(x, sp.Symbol) or x.name in bases:
            continue
        if x.name == bounds[0] or x.name == implicit:
            mapping[x] = classes_symbol
        elif x.name in indices or x.name in bounds:
            mapping[x] = sp.Symbol(x.name, integer=True, positive=True)
        elif x.name == "e":
            mapping[x] = sp.E
        elif x.name == "pi":
            mapping[x] = sp.pi
        else:
            mapping[x] = sp.Symbol(x.name, real=True)
    return mapping


def _definable(lhs: sp.Basic, state: State, rhs: sp.Basic, display: bool = False
               ) -> sp.Basic | None:
    """The key a new definition ``lhs = rhs`` gives a value to, or ``None``. A name used
    before but never given a value may be defined by a displayed line ("L = -log ŷ_t, where
    ŷ_t = e^{z_t}/Σ_j e^{z_j}"); an entry only when its index is in the value (``y_p = 1``
    is a case, not the vector y)."""
    if isinstance(lhs, sp.Mul) and all(a.is_Symbol and len(a.name) == 1 for a in lhs.args):
        lhs = sp.Symbol("".join(a.name for a in lhs.args), real=True)  # CE: one name
    names = {lhs.name} if isinstance(lhs, sp.Symbol) else _names(lhs)
    if isinstance(lhs, sp.core.function.AppliedUndef):
        names = {str(lhs.func)}
        if names <= state.announced:  # its definition, known from the start (see _announce),
            parameter = state.functions[str(lhs.func)][0]  # or a claim about it (σ(-x) = …)
            return lhs if lhs.args == (parameter,) else None
    elif isinstance(lhs, sp.Indexed) and f"entry:{lhs.base}" in state.announced:
        parameter = state.entries[lhs.base][0]  # σ(z)_i = …, known from the start, or a claim
        return lhs if lhs.indices == (parameter,) else None
    elif isinstance(lhs, sp.Indexed) and all(x.is_Integer for x in lhs.indices):
        names = {str(lhs), f"vector:{lhs.base}"}  # C_0: a name, unless C is a vector in use
    elif isinstance(lhs, sp.Indexed):
        names = {str(lhs.base)}
    if names & _names(rhs):
        return None
    if names & state.used and not (display and _without_value(lhs, state, rhs)):
        return None
    if isinstance(lhs, sp.Symbol) and not lhs.is_integer:
        return lhs
    if isinstance(lhs, sp.Indexed) and all(x.is_Integer for x in lhs.indices):
        return lhs  # C_0: a name with a number for subscript
    if isinstance(lhs, sp.Indexed) and len(lhs.indices) == 1 and lhs.indices[0].is_Symbol:
        return lhs  # σ_k = …: the vector, entry by entry
    if (isinstance(lhs, sp.core.function.AppliedUndef) and len(lhs.args) == 1
            and isinstance(lhs.args[0], (sp.Symbol, sp.Indexed))):
        return lhs
    return None


def _without_value(lhs: sp.Basic, state: State, rhs: sp.Basic) -> bool:
    if isinstance(lhs, sp.Symbol):
        return lhs not in state.values and lhs.name not in state.functions
    if isinstance(lhs, sp.Indexed) and len(lhs.indices) == 1 and lhs.indices[0].is_Symbol:
        return lhs.base not in state.entries and lhs.indices[0] in rhs.free_symbols
    return False


def _undefined(of: sp.Basic, state: State) -> bool:
    """``of`` is a name (L, C_0) or a vector's entry (s_i) with no value yet."""
    if isinstance(of, sp.Indexed) and not all(x.is_Integer for x in of.indices):
        return of.base not in state.entries and expand(of, state) == of
    return (isinstance(of, sp.Symbol) or isinstance(of, sp.Indexed)) \
        and expand(of, state) == of


def _restated(first: sp.Derivative, rel: str, value: sp.Basic) -> bool:
    """``∂X/∂v = ∂/∂v [ … ]``: the derivative of what X is, by the same variable."""
    return (rel == "=" and isinstance(value, sp.Derivative)
            and value.variable_count == first.variable_count
            and not _names(first.expr) & _names(value.expr))


def _vector_name(wrt: sp.Basic, state: State) -> str:
    """The vector's name when ``wrt`` is a whole vector of the document (z or \\mathbf{z} where
    z_k is used), else ''."""
    if not isinstance(wrt, sp.Symbol):
        return ""
    bold = VECTOR_ACCENTS.fullmatch(wrt.name)
    name = bold.group(2).lstrip("\\") if bold else wrt.name
    return name if name in state.vectors else ""


def _claims_for(parsed: Parsed, state: State, assumed: tuple[Assumed, ...],
                source: str) -> list[Claim]:
    row, relation = parsed.row, parsed.relation
    line = row.line
    if relation is None:
        if not row.display:
            return []
        return [Claim(line, row.text, UNREADABLE,
                      reason=f"{source}:{parsed.line}:{parsed.column}: {parsed.error}")]
    first, rest = relation.first, list(relation.rest)
    out: list[Claim] = []

    def claim(kind: str, before: sp.Basic, after: sp.Basic, wrt: sp.Basic | None = None,
              rel: str = "=") -> None:
        text = relation.piece(row.text, len(relation.rest) - len(rest) - 1)
        if rel != "=":
            out.append(Claim(line, text, UNSUPPORTED, reason=f"the relation '{rel}' is not "
                             "checked (only '=' steps are)"))
            return
        out.append(Claim(line, text, kind, expand(before, state, wrt), expand(after, state, wrt),
                         wrt, assumed, previous_tag=state.current_tag, functions=_functions(state),
                         by_others=_by_others(before, wrt, state) if kind == DERIVATIVE else ()))

    if first is None:
        if not row.display:
            return []
        if state.current is None:
            return [Claim(line, row.text, UNREADABLE, reason="a line that continues ('= …') "
                          "with no line before it in its block")]
    elif isinstance(first, sp.Derivative):
        if not row.display:
            return _stated_inline(parsed)
        if not rest:
            return []
        (wrt, _), = first.variable_count
        rel, value = rest.pop(0)
        of = first.expr
        vector = _vector_name(wrt, state)
        if vector:
            out.append(Claim(line, relation.piece(row.text, 0), UNSUPPORTED,
                             reason=f"a derivative by the whole vector {vector} (a gradient in "
                                    f"vector notation) is not checked: write it for one entry, "
                                    f"\\frac{{\\partial ...}}{{\\partial {vector}_k}}"))
        elif _undefined(of, state) and _restated(first, rel, value):
            # ∂L/∂z_i = ∂/∂z_i [ … ]: the line says what L is; the chain goes on from it
            _define(of, value.expr, state, relation.tag or row.tag)
        elif _undefined(of, state):
            out.append(Claim(line, relation.piece(row.text, 0), UNSUPPORTED,
                             reason=f"{of} has no definition before this line to differentiate "
                                    "(or it could not be read)"))
        else:
            claim(DERIVATIVE, of, value, wrt, rel)
        state.current, state.subject, state.current_tag = value, None, relation.tag
    else:
        key = (_definable(first, state, rest[0][1], row.display)
               if rest and rest[0][0] == "=" else None)
        if rest or row.display:  # a name merely mentioned in prose ($z$) gets no meaning from it
            state.used |= _names(first if key is None else key)
        if key is not None and row.condition:
            return [Claim(line, row.text, UNSUPPORTED, reason=f"a definition under a condition "
                          f"('{row.condition}') is not read: define {sp.sstr(key)} for every "
                          "case, or state the case with given:")]
        if key is not None:
            _, value = rest.pop(0)
            if isinstance(key, sp.Indexed) and key.base in state.standard:
                # σ(z)_i is the softmax of z: a text that defines it otherwise is told so
                parameter, meaning = state.standard[key.base]
                vector = SOFTMAX_NOTATION.fullmatch(str(key.base)).group(2)
                out.append(Claim(line, relation.piece(row.text, 0), EQUAL,
                                 meaning.xreplace({parameter: key.indices[0]}),
                                 expand(value, state), None, assumed,
                                 against=f"the softmax of {vector}"))
            _define(key, value, state, relation.tag or row.tag)
            state.written_under[key] = assumed
            state.current, state.subject = value, key
            state.current_tag = relation.tag or row.tag
        elif not row.display:
            return _stated_inline(parsed)
        elif first in state.values:
            # a new case (other assumptions than when its value was last written) starts again
            # from the definition
            same = state.written_under.get(first, ()) == assumed
            state.current = state.values[first] if same else state.defined[first]
            state.subject = first
            state.current_tag = state.tags.get(first, "") if same else ""
        else:
            state.current, state.subject, state.current_tag = first, None, ""
    while rest:
        rel, value = rest.pop(0)
        claim(EQUAL, state.current, value, rel=rel)
        state.current = value
        state.current_tag = relation.tag
        if state.subject is not None:
            state.values[state.subject] = value
            state.tags[state.subject] = relation.tag
            state.written_under[state.subject] = assumed
    return out


def understand(extracted: Extracted, extra_given: tuple[str, ...] = (),
               source: str = "<text>") -> tuple[Claim, ...]:
    """Every step the text claims, in order, with the assumptions in force at its line."""
    parsed = vectors_defined_whole(calls_as_products([parse_row(r) for r in extracted.rows]))
    directives = [read_directive(d) for d in extracted.directives]
    directives = [*(read_directive(None, text) for text in extra_given), *directives]
    exprs = [e for p in parsed if p.relation for e in
             ([p.relation.first] if p.relation.first is not None else [])
             + [x for _, x in p.relation.rest]]
    exprs += [x for d in directives for a in d.relations for x in a.expressions()]
    exprs += [x for p in parsed if p.row.condition
              for a in read_directive(None, p.row.condition).relations for x in a.expressions()]
    notations = softmax_notations(parsed)
    exprs += [x for entry, body, _, *standard in notations for x in (entry, body, *standard)]
    mapping = normaliser(exprs)
    state = State(vectors={str(e.base) for x in exprs for e in x.atoms(sp.Indexed)})
    _announce(parsed, mapping, state, notations)
    claims: list[Claim] = []
    for d in directives:
        if d.error:
            claims.append(Claim(d.line, d.text, UNREADABLE, reason=d.error))
    if extracted.truncated:
        last = extracted.rows[-1].line
        claims.append(Claim(last, "", UNREADABLE, reason=f"more than {len(extracted.rows)} rows "
                            f"of mathematics: the rest, after line {last}, was not read"))
    for p in parsed:
        p = _normalised(p, mapping)
        assumed = directives_in_force(directives, p.row.line, mapping)
        kept = None
        if p.row.condition:  # a cases entry: its condition in force for its row alone
            case = read_directive(None, p.row.condition)
            if case.error or _WORDS_LEFT.search(p.row.condition):
                claims.append(Claim(p.row.line, p.row.text, UNREADABLE, reason=f"the case's "
                                    f"condition '{p.row.condition}' could not be read, so the "
                                    "case is not checked"))
                continue
            assumed = tuple(dict.fromkeys(assumed + tuple(a.normalised(mapping)
                                                          for a in case.relations)))
            # what a name is worth in one case is not its value after it
            kept = (dict(state.values), dict(state.tags), dict(state.written_under))
        chain = (state.current, state.subject, state.current_tag)
        try:
            claims.extend(_claims_for(p, state, assumed, source))
        except (Exception, RecursionError) as error:  # noqa: BLE001 - never out of check_text
            claims.append(Claim(p.row.line, p.row.text, UNREADABLE, reason=f"{source}:"
                                f"{p.row.line}:{p.row.column}: could not be understood "
                                f"({type(error).__name__}: {str(error)[:120]})"))
        if kept is not None:
            state.values, state.tags, state.written_under = kept
        if p.row.where:  # "where s = …": a definition aside; the chain of lines goes on
            state.current, state.subject, state.current_tag = chain
        if p.relation is not None:
            for _, e in p.relation.rest:
                state.used |= _names(e)
    claims.sort(key=lambda claim: claim.line)
    return tuple(claims)


def softmax_notations(parsed: list[Parsed]
                      ) -> list[tuple[sp.Indexed, sp.Basic, bool, sp.Indexed, sp.Basic]]:
    """What ``σ(z)_i`` and ``softmax(z)_i`` mean, as (entry, value, the document's own, and the
    entry and value of the softmax of z): the document's definition where it defines the
    notation once (``σ(z)_i = e^{z_i/T}/…``; then ``σ(a)_i`` is the same function of a), the
    softmax of z where it does not, or more than once (each definition is then a claim)."""
    used: dict[sp.IndexedBase, None] = {}
    definitions: dict[str, list[tuple[sp.Indexed, sp.Basic]]] = {}
    for p in parsed:
        r = p.relation
        if r is None:
            continue
        for e in ([r.first] if r.first is not None else []) + [x for _, x in r.rest]:
            for entry in sorted(e.atoms(sp.Indexed), key=sp.default_sort_key):
                if SOFTMAX_NOTATION.fullmatch(str(entry.base)):
                    used.setdefault(entry.base)
        first = r.first
        if (isinstance(first, sp.Indexed) and not p.row.condition and first.base in used and r.rest
                and r.rest[0][0] == "=" and len(first.indices) == 1
                and first.indices[0].is_Symbol
                and not any(SOFTMAX_NOTATION.fullmatch(name) for name in _names(r.rest[0][1]))):
            function = SOFTMAX_NOTATION.fullmatch(str(first.base)).group(1)
            definitions.setdefault(function, []).append((first, r.rest[0][1]))
    out = []
    for base in used:
        function, vector = SOFTMAX_NOTATION.fullmatch(str(base)).groups()
        written = definitions.get(function, [])
        standard = sp.Indexed(base, sp.Symbol("i"))
        standard = (standard, softmax_meaning(standard))
        if len(written) == 1:
            (entry, body), = written
            defined = SOFTMAX_NOTATION.fullmatch(str(entry.base)).group(2)
            body = body.replace(  # σ(a)_i: the function the text defines for σ(z)_i, of a
                lambda e: isinstance(e, sp.Indexed) and str(e.base) == defined,
                lambda e: sp.Indexed(sp.IndexedBase(vector), *e.indices))
            out.append((sp.Indexed(base, *entry.indices), body, True, *standard))
        else:  # none, or several (each then a claim about the softmax)
            out.append((*standard, False, *standard))
    return out


def _announce(parsed: list[Parsed], mapping: dict, state: State,
              notations: list[tuple[sp.Indexed, sp.Basic, bool, sp.Indexed, sp.Basic]]) -> None:
    """A function defined once in the document (``σ(x) = …``) means that everywhere, also in
    lines before its definition ("… = σ(x) − y, where σ(x) = …") and in a definition that uses
    it before it is defined (``ŷ = σ(a)``, then ``σ(a) = …``); so does the softmax notation
    (:func:`softmax_notations`), which is in use from the start."""
    for entry, body, documents, standard, meaning in notations:
        entry = entry.xreplace(mapping)
        _define(entry, body.xreplace(mapping), state, "")
        state.standard[entry.base] = (standard.xreplace(mapping).indices[0],
                                      meaning.xreplace(mapping))
        state.used |= {str(entry.base), f"vector:{entry.base}"}
        if documents:
            state.announced.add(f"entry:{entry.base}")
    found = [(index, function, body) for index, function, body in function_definitions(parsed)
             if not parsed[index].row.condition]  # f(x) = x "for x > 0" defines nothing
    counts = Counter(str(f.func) for _, f, _ in found)
    for index, function, body in found:
        name = str(function.func)
        if counts[name] == 1 and name not in _names(body):
            tag = parsed[index].relation.tag or parsed[index].row.tag
            _define(function.xreplace(mapping), body.xreplace(mapping), state, tag)
            state.announced.add(name)


def _normalised(p: Parsed, mapping: dict) -> Parsed:
    if p.relation is None:
        return p
    r = p.relation
    first = None if r.first is None else r.first.xreplace(mapping)
    rest = tuple((rel, x.xreplace(mapping)) for rel, x in r.rest)
    return Parsed(p.row, type(r)(first, rest, r.tag, r.cuts), p.error, p.line, p.column)
