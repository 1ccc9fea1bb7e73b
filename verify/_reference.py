r"""The reference a closed form is judged against: the loss, and what the derivation predicts.

One small object, :class:`Reference`, travels through the pipeline:

* ``row_losses`` is the loss whose ``jax.grad`` is *autograd* (in the cell's dtype) and the
  *exact* gradient (in float64); the opinions stage differentiates it, nothing else does;
* ``theory_inputs`` maps the (rounded, float64) inputs to the symbols the theory is written in,
  :math:`(\sigma, y, \sum_i y_i)`: the opinions stage evaluates it beside the exact gradient;
* ``residual`` is the derivation's predicted gradient minus the claimed closed form: the judge
  expects to see it where the labels miss :math:`\sum_i y_i = 1`;
* ``gradient_size`` and ``closed_form_size`` are the sizes of the terms an honest evaluation
  rounds: the judge's rounding allowance and its ULPs are taken at them.

The theory functions are elementwise functions of ``(sigma, label, label_sum)``, broadcasting
over ``[rows, classes]`` (``label_sum`` is ``[rows, 1]``), written with arithmetic and ``abs``
alone so that they take NumPy and JAX arrays alike (the opinions stage evaluates the size in its
compiled program, the judge the others). They are lambdified from ``derivation.theory()`` (kept
as generated code, :mod:`._theory_plain`, held equal to the derivation by a test): never
retyped. Today's only reference is :func:`plain`, the softmax cross-entropy summed over rows; a
loss variant is another :class:`Reference` with its own loss and its own lambdified theory, and
nothing downstream changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _theory_plain

Theory = Callable[[ArrayLike, ArrayLike, ArrayLike], ArrayLike]
"""An elementwise function of ``(sigma, label, label_sum)``, NumPy or JAX arrays alike."""


def row_losses(z: ArrayLike, y: ArrayLike) -> jax.Array:
    r"""The softmax cross-entropy of each row, ``[rows]``:
    :math:`-\sum_k y_k \log \mathrm{softmax}(z)_k`, with :math:`0 \cdot \log 0 = 0`, so a class
    masked with :math:`-\infty` whose label is zero contributes nothing (and no NaN)."""
    y = jnp.asarray(y)
    terms = y * jax.nn.log_softmax(z, axis=-1)
    return -jnp.sum(jnp.where(y == 0, 0, terms), axis=-1)


def softmax_and_labels(z: ArrayLike, y: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(softmax(z), y, Σy)``: the symbols of the plain loss's theory."""
    y = jnp.asarray(y)
    return jax.nn.softmax(z, axis=-1), y, jnp.sum(y, axis=-1, keepdims=True)


@dataclass(frozen=True, slots=True)
class Reference:
    """What a closed form is compared with.

    Attributes:
        name: a short name of the loss, e.g. ``"softmax cross-entropy"``; with ``cacheable``,
            it must tell this reference from every other one this version can make (its
            parameters included), as it keys the reference's compiled programs on disk.
        cacheable: whether ``name`` identifies the reference (a reference made of a user's
            functions does not: its programs are kept only by what they trace to).
        row_losses: ``(z, y) -> [rows]``, a JAX function of ``[rows, classes]`` arrays; the loss
            is its sum, and its gradient is what autograd computes.
        theory_inputs: ``(z, y) -> (sigma, label, label_sum)``, JAX, the arrays the theory
            functions take (``label_sum`` shaped ``[rows, 1]``).
        residual: the predicted gradient minus the closed form claimed, :math:`(\\sum y - 1)\\sigma`.
        gradient_size: the size of the gradient's terms, :math:`|\\sigma \\sum y| + |y|`.
        closed_form_size: the size of the closed form's terms, :math:`|\\sigma| + |y|`.
    """

    name: str
    cacheable: bool
    row_losses: Callable[[jax.Array, jax.Array], jax.Array]
    theory_inputs: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]
    residual: Theory
    gradient_size: Theory
    closed_form_size: Theory

    def loss(self, z: ArrayLike, y: ArrayLike) -> jax.Array:
        """The loss: :attr:`row_losses` summed over rows."""
        return jnp.sum(self.row_losses(z, y))


@cache
def plain() -> Reference:
    """The softmax cross-entropy summed over rows, its theory ``derivation.theory()``
    lambdified (kept as :mod:`._theory_plain`, so that no run imports SymPy)."""
    return Reference(
        name="softmax cross-entropy",
        cacheable=True,
        row_losses=row_losses,
        theory_inputs=softmax_and_labels,
        residual=_theory_plain.residual,
        gradient_size=_theory_plain.gradient_size,
        closed_form_size=_theory_plain.closed_form_size,
    )
