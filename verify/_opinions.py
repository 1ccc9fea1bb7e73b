r"""The opinions about the gradient: the loss, autograd, and autograd's own check.

The loss is the softmax cross-entropy summed over rows,

.. math::
    C(z, y) = -\sum_{r} \sum_k y_{rk} \log \mathrm{softmax}(z_r)_k ,

with the usual convention :math:`0 \cdot \log 0 = 0`, so a class masked with :math:`-\infty` whose
label is zero contributes nothing (and no NaN) to the loss or its gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

FORWARD_MODE_RTOL = 1e-9
"""How far (relative) a JVP may be from ⟨jax.grad, v⟩ in float64: both are exact up to a sum's
rounding, about :math:`c \\cdot 2^{-52}`."""

FINITE_DIFFERENCE_RTOL = 1e-6
"""How far (relative) a central difference may be from ⟨jax.grad, v⟩ in float64: its truncation
and cancellation errors are about 1e-9 here, a wrong autograd rule is off by O(1)."""

FINITE_DIFFERENCE_STEP = 1e-4


def row_losses(z: ArrayLike, y: ArrayLike) -> jax.Array:
    """The loss of each row, ``[rows]``."""
    y = jnp.asarray(y)
    terms = y * jax.nn.log_softmax(z, axis=-1)
    return -jnp.sum(jnp.where(y == 0, 0, terms), axis=-1)


def loss(z: ArrayLike, y: ArrayLike) -> jax.Array:
    """:math:`C`, the loss summed over rows; ``z`` and ``y`` are ``[rows, classes]``."""
    return jnp.sum(row_losses(z, y))


def autograd(z: ArrayLike, y: ArrayLike) -> jax.Array:
    """``jax.grad`` of :func:`loss` with respect to the logits, in the inputs' dtype."""
    return jax.grad(loss)(z, y)


def softmax_minus_labels(z: ArrayLike, y: ArrayLike) -> jax.Array:
    """The closed form σ(z) − y, the softmax computed stably (shifted by its maximum)."""
    return jax.nn.softmax(z, axis=-1) - y


def autograd_check(
    z: jax.Array, y: jax.Array, gradient: jax.Array, direction: jax.Array, size: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""Checks a float64 gradient against forward mode and central differences, row by row.

    Along a unit direction :math:`v` per row (zero at masked classes) the directional
    derivative :math:`\langle \nabla C, v \rangle` is computed three ways: from ``gradient``, by
    ``jax.jvp`` and by :math:`(C(z + hv) - C(z - hv)) / 2h`.

    Args:
        z: float64 logits ``[rows, classes]``.
        y: float64 labels ``[rows, classes]``.
        gradient: ``jax.grad`` at ``(z, y)``, float64.
        direction: ``[rows, classes]``, any nonzero rows.
        size: the magnitude of the gradient's terms, ``[rows, classes]``; the discrepancies are
            relative to :math:`\sum_k \mathrm{size}_k |v_k|`.

    Returns:
        The relative discrepancies of forward mode and of finite differences, each ``[rows]``.
    """
    v = jnp.where(jnp.isfinite(z), direction.astype(z.dtype), 0.0)
    v = v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-300)
    along = jnp.sum(gradient * v, axis=-1)
    _, forward = jax.jvp(lambda x: row_losses(x, y), (z,), (v,))
    h = FINITE_DIFFERENCE_STEP
    central = (row_losses(z + h * v, y) - row_losses(z - h * v, y)) / (2 * h)
    scale = jnp.sum(size * jnp.abs(v), axis=-1) + 1e-12
    return jnp.abs(forward - along) / scale, jnp.abs(central - along) / scale
