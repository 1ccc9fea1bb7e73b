r"""A loss variant in the verify pipeline: its targets, its upstream gradient and its reference.

The pipeline passes logits ``z`` and labels ``y``, both ``[rows, classes]``. For a variant:

* **index targets** travel as the one-hot of the index; an ignored row (target =
  ``ignore_index``) as a zero row, or as the one-hot of ``ignore_index`` when that is a class.
  :func:`decode` reads the indices back. Their kinds: ``indices`` (no row ignored), ``ignored``
  (a quarter of the rows ignored) and ``all-ignored`` (every row: PyTorch's ``mean`` is NaN and
  its gradient zero);
* **probability targets** are the labels themselves, of every kind the plain check draws;
* the **upstream gradient** ``grad_output`` is ``1`` or, in the cells that sweep it, 0.75 (a
  scalar, for ``mean`` and ``sum``) or 0.5 + k/8, k drawn per row from 0 … 12 (``none``);
* the **reference** (:class:`VariantReference`) is the reference loss of :mod:`._loss` times
  the upstream gradient, the mean's denominator taken over the whole batch (a cell, or one call
  of a streamed cell: :mod:`._variant_stream`); its theory inputs
  are what the derivation predicts there (:func:`._loss.predict`, lambdified from the checked
  route): the residual of a closed form that assumes Σt = 1, and the size of the gradient's
  terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from derivation import Loss

from . import _inputs, _loss

INDEX_KINDS = ("indices", "ignored", "all-ignored")
"""Cells of index targets: none ignored, a quarter ignored, all ignored."""
IGNORED_FRACTION = 0.25
GRAD_OUTPUTS = ("1", "swept")
"""Upstream gradients: 1, or :data:`SCALAR_GRAD_OUTPUT` (mean, sum) / :func:`row_pattern`."""
SCALAR_GRAD_OUTPUT = 0.75
IGNORED = 9
"""The generator purpose of the choice of ignored rows (after ``_inputs``' own purposes)."""
ROW_GRAD_OUTPUT = 10
"""The generator purpose of the per-row upstream gradient (:func:`row_pattern`)."""
ROW_GRAD_OUTPUT_STEPS = 13
"""The per-row upstream gradient takes the values ±(0.5 + k/8), k = 0 … 12 (0.5 to 2, each
sign)."""
ROW_GRAD_OUTPUT_WORDS = "±(0.5 to 2) in steps of 1/8, drawn by row"


def kinds(loss: Loss, labels: tuple[str, ...]) -> tuple[str, ...]:
    """The target kinds of a variant check: index kinds for index targets (the ignored ones only
    with ``ignore_index``), the label kinds asked for otherwise."""
    if loss.targets == "indices":
        return INDEX_KINDS if loss.ignore_index is not None else INDEX_KINDS[:1]
    return labels


def row_pattern(rows: int) -> np.ndarray:
    """A per-row upstream gradient, ±(0.5 + k/8) with k and the sign drawn per row (a fixed
    seed): exact in every dtype, and with no period, so that a kernel reading ``grad_output``
    shifted or reversed along the rows does not match it; and of both signs, as per-token
    weights are (a negative advantage), so that a kernel that loses the sign does not either."""
    rng = _inputs.generator(0, 0, ROW_GRAD_OUTPUT)
    size = 0.5 + rng.integers(0, ROW_GRAD_OUTPUT_STEPS, rows) / 8
    return np.where(rng.integers(0, 2, rows) == 1, -size, size)


def grad_output(loss: Loss, mode: str, rows: int, dtype: Any) -> jax.Array:
    """The upstream gradient of a cell: a scalar for ``mean``/``sum``, ``[rows]`` for ``none``."""
    if loss.reduction == "none":
        values = np.ones(rows) if mode == "1" else row_pattern(rows)
        return jnp.asarray(values, dtype)
    return jnp.asarray(1.0 if mode == "1" else SCALAR_GRAD_OUTPUT, dtype)


def describe_grad_output(loss: Loss, mode: str) -> str:
    """``"1"``, ``"0.75"`` or :data:`ROW_GRAD_OUTPUT_WORDS`: the cell's JSON value."""
    if mode == "1":
        return "1"
    return ROW_GRAD_OUTPUT_WORDS if loss.reduction == "none" else repr(SCALAR_GRAD_OUTPUT)


def ignored_rows(kind: str, seed: int, rows: int, classes: int) -> np.ndarray:
    """``[rows]``, the rows of a cell whose index target is ``ignore_index``: none, all, or a
    quarter chosen from the seed over all the cell's rows — so a streamed cell (:mod:`._stream`)
    ignores the same rows whatever its chunks."""
    ignored = np.zeros(rows, bool)
    if kind == "all-ignored":
        ignored[:] = True
    elif kind == "ignored":
        rng = _inputs.generator(seed, classes, IGNORED)
        count = max(1, min(rows - 1, round(IGNORED_FRACTION * rows)))
        ignored[rng.choice(rows, count, replace=False)] = True
    return ignored


def encode(loss: Loss, labels: np.ndarray, kind: str, seed: int,
           ignored: np.ndarray | None = None) -> np.ndarray:
    """The labels a variant cell passes down the pipeline (see the module docstring).

    Args:
        loss: the variant.
        labels: ``[rows, classes]``, the drawn labels (one-hot for index targets).
        kind: the cell's target kind.
        seed: the check's seed.
        ignored: ``[rows]``, which rows are ignored, for a chunk of a streamed cell (its slice
            of :func:`ignored_rows`); None: chosen over these rows.
    """
    if loss.targets == "probabilities":
        return labels
    rows, classes = labels.shape
    index = _inputs.first_largest(labels)
    if ignored is None:
        ignored = ignored_rows(kind, seed, rows, classes)
    y = np.zeros((rows, classes))
    y[np.arange(rows), index] = 1.0
    if ignored.any():
        ignore = loss.ignore_index
        y[ignored] = np.eye(classes)[ignore] if 0 <= ignore < classes else 0.0
    return y


def decode(loss: Loss, y: jax.Array, xp: Any = jnp) -> jax.Array:
    """The targets a closed form is given: ``[rows]`` indices (``ignore_index`` for a zero row)
    or the probabilities ``y`` themselves; ``xp`` is ``jax.numpy`` or ``numpy``."""
    if loss.targets == "probabilities":
        return y
    index = xp.argmax(y, axis=-1)
    if loss.ignore_index is None:
        return index
    return xp.where(xp.sum(y, axis=-1) > 0, index, loss.ignore_index)


def decoded(loss: Loss, y: np.ndarray) -> np.ndarray:
    """:func:`decode` in NumPy, for the driver (no JAX dispatch)."""
    return decode(loss, y, np)


def denominator(loss: Loss, y: np.ndarray) -> float:
    """The mean's denominator over a whole batch (1 for ``sum`` and ``none``), in NumPy: the
    same sum as :func:`._loss.denominator` (a test holds them equal)."""
    rows, classes = y.shape
    if loss.reduction != "mean":
        return 1.0
    if loss.targets == "probabilities":
        return float(rows)
    targets = decoded(loss, y)
    kept = targets != loss.ignore_index if loss.ignore_index is not None else np.ones(rows, bool)
    if loss.weight is None:
        return float(np.sum(kept))
    weights = np.asarray(loss.weight_for(classes))
    return float(np.sum(weights[np.clip(targets, 0, classes - 1)], where=kept))


@dataclass(frozen=True, eq=False)
class VariantReference:
    """The reference of one variant batch (the pipeline's ``Reference``, for a loss variant).

    Attributes:
        spec: the variant.
        grad_output: the upstream gradient, a scalar or ``[rows]`` (:func:`grad_output`).
        denominator: the mean's denominator over the whole batch — a cell, or a streamed
            cell's call (0 where every row is ignored: the loss is then NaN in PyTorch and its
            gradient zero). Arrays may be traced.
    """

    spec: Loss
    grad_output: Any
    denominator: Any

    @property
    def name(self) -> str:
        return f"softmax cross-entropy ({self.spec.describe()})"

    @property
    def finite_difference_step(self) -> float:
        """The autograd check's step in z: the plain one in the units of z/T."""
        from ._opinions import FINITE_DIFFERENCE_STEP

        return FINITE_DIFFERENCE_STEP * self.spec.temperature

    def _scale(self, y: jax.Array) -> jax.Array:
        """g_r·m_r/D per row: the upstream gradient, the mask and the mean's denominator."""
        rows = y.shape[0]
        m = _loss.mask(self.spec, decode(self.spec, y), y.dtype)
        g = jnp.asarray(self.grad_output, y.dtype)
        g = jnp.broadcast_to(g[:rows] if g.ndim else g, (rows,))  # the first rows: checked ones
        d = jnp.asarray(self.denominator, y.dtype)
        live = d > 0  # every row ignored: a zero gradient
        return jnp.where(live, g * m / jnp.where(live, d, 1), 0)

    def row_losses(self, z: jax.Array, y: jax.Array) -> jax.Array:
        """g_r·m_r·ℓ_r/D, ``[rows]``: its sum's gradient is the backward pass's."""
        return self._scale(y) * _loss.row_losses(self.spec, z, decode(self.spec, y))

    def loss(self, z: jax.Array, y: jax.Array) -> jax.Array:
        """The loss whose ``jax.grad`` is autograd: :meth:`row_losses` summed."""
        return jnp.sum(self.row_losses(z, y))

    def theory_inputs(self, z: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(predicted residual, gradient size, target sums)``: the pipeline's three theory
        inputs, each already the prediction at these inputs (an ignored row's sum counts as
        one: nothing is predicted there)."""
        targets = decode(self.spec, y)
        g = jnp.asarray(self.grad_output, y.dtype)
        d = jnp.asarray(self.denominator, y.dtype)
        predicted = _loss.predict(self.spec, z, targets, g, batch_denominator=d)
        t = _loss.target_distribution(self.spec, targets, y.shape[-1], y.dtype)
        kept = _loss.mask(self.spec, targets, y.dtype)[:, None] > 0
        sums = jnp.where(kept, jnp.sum(t, axis=-1, keepdims=True), 1.0)
        live = d > 0
        return (jnp.where(live, predicted.residual, 0), jnp.where(live, predicted.size, 0), sums)

    @staticmethod
    def residual(residual: np.ndarray, size: np.ndarray, sums: np.ndarray) -> np.ndarray:
        return residual

    @staticmethod
    def gradient_size(residual: np.ndarray, size: np.ndarray, sums: np.ndarray) -> np.ndarray:
        return size

    @staticmethod
    def closed_form_size(residual: np.ndarray, size: np.ndarray, sums: np.ndarray) -> np.ndarray:
        """The closed form is the gradient less the residual: its terms are at most these."""
        return size + np.abs(residual)


def bind(fn: Callable[..., Any], loss: Loss, z: jax.Array, y: jax.Array,
         g: jax.Array) -> jax.Array:
    """A variant kernel ``fn(z, targets, grad_output)`` called on the pipeline's ``(z, y)``."""
    return fn(z, decode(loss, y), g)


@dataclass(frozen=True)
class DerivedClosedForm:
    """The derivation's closed form for a variant, lambdified from its checked route."""

    loss: Loss

    def cache_name(self) -> str:
        """Its name in the on-disk program cache: its fields (the loss) identify it."""
        return repr(self)

    @property
    def __name__(self) -> str:  # noqa: PLW3201 - the report's claim names it
        return f"derived closed form ({self.loss.describe()})"

    def __call__(self, z: jax.Array, targets: jax.Array, grad_output: jax.Array) -> jax.Array:
        """Evaluated in float32 at least, as a kernel would, and rounded once to z's dtype."""
        wide = jnp.promote_types(z.dtype, jnp.float32)
        targets = targets if self.loss.targets == "indices" else targets.astype(wide)
        out = _loss.predict(self.loss, z.astype(wide), targets, grad_output.astype(wide))
        return out.closed_form.astype(z.dtype)


__all__ = ["INDEX_KINDS", "GRAD_OUTPUTS", "kinds", "ignored_rows", "encode", "decode", "decoded", "denominator",
           "grad_output", "describe_grad_output", "row_pattern", "VariantReference", "bind",
           "DerivedClosedForm"]
