"""The symbols of the derivation and the few definitions everything else is built from.

Logits ``z``, labels ``y`` and the softmax ``sigma`` are ``IndexedBase`` objects indexed 1..c. The
number of classes ``c`` is either the symbol :data:`c` (any number of classes) or a Python int;
sums are ``sympy.Sum`` either way, so one set of rules serves both, and the numeric checks
instantiate them.
"""

from __future__ import annotations

import sympy as sp

from ._loss_symbols import SYMBOLS as _LOSS_SYMBOLS

c = sp.Symbol("c", integer=True, positive=True)
"""The number of classes, when it is left symbolic."""

i, j, k, m, n, p = (sp.Symbol(name, integer=True, positive=True) for name in "ijkmnp")
"""Indices: ``i`` (labels) and ``m`` (the softmax denominator) are summed over; ``k`` and ``j`` name the logits we
differentiate by, ``p`` is the class of a one-hot label and ``n`` a class other than ``p``."""

z = sp.IndexedBase("z", real=True)
y = sp.IndexedBase("y", real=True)
sigma = sp.IndexedBase("sigma", positive=True)
C = sp.Symbol("C")
"""The loss, as a name for left-hand sides."""

Classes = sp.Symbol | int


def locals_() -> dict[str, sp.Basic]:
    """The names to pass to ``sympy.sympify`` so that ``str()`` of an expression reads back."""
    return {"z": z, "y": y, "sigma": sigma, "c": c, "i": i, "j": j, "k": k, "m": m, "n": n, "p": p,
            **_LOSS_SYMBOLS}


def total(body: sp.Expr, index: sp.Symbol, classes: Classes) -> sp.Sum:
    """``Σ_{index=1}^{classes} body``."""
    return sp.Sum(body, (index, 1, classes))


def softmax(at: sp.Expr, classes: Classes) -> sp.Expr:
    r""":math:`\sigma_{at} = e^{z_{at}} / \sum_m e^{z_m}`, written in the logits."""
    return sp.exp(z[at]) / total(sp.exp(z[m]), m, classes)


def loss(classes: Classes) -> sp.Expr:
    r"""Categorical cross-entropy :math:`C = -\sum_i y_i \log \sigma_i`."""
    return -total(y[i] * sp.log(sigma[i]), i, classes)


def unfold_softmax(expr: sp.Basic, classes: Classes) -> sp.Basic:
    """Replace every ``sigma[x]`` by its definition in the logits."""
    return expr.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == sigma,
        lambda e: softmax(e.indices[0], classes),
    )


def partial(expr: sp.Expr, wrt: sp.Expr, classes: Classes) -> sp.Expr:
    """Differentiate by a logit (or a probability), with the softmax unfolded if by a logit."""
    if isinstance(wrt, sp.Indexed) and wrt.base == z:
        expr = unfold_softmax(expr, classes)
    return sp.diff(apart_from(expr, wrt), wrt)


def apart_from(expr: sp.Basic, wrt: sp.Basic) -> sp.Basic:
    """``expr`` with every sum's (or product's) variable that is also free in ``wrt`` renamed
    (k → k'), so that differentiating by ``z_k`` does not reach into Σ_k e^{z_k} as if its
    k were the free one (SymPy would differentiate one term and keep the sum)."""
    clash = wrt.free_symbols
    used = {x.name for x in expr.atoms(sp.Symbol)} | {x.name for x in clash}

    def fresh(var: sp.Symbol) -> sp.Symbol:
        name = f"{var.name}'"
        while name in used:
            name += "'"
        used.add(name)
        return sp.Symbol(name, **var.assumptions0)

    def renamed(s: sp.Basic) -> sp.Basic:
        new = {var: fresh(var) for var, *_ in s.limits if var in clash}
        return s.xreplace(new) if new else s

    if not any(var in clash for s in expr.atoms(sp.Sum, sp.Product) for var, *_ in s.limits):
        return expr
    return expr.replace(lambda e: isinstance(e, (sp.Sum, sp.Product)), renamed)
