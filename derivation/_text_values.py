"""What the names of a written derivation stand for: the definitions in force as the text is
read (:class:`State`), and expressions with every defined name replaced by its value
(:func:`expand`); a derivative by a defined name is carried out with that name a variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ._symbols import apart_from

_MAX_EXPANSIONS = 12


@dataclass
class State:
    values: dict = field(default_factory=dict)       # Symbol / Indexed(C, 0) -> current value
    defined: dict = field(default_factory=dict)      # the same keys -> value when defined
    written_under: dict = field(default_factory=dict)  # the same keys -> assumptions then
    entries: dict = field(default_factory=dict)      # IndexedBase -> (index, body)
    functions: dict = field(default_factory=dict)    # name -> (parameter, body, tag)
    tags: dict = field(default_factory=dict)         # key -> tag of its latest line
    used: set = field(default_factory=set)           # names seen so far
    current: sp.Basic | None = None                  # the chain's last expression
    subject: sp.Basic | None = None                  # the defined name the chain continues
    current_tag: str = ""
    vectors: set = field(default_factory=set)        # names of the document's vectors (z of z_k)
    announced: set = field(default_factory=set)      # functions defined once, known throughout
    standard: dict = field(default_factory=dict)     # sigma(z) -> (index, the softmax of z)


def names(expr: sp.Basic) -> set[str]:
    """The names ``expr`` uses: symbols, functions, vectors (``y`` for ``y_i``, and
    ``vector:y`` when an index is not a number) and named entries (``C[0]`` for ``C_0``)."""
    out = {s.name for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    for e in expr.atoms(sp.Indexed):
        out |= {str(e.base), str(e)}
        if not all(x.is_Integer for x in e.indices):
            out.add(f"vector:{e.base}")
    out |= {str(f.func) for f in expr.atoms(sp.core.function.AppliedUndef)}
    return out


def define(key: sp.Basic, value: sp.Basic, state: State, tag: str) -> None:
    if isinstance(key, sp.core.function.AppliedUndef):
        state.functions[str(key.func)] = (key.args[0], value, tag)
        if isinstance(key.args[0], sp.Symbol):  # σ(x) = …: a bare σ is σ(x) (as in dσ/dx)
            state.values[sp.Symbol(str(key.func), real=True)] = value
    elif isinstance(key, sp.Indexed) and key.indices[0].is_Symbol:
        state.entries[key.base] = (key.indices[0], value)
    else:
        state.values[key] = state.defined[key] = value
    state.tags[key] = tag


def apply(parameter: sp.Basic, body: sp.Basic, argument: sp.Basic) -> sp.Basic:
    """A defined function's body at an argument (``σ(y_i)`` applied to ``ŷ_p``)."""
    if isinstance(parameter, sp.Indexed) and isinstance(argument, sp.Indexed):
        renamed = body.replace(lambda e: isinstance(e, sp.Indexed) and e.base == parameter.base,
                               lambda e: sp.Indexed(argument.base, *e.indices))
        return renamed.xreplace({parameter.indices[0]: argument.indices[0]})
    return body.xreplace({parameter: argument})


def expand(expr: sp.Basic, state: State, keep: sp.Basic | None = None) -> sp.Basic:
    """``expr`` with every defined name replaced by its value, until none is left; ``keep``
    (the variable a derivative is taken by: ``ŷ`` in ``∂L/∂ŷ``,
    or an entry ``p_i`` of a defined vector) stays a variable even when it has a value."""
    values = state.values
    entries = state.entries
    if keep is not None:
        values = {k: v for k, v in values.items() if k != keep}
        if isinstance(keep, sp.Indexed):
            entries = {k: v for k, v in entries.items() if k != keep.base}
    for _ in range(_MAX_EXPANSIONS):
        before = expr
        expr = expr.replace(lambda e: isinstance(e, sp.Derivative) and _by_defined(e, state),
                            lambda e: _differentiated(e, state))
        expr = expr.xreplace(values)
        if entries:
            expr = expr.replace(
                lambda e: isinstance(e, sp.Indexed) and e.base in entries,
                lambda e: entries[e.base][1].xreplace({entries[e.base][0]: e.indices[0]}))
        if state.functions:
            expr = expr.replace(
                lambda e: isinstance(e, sp.core.function.AppliedUndef)
                and str(e.func) in state.functions,
                lambda e: apply(*state.functions[str(e.func)][:2], e.args[0]))
        if expr == before:
            break
    return expr


def _by_defined(d: sp.Derivative, state: State) -> bool:
    """``d`` is by one name that has a value (``∂C/∂p_i`` with p the softmax)."""
    if len(d.variable_count) != 1:
        return False
    (v, _), = d.variable_count
    return v in state.values or (isinstance(v, sp.Indexed) and v.base in state.entries)


def _differentiated(d: sp.Derivative, state: State) -> sp.Basic:
    """A derivative by a defined name, carried out with that name a variable (its value goes in
    afterwards, as for every other name): ``∂C/∂p_i`` of ``C = -Σ_i y_i log p_i`` is
    ``-y_i/p_i``, not 0. A sum's variable that is also the derivative's index is renamed first
    (Σ_i … p_i by p_i is not the derivative of one term)."""
    (v, n), = d.variable_count
    of = apart_from(expand(d.expr, state, v), v)
    return sp.diff(of, v, n)


def by_others(of: sp.Basic, wrt: sp.Basic, state: State) -> tuple:
    """(name, ∂of/∂name) for each defined plain name ``of`` depends on, other than ``wrt``
    (at most three)."""
    out = []
    for key in state.values:
        if len(out) == 3:
            break
        if not isinstance(key, sp.Symbol) or key == wrt:
            continue
        kept = expand(of, state, key)
        if key in kept.free_symbols:
            out.append((key, expand(sp.diff(kept, key), state)))
    return tuple(out)


def functions(state: State) -> tuple:
    return tuple((name, *definition) for name, definition in sorted(state.functions.items()))
