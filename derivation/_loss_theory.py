r"""A loss variant's gradient, read off its checked route and rewritten elementwise for numeric
use (``verify`` lambdifies it): nothing typed in by hand.

The elementwise symbols: the softmax of the transformed logits ``s_k``, its log-sum-exp
``lse``, the raw logit ``z_k``, the target ``y_k``, the weight ``w_k``, the row's sums
:math:`\sum_i w_i y_i`, :math:`\sum_i w_i`, :math:`\sum_i y_i`, the upstream gradient ``g``, the
mask ``m_r``, the mean's denominator ``D``, and the options' ε, λ, cap, T.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import sympy as sp

from ._loss import Loss
from ._loss_routes import Variant, variant_route
from ._loss_symbols import D, T, cap, eps, g, lam, mask, w
from ._symbols import c, i, k, sigma, total, y, z

SOFTMAX, LSE, LOGIT, TARGET, WEIGHT = sp.symbols("s_k lse z_k y_k w_k", real=True)
WEIGHTED_SUM, WEIGHT_SUM, TARGET_SUM = sp.symbols("S_wy S_w S_y", real=True)
ARGUMENTS = (SOFTMAX, LSE, LOGIT, TARGET, WEIGHT, WEIGHTED_SUM, WEIGHT_SUM, TARGET_SUM, g, mask,
             D, eps, lam, cap, T, c)
"""The order of the lambdified functions' arguments."""


@dataclass(frozen=True, slots=True)
class LossTheory:
    r"""The gradient of a loss variant for one logit, in the symbols of :data:`ARGUMENTS`.

    ``gradient`` holds for any targets; ``closed_form`` is the route's result (targets that sum
    to one, where the route uses that); ``residual`` is ``gradient − closed_form``: what a
    closed form that assumes Σy = 1 is off by where the targets do not sum to one. ``size`` is
    the sum of the magnitudes of the gradient's terms (multiplied out): the size of what a dtype
    rounds when it evaluates the gradient.
    """

    loss: Loss
    gradient: sp.Expr
    closed_form: sp.Expr
    residual: sp.Expr
    size: sp.Expr


def _elementwise(expr: sp.Expr, v: Variant) -> sp.Expr:
    exp_sum = v.exp_sum()
    big = sp.Dummy("E", positive=True)
    expr = expr.xreplace({sp.log(exp_sum): LSE})
    expr = expr.xreplace({sp.exp(v.u(k)): SOFTMAX * big, exp_sum: big, sigma[k]: SOFTMAX})
    expr = expr.xreplace({total(w[i] * y[i], i, c): WEIGHTED_SUM, total(w[i], i, c): WEIGHT_SUM,
                          total(y[i], i, c): TARGET_SUM})
    expr = expr.xreplace({w[k]: WEIGHT, y[k]: TARGET, z[k]: LOGIT})
    if not expr.free_symbols <= set(ARGUMENTS):
        raise RuntimeError(f"the route's gradient is not elementwise: {expr}")
    return expr


def structure(loss: Loss) -> Loss:
    """The loss with the same options on and off, reduction and targets, and the same stand-in
    value for each option that is on: the route and its theory depend on nothing else (the
    options' values are the symbols ε, λ, cap, T, w), so every loss of one structure shares
    them."""
    return Loss(label_smoothing=0.5 if loss.label_smoothing > 0 else 0.0,
                weight=None if loss.weight is None else (1.0,),
                ignore_index=None if loss.ignore_index is None else -100,
                reduction=loss.reduction, z_loss=1.0 if loss.z_loss > 0 else 0.0,
                softcap=None if loss.softcap is None else 1.0,
                temperature=1.0 if loss.temperature == 1.0 else 2.0, targets=loss.targets)


def loss_theory(loss: Loss) -> LossTheory:
    """Read the gradient off the variant's route for any number of classes.

    The gradient for any targets is the line before "targets sum to one" (or the result, for
    weighted targets, which no such step simplifies). Derived once per :func:`structure`.

    Raises:
        RuntimeError: the route does not hold, so there is no theory to offer.
    """
    return dataclasses.replace(_theory(structure(loss)), loss=loss)


@functools.lru_cache(maxsize=64)
def _theory(loss: Loss) -> LossTheory:
    route = variant_route(loss, c)
    if not route.holds:
        raise RuntimeError(f"the loss variant's route does not hold: {route.steps}")
    v = Variant(loss, c)
    sums_to_one = route.steps[-1].rule.endswith("so Σᵢ qᵢ = 1")
    general = route.steps[-2].expr if sums_to_one else route.result
    gradient = _elementwise(general, v)
    closed = _elementwise(route.result, v)
    size = sp.Add(*(sp.Abs(term) for term in sp.Add.make_args(sp.expand(gradient))))
    return LossTheory(loss, gradient, closed, sp.factor(gradient - closed), size)


__all__ = ["LossTheory", "loss_theory", "structure", "ARGUMENTS"]
