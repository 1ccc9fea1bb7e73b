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


def _split_log(log: sp.Expr) -> sp.Expr:
    if not isinstance(log, sp.log):  # SymPy already simplified it, e.g. log(e^x) = x
        return log
    arg = log.args[0]
    if isinstance(arg, sp.exp) and arg.args[0].is_real:
        return arg.args[0]
    if arg.is_Mul and all(factor.is_positive for factor in arg.args):
        return sp.Add(*(_split_log(sp.log(factor)) for factor in arg.args))
    if arg.is_Pow and arg.base.is_positive and arg.exp.is_real:
        return arg.exp * _split_log(sp.log(arg.base))
    return sp.log(arg)


def log_of_quotient(expr: sp.Basic) -> sp.Basic:
    r""":math:`\log(a/b) = \log a - \log b` and :math:`\log e^{x} = x` (x real), only where SymPy
    knows the factors are positive (a sum of exponentials is; a real label need not be)."""
    return expr.replace(lambda e: isinstance(e, sp.log), _split_log)


def _one_limit(s: sp.Sum) -> tuple | None:
    """``(index, lo, hi)`` of a sum over one index; ``None`` for several (left to the numeric
    check: the rules below are for one)."""
    return s.limits[0] if len(s.limits) == 1 else None


def _split(s: sp.Sum) -> sp.Expr:
    if _one_limit(s) is None:
        return s
    (index, lo, hi), = s.limits
    out = []
    for term in sp.Add.make_args(sp.expand(s.function)):
        outside, inside = term.as_independent(index, as_Add=False)
        out.append(outside * (sp.Sum(inside, (index, lo, hi)) if inside != 1 else hi - lo + 1))
    return sp.Add(*out)


def linearity_of_sum(expr: sp.Basic) -> sp.Basic:
    r""":math:`\sum_i (a_i + b_i) = \sum_i a_i + \sum_i b_i`, and factors free of i move out."""
    return expr.replace(lambda e: isinstance(e, sp.Sum), _split)


def _over_all_classes(s: sp.Sum, classes: Classes) -> bool:
    limits = _one_limit(s)
    return limits is not None and limits[1] == 1 and limits[2] == classes


def sift_kronecker_delta(expr: sp.Basic, classes: Classes) -> sp.Basic:
    r""":math:`\sum_{i=1}^{c} \delta_{ik} f_i = f_k`, since :math:`1 \le k \le c` (only for sums
    over exactly 1..c)."""
    def sift(s: sp.Sum) -> sp.Expr:
        if not _over_all_classes(s, classes):
            return s
        (index, _, _), = s.limits
        for factor in sp.Mul.make_args(s.function):
            if isinstance(factor, sp.KroneckerDelta) and index in factor.args:
                other = factor.args[0] if factor.args[1] == index else factor.args[1]
                if other in _FREE_INDICES:
                    return (s.function / factor).xreplace({index: other})
        return s

    return expr.replace(lambda e: isinstance(e, sp.Sum), sift)


def labels_sum_to_one(expr: sp.Basic, classes: Classes) -> sp.Basic:
    r"""Replace :math:`\sum_{i=1}^{c} y_i` by 1."""
    return expr.replace(
        lambda e: isinstance(e, sp.Sum) and _over_all_classes(e, classes)
        and e.function == y[e.limits[0][0]],
        lambda e: sp.Integer(1),
    )


def one_hot(expr: sp.Basic, classes: Classes | None = None) -> sp.Basic:
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
        body, limits = expr.function, []
        for offset, (index, lo, hi) in enumerate(expr.limits):
            dummy = sp.Symbol(f"_i{depth + offset}", integer=True, positive=True)
            body = body.xreplace({index: dummy})
            limits.append((dummy, lo, hi))
        return sp.Sum(_rename_dummies(body, depth + len(limits)), *limits)
    return expr.func(*(_rename_dummies(a, depth) for a in expr.args))


def reduce_to_canonical(expr: sp.Basic, classes: Classes,
                        rewrites: tuple[Callable[[sp.Basic, Classes], sp.Basic], ...] = ()
                        ) -> sp.Basic:
    """Rewrite with the rules above until nothing changes: a difference that is zero becomes 0.

    ``rewrites`` are the assumptions in force (e.g. one-hot labels). Used to check steps, never
    to produce them.
    """
    expr = log_of_quotient(unfold_softmax(expr, classes))
    for _ in range(8):
        before = expr
        for rewrite in rewrites:
            expr = rewrite(expr, classes)
        expr = _rename_dummies(sift_kronecker_delta(linearity_of_sum(expr), classes))
        if expr == before:
            break
    numerator, _ = sp.fraction(sp.together(expr))
    return sp.expand(numerator)
