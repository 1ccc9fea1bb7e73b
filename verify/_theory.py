"""The derivation's results as JAX functions, lambdified from ``derivation.theory()``: not retyped.

Every function takes, elementwise and broadcasting over ``[rows, classes]``, the softmax
:math:`\\sigma_k`, the label :math:`y_k` and the row's label sum :math:`\\sum_i y_i` (shape
``[rows, 1]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import jax
import sympy

import derivation


@dataclass(frozen=True, slots=True)
class Predictions:
    """What the derivation predicts, as JAX functions of ``(sigma, label, label_sum)``.

    Attributes:
        gradient: :math:`\\partial C / \\partial z_k = \\sigma_k \\sum_i y_i - y_k`, any labels.
        closed_form: :math:`\\sigma_k - y_k`, the gradient when the labels sum to one.
        residual: ``gradient - closed_form``, :math:`(\\sum_i y_i - 1)\\,\\sigma_k`.
        gradient_size: the sum of the magnitudes of the gradient's terms,
            :math:`|\\sigma_k \\sum_i y_i| + |y_k|`: the size of what a dtype rounds when it
            evaluates the gradient, and so the scale of its rounding error.
        closed_form_size: the same for the closed form, :math:`|\\sigma_k| + |y_k|`.
    """

    gradient: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    closed_form: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    residual: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    gradient_size: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    closed_form_size: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@cache
def predictions() -> Predictions:
    """The theory of ``derivation.theory()``, lambdified to JAX once per process."""
    theory = derivation.theory()
    symbols = (theory.sigma, theory.label, theory.label_sum)

    def jaxify(expression: sympy.Expr) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
        return sympy.lambdify(symbols, expression, modules="jax")

    def size(expression: sympy.Expr) -> sympy.Expr:
        return sympy.Add(*(sympy.Abs(term) for term in sympy.Add.make_args(expression)))

    return Predictions(
        gradient=jaxify(theory.gradient),
        closed_form=jaxify(theory.closed_form),
        residual=jaxify(theory.residual),
        gradient_size=jaxify(size(theory.gradient)),
        closed_form_size=jaxify(size(theory.closed_form)),
    )
