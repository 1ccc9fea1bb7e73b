r"""The reference loss in JAX, for a :class:`derivation.Loss`: what ``jax.grad`` differentiates.

Arrays: logits ``z`` ``[rows, classes]``; targets ``[rows]`` of class indices (``targets=
"indices"``, entries equal to ``ignore_index`` allowed) or ``[rows, classes]`` of probabilities;
``grad_output`` a scalar for ``mean``/``sum``, ``[rows]`` for ``none``. The composition is the
one :mod:`derivation._loss` documents, with PyTorch's weighted mean; where every row is ignored
the ``mean`` is NaN and its gradient zero, as in PyTorch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from derivation import Loss


def mask(loss: Loss, targets: ArrayLike, dtype: jnp.dtype) -> jax.Array:
    """m_r: 0 where an index target equals ``ignore_index``, else 1 (``[rows]``)."""
    targets = jnp.asarray(targets)
    if loss.targets == "indices" and loss.ignore_index is not None:
        return (targets != loss.ignore_index).astype(dtype)
    return jnp.ones((targets.shape[0],), dtype)


def target_distribution(loss: Loss, targets: ArrayLike, classes: int,
                        dtype: jnp.dtype) -> jax.Array:
    """t: the one-hot of an index target (all zero for an index outside 0..c−1, e.g. an ignored
    one) or the probability target itself, ``[rows, classes]``."""
    targets = jnp.asarray(targets)
    if loss.targets == "indices":
        return jax.nn.one_hot(targets, classes, dtype=dtype)
    return targets.astype(dtype)


def weights(loss: Loss, classes: int, dtype: jnp.dtype) -> jax.Array:
    """w: the class weights, ``[classes]``; without ``weight``, ones made as an array, not read
    from a tuple of c ones, which JAX converts element by element (each trace, at an LLM's
    vocabulary a large part of a streamed check's time)."""
    if loss.weight is None:
        return jnp.ones((classes,), dtype)
    return jnp.asarray(loss.weight_for(classes), dtype)


def transformed_logits(loss: Loss, z: jax.Array) -> jax.Array:
    """u = z / T, then cap·tanh(u / cap) when ``softcap`` is set. A class masked out with a
    logit of −∞ (a padded lane) stays at −∞: capped, it would be −cap and take probability.
    Its gradient there is the capped map's limit, 1 − tanh²(−∞) = 0."""
    u = z / jnp.asarray(loss.temperature, z.dtype) if loss.temperature != 1.0 else z
    if loss.softcap is not None:
        cap = jnp.asarray(loss.softcap, z.dtype)
        u = jnp.where(jnp.isneginf(z), jnp.full_like(z, -jnp.inf), cap * jnp.tanh(u / cap))
    return u


def row_losses(loss: Loss, z: ArrayLike, targets: ArrayLike) -> jax.Array:
    r""":math:`\ell_r = -\sum_k w_k q_k (u_k - \mathrm{lse}) + \lambda\,\mathrm{lse}^2`, one per
    row (``[rows]``), before the mask."""
    z = jnp.asarray(z)
    classes = z.shape[-1]
    u = transformed_logits(loss, z)
    lse = jax.nn.logsumexp(u, axis=-1, keepdims=True)
    t = target_distribution(loss, targets, classes, z.dtype)
    eps = loss.label_smoothing
    q = (1 - eps) * t + eps / classes if eps else t
    weighted = q if loss.weight is None else q * weights(loss, classes, z.dtype)
    out = -jnp.sum(jnp.where(weighted == 0, 0, weighted * (u - lse)), axis=-1)  # 0·log 0 = 0
    if loss.z_loss:
        out = out + loss.z_loss * lse[..., 0] ** 2
    return out


def denominator(loss: Loss, targets: ArrayLike, classes: int, dtype: jnp.dtype) -> jax.Array:
    """What ``mean`` divides by: Σ_r m_r w_{t_r} for index targets, the number of rows for
    probability targets (1 for ``sum`` and ``none``). It does not depend on the logits."""
    targets = jnp.asarray(targets)
    if loss.reduction != "mean":
        return jnp.asarray(1, dtype)
    if loss.targets == "probabilities":
        return jnp.asarray(targets.shape[0], dtype)
    m = mask(loss, targets, dtype)
    if loss.weight is None:
        return jnp.sum(m)
    picked = weights(loss, classes, dtype)[jnp.clip(targets, 0, classes - 1)]
    return jnp.sum(m * picked)


def reduced(loss: Loss, z: ArrayLike, targets: ArrayLike) -> jax.Array:
    """The loss as PyTorch returns it: a scalar for ``mean``/``sum``, ``[rows]`` for ``none``.

    ``mean`` over no rows at all (every row ignored) is NaN, with a zero gradient.
    """
    z = jnp.asarray(z)
    m = mask(loss, targets, z.dtype)
    masked = m * row_losses(loss, z, targets)
    if loss.reduction == "none":
        return masked
    total = jnp.sum(masked)
    if loss.reduction == "sum":
        return total
    d = denominator(loss, targets, z.shape[-1], z.dtype)
    safe = jnp.where(d > 0, d, jnp.ones_like(d))
    return jnp.where(d > 0, total / safe, jnp.asarray(jnp.nan, z.dtype))


def objective(loss: Loss, z: ArrayLike, targets: ArrayLike, grad_output: ArrayLike) -> jax.Array:
    """⟨grad_output, reduced⟩: the scalar whose ``jax.grad`` by ``z`` is the gradient a backward
    pass computes with that upstream gradient (a vector-Jacobian product). Where ``mean`` is NaN
    (no rows counted) so is the objective, and its gradient is zero, as PyTorch's."""
    return jnp.sum(jnp.asarray(grad_output, jnp.asarray(z).dtype) * reduced(loss, z, targets))


def gradient(loss: Loss, z: ArrayLike, targets: ArrayLike, grad_output: ArrayLike) -> jax.Array:
    """``jax.grad`` of :func:`objective` by the logits, ``[rows, classes]``."""
    return jax.grad(objective, argnums=1)(loss, jnp.asarray(z), targets, grad_output)




@dataclass(frozen=True, slots=True)
class Prediction:
    """What the derivation predicts at some inputs, each ``[rows, classes]``.

    Attributes:
        gradient: the gradient for any targets (the reference's, from the theory).
        closed_form: the derivation's closed form (targets that sum to one).
        residual: ``gradient − closed_form``.
        size: the sum of the magnitudes of the gradient's terms (the scale of its rounding).
    """

    gradient: jax.Array
    closed_form: jax.Array
    residual: jax.Array
    size: jax.Array


def _lambdified(loss: Loss) -> tuple[Callable[..., jax.Array], ...]:
    from derivation._loss_theory import structure

    return _lambdified_structure(structure(loss))


@functools.cache
def _lambdified_structure(loss: Loss) -> tuple[Callable[..., jax.Array], ...]:
    """One set of functions per loss structure: the options' values are their arguments."""
    import sympy  # here, not above: the plain loss's runs never import SymPy

    from derivation._loss_theory import ARGUMENTS

    return tuple(sympy.lambdify(ARGUMENTS, expr, modules="jax") for expr in _theory(loss))


def _theory(loss: Loss) -> tuple[object, ...]:
    """The theory of a loss structure: its gradient, closed form, residual and size (SymPy),
    derived, or kept from a run before where the CLI keeps its cache (``_cache``: keyed by this
    package's and ``derivation``'s sources and SymPy's version)."""
    from derivation._loss_theory import loss_theory

    from . import _cache

    key = (repr(loss),)
    kept = _cache.load_expressions("loss theory", key)
    if kept is not None and len(kept) == 4:
        return kept
    theory = loss_theory(loss)
    expressions = (theory.gradient, theory.closed_form, theory.residual, theory.size)
    _cache.store_expressions("loss theory", key, expressions)
    return expressions


def predict(loss: Loss, z: ArrayLike, targets: ArrayLike, grad_output: ArrayLike,
            batch_denominator: float | None = None) -> Prediction:
    """The derivation's gradient, closed form and residual at these inputs, lambdified from
    ``derivation``'s checked route for this loss (never retyped).

    ``batch_denominator`` is the mean's, when these rows are part of a larger batch (default:
    theirs).
    """
    z = jnp.asarray(z)
    rows, classes = z.shape
    u = transformed_logits(loss, z)
    lse = jax.nn.logsumexp(u, axis=-1, keepdims=True)
    s = jax.nn.softmax(u, axis=-1)  # exp(u − max)/Σ: exp(u − lse) loses bits where |u| is large
    t = target_distribution(loss, targets, classes, z.dtype)
    w = weights(loss, classes, z.dtype)
    g = jnp.asarray(grad_output, z.dtype)
    g = g[:, None] if g.ndim == 1 else g
    m = mask(loss, targets, z.dtype)[:, None]
    d = (denominator(loss, targets, classes, z.dtype) if batch_denominator is None
         else jnp.asarray(batch_denominator, z.dtype))
    d = jnp.where(d > 0, d, jnp.ones_like(d))  # every row ignored: m = 0 makes the gradient 0
    args = (s, lse, z, t, w, jnp.sum(w * t, axis=-1, keepdims=True), jnp.sum(w),
            jnp.sum(t, axis=-1, keepdims=True), g, m, d, loss.label_smoothing, loss.z_loss,
            loss.softcap or 1.0, loss.temperature, classes)
    return Prediction(*(jnp.broadcast_to(f(*args), (rows, classes)).astype(z.dtype)
                        for f in _lambdified(loss)))


__all__ = ["mask", "weights", "target_distribution", "transformed_logits", "row_losses",
           "denominator", "reduced", "objective", "gradient", "Prediction", "predict"]
