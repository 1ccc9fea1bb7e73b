"""Named rewrite rules: each is one rule of calculus or algebra, applied deliberately.

A blanket ``simplify`` is of no use on these expressions (it raises ``StopIteration`` on sums
over ``IndexedBase``, sympy#14570) and would hide the work. Each function here does one thing a
person would name, and :func:`reduce_to_canonical` combines them to decide whether a difference
is zero.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ._symbols import Classes, m, p, sigma, total, unfold_softmax, y, z

_FREE_INDICES = frozenset(sp.symbols("k j n p", integer=True, positive=True))


def log_of_quotient(expr: sp.Basic) -> sp.Basic:
    r""":math:`\log(a/b) = \log a - \log b` and :math:`\log e^{x} = x` (x real)."""
    return sp.expand_log(expr, force=True)


def _split(s: sp.Sum) -> sp.Expr:
    (index, lo, hi), = s.limits
    out = []
    for term in sp.Add.make_args(sp.expand(s.function)):
        outside, inside = term.as_independent(index, as_Add=False)
        out.append(outside * (total(inside, index, hi) if inside != 1 else hi - lo + 1))
    return sp.Add(*out)


def linearity_of_sum(expr: sp.Basic) -> sp.Basic:
    r""":math:`\sum_i (a_i + b_i) = \sum_i a_i + \sum_i b_i`, and factors free of i move out."""
    return expr.replace(lambda e: isinstance(e, sp.Sum), _split)


def _sift(s: sp.Sum) -> sp.Expr:
    (index, _, _), = s.limits
    for factor in sp.Mul.make_args(s.function):
        if isinstance(factor, sp.KroneckerDelta) and index in factor.args:
            other = factor.args[0] if factor.args[1] == index else factor.args[1]
            if other in _FREE_INDICES:
                rest = s.function / factor
                return rest.xreplace({index: other})
    return s


def sift_kronecker_delta(expr: sp.Basic) -> sp.Basic:
    r""":math:`\sum_{i=1}^{c} \delta_{ik} f_i = f_k`, since :math:`1 \le k \le c`."""
    return expr.replace(lambda e: isinstance(e, sp.Sum), _sift)


def labels_sum_to_one(expr: sp.Basic) -> sp.Basic:
    r"""Replace :math:`\sum_i y_i` by 1."""
    return expr.replace(
        lambda e: isinstance(e, sp.Sum)
        and e.function == y[e.limits[0][0]]
        and e.limits[0][1] == 1,
        lambda e: sp.Integer(1),
    )


def one_hot(expr: sp.Basic) -> sp.Basic:
    r"""A one-hot label at class p: :math:`y_i = \delta_{ip}`."""
    return expr.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == y,
        lambda e: sp.KroneckerDelta(e.indices[0], p),
    )


def fold_softmax(expr: sp.Basic, classes: Classes) -> sp.Basic:
    r"""Name the softmax: :math:`e^{z_a} / \sum_j e^{z_j} = \sigma_a`, once per factor of the sum."""
    denominator = total(sp.exp(z[m]), m, classes)

    def fold(mul: sp.Mul) -> sp.Expr:
        exps, power, rest = [], 0, []
        for factor in mul.args:
            base, exponent = factor.as_base_exp()
            if isinstance(factor, sp.exp) and isinstance(factor.args[0], sp.Indexed):
                exps.append(factor.args[0].indices[0])
            elif base == denominator and exponent.is_Integer:
                power += int(exponent)
            else:
                rest.append(factor)
        named = min(len(exps), -power)
        if named <= 0:
            return mul
        folded = [sigma[x] for x in exps[:named]] + [sp.exp(z[x]) for x in exps[named:]]
        return sp.Mul(*rest, *folded, denominator ** (power + named))

    return expr.replace(lambda e: isinstance(e, sp.Mul), fold)


def cancel(expr: sp.Basic) -> sp.Basic:
    """Cancel common factors of a quotient (sums are treated as atoms)."""
    return sp.cancel(sp.together(expr))


def expand(expr: sp.Basic) -> sp.Basic:
    """Multiply out products of sums."""
    return sp.expand(expr)


def _rename_dummies(expr: sp.Basic, depth: int = 0) -> sp.Basic:
    if not expr.args:
        return expr
    if isinstance(expr, sp.Sum):
        (index, lo, hi), = expr.limits
        dummy = sp.Symbol(f"_i{depth}", integer=True, positive=True)
        body = _rename_dummies(expr.function.xreplace({index: dummy}), depth + 1)
        return sp.Sum(body, (dummy, lo, hi))
    return expr.func(*(_rename_dummies(a, depth) for a in expr.args))


def reduce_to_canonical(expr: sp.Basic, classes: Classes,
                        rewrites: tuple[Callable[[sp.Basic], sp.Basic], ...] = ()) -> sp.Basic:
    """Rewrite with the rules above until nothing changes: a difference that is zero becomes 0.

    ``rewrites`` are the assumptions in force (e.g. one-hot labels). Used to check steps, never
    to produce them.
    """
    expr = log_of_quotient(unfold_softmax(expr, classes))
    for _ in range(8):
        before = expr
        for rewrite in rewrites:
            expr = rewrite(expr)
        expr = _rename_dummies(sift_kronecker_delta(linearity_of_sum(expr)))
        if expr == before:
            break
    numerator, _ = sp.fraction(sp.together(expr))
    return sp.expand(numerator)
