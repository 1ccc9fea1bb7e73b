r"""The inputs of a cell: logits :math:`\text{scale}\cdot N(0, 1)`, adversarial rows, labels.

Every draw comes from ``jax.random.key(seed)``, folded with the class count and the label kind
only. So a cell's draws do not depend on which other cells are in the grid, and the cells of one
class count and label kind share their draws across dtypes and scales: the map compares the same
inputs, scaled and then rounded to each dtype.

Rows ``0 .. 3`` of every cell are adversarial, the ``samples`` random rows follow:

* ``far-above``: one logit (the label's largest class) :math:`\log c + 1.5 \log(1/\mathrm{eps})`
  above the rest, so the softmax saturates in the cell's dtype;
* ``ties``: that class and the row's largest logit (another class) share its value exactly;
* ``all-equal``: every logit equal;
* ``masked``: about half the classes masked with :math:`-\infty`, their labels set to zero (and
  the labels renormalised unless the kind is ``unnormalized``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._options import LABEL_KINDS, SMOOTHING

ROW_KINDS: tuple[str, ...] = ("far-above", "ties", "all-equal", "masked", "random")
"""What each row is; rows ``0 .. 3`` are the adversarial ones, in this order."""

ADVERSARIAL_ROWS = 4
FAR_ABOVE, TIES, ALL_EQUAL, MASKED, RANDOM = range(5)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Draws:
    """The random part of every cell with one class count and label kind.

    Attributes:
        noise: standard normal draws (float32), ``[rows, classes]``; logits are
            ``scale * noise`` in float64.
        noise_max: ``[rows]``, the largest ``|noise|`` of each row.
        labels: ``[rows, classes]``, already zero (and renormalised) where the masked row masks.
        mask: ``[classes]``, the classes the masked row sets to :math:`-\\infty`.
        top: ``[rows]``, the label's largest class: the one the ``far-above`` row lifts.
        partner: ``[rows]``, a class other than the top one: it ties with the top class in the
            ``ties`` row when the top class already holds the row's largest logit.
        row_kind: ``[rows]``, an index into :data:`ROW_KINDS`.
    """

    noise: jax.Array
    noise_max: jax.Array
    labels: jax.Array
    mask: jax.Array
    top: jax.Array
    partner: jax.Array
    row_kind: jax.Array

    @property
    def rows(self) -> int:
        return self.noise.shape[0]

    def take(self, rows: ArrayLike) -> Draws:
        """The draws of some rows (the mask is per cell and kept whole)."""
        return Draws(
            noise=self.noise[rows],
            noise_max=self.noise_max[rows],
            labels=self.labels[rows],
            mask=self.mask,
            top=self.top[rows],
            partner=self.partner[rows],
            row_kind=self.row_kind[rows],
        )


def first_largest(values: jax.Array) -> jax.Array:
    """The index of the first largest value of each row, like ``argmax`` but by a max and a min
    reduction: argmax is a variadic reduction, an unvectorised loop on CPU."""
    index = jnp.arange(values.shape[-1], dtype=jnp.float32)
    hits = values == jnp.max(values, axis=-1, keepdims=True)
    return jnp.min(jnp.where(hits, index, values.shape[-1]), axis=-1).astype(jnp.int32)


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
        weights = jax.random.exponential(k_values, (rows, classes), jnp.float32)
        weights = weights.astype(jnp.float64)
        return weights / jnp.sum(weights, axis=-1, keepdims=True)

    def unnormalized() -> jax.Array:
        # Non-negative, summing to t with |log t| in [0.5, 2]: t in [0.14, 0.61] or [1.6, 7.4].
        weights = jax.random.uniform(k_values, (rows, classes), jnp.float32).astype(jnp.float64)
        log_total = jax.random.uniform(k_total, (rows, 1), jnp.float64, 0.5, 2.0)
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (rows, 1)), 1.0, -1.0)
        return weights / jnp.sum(weights, axis=-1, keepdims=True) * jnp.exp(sign * log_total)

    branches = {"onehot": lambda: onehot, "smoothed": smoothed, "soft": soft}
    branches["unnormalized"] = unnormalized
    return jax.lax.switch(kind, [branches[name] for name in LABEL_KINDS])


@partial(jax.jit, static_argnames=("rows", "classes"))
def _draw_noise(seed: jax.Array, *, rows: int, classes: int) -> tuple[jax.Array, jax.Array]:
    # float32 draws: they only need to be numbers; the cell's inputs are float64 from here on.
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), classes), 0)
    noise = jax.random.normal(key, (rows, classes), jnp.float32)
    return noise, jnp.max(jnp.abs(noise), axis=-1)


@partial(jax.jit, static_argnames=("rows", "classes"))
def _draw_labels(
    seed: jax.Array, kind: jax.Array, *, rows: int, classes: int
) -> tuple[jax.Array, ...]:
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), classes), 1)
    k_labels, k_mask, k_partner = jax.random.split(jax.random.fold_in(key, kind), 3)
    labels = _labels(kind, k_labels, rows, classes)

    top = first_largest(labels)
    # A partner different from the top class (the top class itself when c = 1).
    offset = jax.random.randint(k_partner, (rows,), 1, max(classes, 2))
    partner = jnp.where(classes > 1, (top + offset) % classes, top)

    mask = jax.random.bernoulli(k_mask, 0.5, (classes,)) & (jnp.arange(classes) != top[MASKED])
    masked = jnp.where(mask, 0.0, labels[MASKED])
    if_normalised = masked / jnp.sum(masked)
    masked = jnp.where(kind == LABEL_KINDS.index("unnormalized"), masked, if_normalised)
    labels = labels.at[MASKED].set(masked)
    return labels, mask, top, partner


def draw_noise(seed: int, classes: int, samples: int) -> tuple[jax.Array, jax.Array]:
    """The logit noise of every cell with c classes: standard normal, ``[samples + 4, classes]``
    float32, and the largest magnitude of each row."""
    rows = samples + ADVERSARIAL_ROWS
    return _draw_noise(np.uint32(seed), rows=rows, classes=classes)


def draw(
    seed: int, classes: int, labels: str, samples: int, noise: tuple[jax.Array, jax.Array]
) -> Draws:
    """The draws of every cell with this class count and label kind; needs 64-bit JAX.

    Args:
        seed: the seed of ``jax.random.key``.
        classes: c, the number of classes.
        labels: a label kind from :data:`verify.LABEL_KINDS`.
        samples: the number of random rows; the adversarial rows come on top.
        noise: :func:`draw_noise` of the same seed, classes and samples.

    Returns:
        :class:`Draws` with ``samples + 4`` rows.
    """
    rows = samples + ADVERSARIAL_ROWS
    values, mask, top, partner = _draw_labels(
        np.uint32(seed), np.int32(LABEL_KINDS.index(labels)), rows=rows, classes=classes
    )
    row_kind = np.minimum(np.arange(rows), RANDOM).astype(np.int32)
    return Draws(noise[0], noise[1], values, mask, top, partner, row_kind)


def logits(draws: Draws, scale: ArrayLike, far_gap: ArrayLike) -> jax.Array:
    """The float64 logits of a cell (or of some of its rows), adversarial rows included.

    Args:
        draws: the cell's draws (or :meth:`Draws.take` of them).
        scale: the cell's scale.
        far_gap: how far the ``far-above`` row's top logit stands above the rest (per dtype).

    Returns:
        ``[rows, classes]`` float64 logits; masked classes are :math:`-\\infty`.
    """
    z = scale * draws.noise.astype(jnp.float64)
    # Only the first rows can be adversarial: build those, leave the others alone.
    n = min(ADVERSARIAL_ROWS, z.shape[0])
    head, kind = z[:n], draws.row_kind[:n, None]
    classes = jnp.arange(z.shape[-1])[None, :]
    is_top = classes == draws.top[:n, None]
    rest_max = jnp.max(jnp.where(is_top, -jnp.inf, head), axis=-1, keepdims=True)
    rest_max = jnp.where(jnp.isfinite(rest_max), rest_max, 0.0)  # c = 1: no rest
    head = jnp.where((kind == FAR_ABOVE) & is_top, rest_max + far_gap, head)
    # The label's class ties with the row's largest logit (or, if it is that, with the partner).
    leader = first_largest(head)
    partner = jnp.where(leader == draws.top[:n], draws.partner[:n], leader)
    tied = is_top | (classes == partner[:, None])
    head = jnp.where((kind == TIES) & tied, jnp.max(head, axis=-1, keepdims=True), head)
    head = jnp.where(kind == ALL_EQUAL, head[:, :1], head)
    head = jnp.where((kind == MASKED) & draws.mask[None, :], -jnp.inf, head)
    return z.at[:n].set(head)
