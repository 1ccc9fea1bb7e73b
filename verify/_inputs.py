r"""The inputs of a cell: logits :math:`\text{scale}\cdot N(0, 1)` with adversarial rows, and labels.

Every draw comes from ``jax.random.key(seed)``, folded with the class count and the label kind
only. So a cell's draws do not depend on which other cells are in the grid, and the cells of one
class count and label kind share their draws across dtypes and scales: the map compares the same
inputs, scaled and then rounded to each dtype.

Rows ``0 .. 3`` of every cell are adversarial, the ``samples`` random rows follow:

* ``far-above``: one logit (the label's largest class) :math:`\log c + 1.5 \log(1/\mathrm{eps})`
  above the rest, so the softmax saturates in the cell's dtype;
* ``ties``: that class and one other share the row's largest logit exactly;
* ``all-equal``: every logit equal;
* ``masked``: about half the classes masked with :math:`-\infty`, their labels set to zero (and
  the labels renormalised unless the kind is ``unnormalized``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._options import LABEL_KINDS, SMOOTHING

ROW_KINDS: tuple[str, ...] = ("far-above", "ties", "all-equal", "masked", "random")
"""What each row is; rows ``0 .. 3`` are the adversarial ones, in this order."""

ADVERSARIAL_ROWS = 4
FAR_ABOVE, TIES, ALL_EQUAL, MASKED, RANDOM = range(5)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Draws:
    """The random part of every cell with one class count and label kind (float64).

    Attributes:
        noise: standard normal draws, ``[rows, classes]``; logits are ``scale * noise``.
        labels: ``[rows, classes]``, already zero (and renormalised) where the masked row masks.
        mask: ``[classes]``, the classes the masked row sets to :math:`-\\infty`.
        partner: ``[rows]``, the class that ties with the top class in the ``ties`` row.
        direction: ``[rows, classes]``, random unit directions for the autograd check.
        row_kind: ``[rows]``, an index into :data:`ROW_KINDS`.
    """

    noise: jax.Array
    labels: jax.Array
    mask: jax.Array
    partner: jax.Array
    direction: jax.Array
    row_kind: jax.Array

    @property
    def rows(self) -> int:
        return self.noise.shape[0]

    def take(self, rows: ArrayLike) -> Draws:
        """The draws of some rows (the mask is per cell and kept whole)."""
        return Draws(
            noise=self.noise[rows],
            labels=self.labels[rows],
            mask=self.mask,
            partner=self.partner[rows],
            direction=self.direction[rows],
            row_kind=self.row_kind[rows],
        )


def _labels(kind: jax.Array, key: jax.Array, rows: int, classes: int) -> jax.Array:
    """Labels of one kind (an index into :data:`LABEL_KINDS`, traced), ``[rows, classes]``."""
    k_class, k_values, k_total, k_sign = jax.random.split(key, 4)
    onehot = jax.nn.one_hot(
        jax.random.randint(k_class, (rows,), 0, classes), classes, dtype=jnp.float64
    )

    def smoothed() -> jax.Array:
        return (1 - SMOOTHING) * onehot + SMOOTHING / classes

    def soft() -> jax.Array:
        # Dirichlet(1, ..., 1) is normalised standard exponentials.
        weights = jax.random.exponential(k_values, (rows, classes), jnp.float64)
        return weights / jnp.sum(weights, axis=-1, keepdims=True)

    def unnormalized() -> jax.Array:
        # Non-negative, summing to t with |log t| in [0.5, 2]: t in [0.14, 0.61] or [1.6, 7.4].
        weights = jax.random.uniform(k_values, (rows, classes), jnp.float64)
        log_total = jax.random.uniform(k_total, (rows, 1), jnp.float64, 0.5, 2.0)
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (rows, 1)), 1.0, -1.0)
        return weights / jnp.sum(weights, axis=-1, keepdims=True) * jnp.exp(sign * log_total)

    branches = {"onehot": lambda: onehot, "smoothed": smoothed, "soft": soft}
    branches["unnormalized"] = unnormalized
    return jax.lax.switch(kind, [branches[name] for name in LABEL_KINDS])


@partial(jax.jit, static_argnames=("rows", "classes"))
def _draw(seed: jax.Array, kind: jax.Array, *, rows: int, classes: int) -> Draws:
    per_classes = jax.random.fold_in(jax.random.key(seed), classes)
    k_noise, k_direction = jax.random.split(jax.random.fold_in(per_classes, 0))
    k_labels, k_mask, k_partner = jax.random.split(
        jax.random.fold_in(jax.random.fold_in(per_classes, 1), kind), 3
    )
    noise = jax.random.normal(k_noise, (rows, classes), jnp.float64)
    direction = jax.random.normal(k_direction, (rows, classes), jnp.float64)
    labels = _labels(kind, k_labels, rows, classes)

    top = jnp.argmax(labels, axis=-1)
    # A partner different from the top class (the top class itself when c = 1).
    offset = jax.random.randint(k_partner, (rows,), 1, max(classes, 2))
    partner = jnp.where(classes > 1, (top + offset) % classes, top)

    mask = jax.random.bernoulli(k_mask, 0.5, (classes,)) & (jnp.arange(classes) != top[MASKED])
    masked = jnp.where(mask, 0.0, labels[MASKED])
    if_normalised = masked / jnp.sum(masked)
    masked = jnp.where(kind == LABEL_KINDS.index("unnormalized"), masked, if_normalised)
    labels = labels.at[MASKED].set(masked)

    row_kind = jnp.minimum(jnp.arange(rows), RANDOM).astype(jnp.int32)
    return Draws(noise, labels, mask, partner, direction, row_kind)


def draw(seed: int, classes: int, labels: str, samples: int) -> Draws:
    """The draws of every cell with this class count and label kind; needs 64-bit JAX.

    Args:
        seed: the seed of ``jax.random.key``.
        classes: c, the number of classes.
        labels: a label kind from :data:`verify.LABEL_KINDS`.
        samples: the number of random rows; the adversarial rows come on top.

    Returns:
        :class:`Draws` with ``samples + 4`` rows.
    """
    return _draw(
        jnp.uint32(seed),
        jnp.int32(LABEL_KINDS.index(labels)),
        rows=samples + ADVERSARIAL_ROWS,
        classes=classes,
    )


def logits(draws: Draws, scale: ArrayLike, far_gap: ArrayLike) -> jax.Array:
    """The float64 logits of a cell (or of some of its rows), adversarial rows included.

    Args:
        draws: the cell's draws (or :meth:`Draws.take` of them).
        scale: the cell's scale.
        far_gap: how far the ``far-above`` row's top logit stands above the rest (per dtype).

    Returns:
        ``[rows, classes]`` float64 logits; masked classes are :math:`-\\infty`.
    """
    z = scale * draws.noise
    kind = draws.row_kind[:, None]
    top = jnp.argmax(draws.labels, axis=-1)[:, None]
    classes = jnp.arange(z.shape[-1])[None, :]
    is_top = classes == top
    rest_max = jnp.max(jnp.where(is_top, -jnp.inf, z), axis=-1, keepdims=True)
    rest_max = jnp.where(jnp.isfinite(rest_max), rest_max, 0.0)  # c = 1: no rest
    z = jnp.where((kind == FAR_ABOVE) & is_top, rest_max + far_gap, z)
    row_max = jnp.max(z, axis=-1, keepdims=True)
    tied = is_top | (classes == draws.partner[:, None])
    z = jnp.where((kind == TIES) & tied, row_max, z)
    z = jnp.where(kind == ALL_EQUAL, z[:, :1], z)
    return jnp.where((kind == MASKED) & draws.mask[None, :], -jnp.inf, z)
