"""The derivation's results, rewritten elementwise for numeric use (``verify`` lambdifies these).

Nothing here is typed in by hand: the expressions are read off the checked log-sum-exp route
for any number of classes, and that route must hold.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from ._routes import log_sum_exp_route
from ._symbols import c, i, k, sigma, total, y


@dataclass(frozen=True, slots=True)
class Theory:
    r"""The gradient for one class k, in three elementwise symbols.

    ``gradient`` is :math:`\partial C/\partial z_k = \sigma_k \sum_i y_i - y_k` for any labels,
    ``closed_form`` is :math:`\sigma_k - y_k` (labels that sum to one) and ``residual`` is
    ``gradient - closed_form``, :math:`(\sum_i y_i - 1)\,\sigma_k`.
    """

    sigma: sp.Symbol
    label: sp.Symbol
    label_sum: sp.Symbol
    gradient: sp.Expr
    closed_form: sp.Expr
    residual: sp.Expr


@functools.lru_cache(maxsize=1)
def theory() -> Theory:
    """Read the gradient off the log-sum-exp route: the line before Σᵢyᵢ = 1 is applied (any
    labels) and the route's result (labels that sum to one).

    Raises:
        RuntimeError: the route does not hold, so there is no theory to offer.
    """
    route = log_sum_exp_route(c, "soft")
    if not route.holds:
        raise RuntimeError(f"the log-sum-exp route does not hold: {route.steps}")
    s, t, total_y = sp.symbols("sigma_k y_k S_y", real=True)
    elementwise = {sigma[k]: s, y[k]: t, total(y[i], i, c): total_y}
    gradient = route.steps[-2].expr.xreplace(elementwise)
    closed = route.result.xreplace(elementwise)
    if not {s, t, total_y} >= gradient.free_symbols | closed.free_symbols:
        raise RuntimeError(f"the route's result is not elementwise: {gradient}, {closed}")
    return Theory(s, t, total_y, gradient, closed, sp.factor(gradient - closed))
