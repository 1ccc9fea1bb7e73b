r"""Wrong gradients that shipped in loss-variant kernels, each as a small JAX closed form.

Every function here has the signature of a loss-variant kernel's backward pass,
``fn(z, targets, grad_output) -> grad_z``: logits ``[rows, classes]``; targets ``[rows]`` of class
indices (``-100`` ignored) or ``[rows, classes]`` of probabilities; ``grad_output`` a scalar
(``mean``, ``sum``) or ``[rows]`` (``none``). :data:`BUGS` names, for each, the loss it claims to
be the gradient of, and the inputs where it is wrong. ``softmax-ce verify --closed-form
examples.loss_bugs:liger_678_none_ignores_grad_output --reduction none --targets indices``
checks one.

The bugs (the projects' own trackers):

* Liger-Kernel #678: ``reduction="none"`` ignored the per-row upstream gradient.
* Liger-Kernel #243: fused linear CE never passed ``label_smoothing`` through.
* Liger-Kernel PR #420: with weights and smoothing, the ε/c term was weighted by the target's
  weight instead of each class's (PyTorch's ``LossNLL.cpp`` weights it by w_c).
* Unsloth PR #10616: padded lanes at −∞ became −cap after soft-capping and took probability.
* unsloth-zoo #593: z·tanh(z/cap) instead of cap·tanh(z/cap).
* ROCm TransformerEngine PR #336: ignored tokens counted in the mean.
* Megatron-LM #737: label smoothing with the tensor-parallel shard's vocabulary size.
* T5X: the z-loss backward (1 + 2λ·lse)·σ − t, right only when Σt = 1: a residual the theory
  predicts, not a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from derivation import Loss

IGNORE = -100
WEIGHT = (0.5, 2.0, 1.0, 3.0)
"""Non-uniform class weights for four classes."""
SMOOTHING = 0.1
CAP = 3.0
Z_LOSS = 1e-2


def _onehot(targets: jax.Array, z: jax.Array) -> jax.Array:
    return jax.nn.one_hot(targets, z.shape[-1], dtype=z.dtype)  # an ignored index: all zero


def _kept(targets: jax.Array, z: jax.Array) -> jax.Array:
    return (targets != IGNORE).astype(z.dtype)[:, None]


def liger_678_none_ignores_grad_output(z, targets, grad_output):
    """``reduction="none"``: σ − y, the per-row upstream gradient never applied."""
    return jax.nn.softmax(z, axis=-1) - _onehot(targets, z)


def liger_243_smoothing_dropped(z, targets, grad_output):
    """``label_smoothing`` not passed through: the mean of σ − y, as if ε were 0."""
    rows = z.shape[0]
    return grad_output * (jax.nn.softmax(z, axis=-1) - _onehot(targets, z)) / rows


def liger_420_smoothing_weighted_by_target(z, targets, grad_output, weight=WEIGHT):
    """Weights and smoothing: ℓ = w_t·(−Σ q log σ), so the gradient w_t·(σ − q) over Σ w_t,
    where PyTorch weights the ε/c term of class k by w_k."""
    c = z.shape[-1]
    w = jnp.asarray(weight[:c], z.dtype)
    q = (1 - SMOOTHING) * _onehot(targets, z) + SMOOTHING / c
    picked = w[targets][:, None]
    return grad_output * picked * (jax.nn.softmax(z, axis=-1) - q) / jnp.sum(picked)


def _capped_softmax(z, cap):
    return jax.nn.softmax(cap * jnp.tanh(z / cap), axis=-1)


def unsloth_10616_padded_lanes_capped(z, targets, grad_output):
    """Soft-capping applied to every lane: a padded lane at −∞ becomes −cap and takes
    probability e^{−cap}/Σ."""
    s = _capped_softmax(z, CAP)
    slope = 1 - jnp.tanh(z / CAP) ** 2
    return grad_output * slope * (s - _onehot(targets, z))


def unsloth_zoo_593_z_tanh(z, targets, grad_output):
    """z·tanh(z/cap) for cap·tanh(z/cap): its own gradient, of the wrong loss."""
    t = jnp.tanh(z / CAP)
    u = jnp.where(jnp.isneginf(z), z, z * t)
    slope = jnp.where(jnp.isneginf(z), 0, t + z / CAP * (1 - t**2))
    return grad_output * slope * (jax.nn.softmax(u, axis=-1) - _onehot(targets, z))


def rocm_te_336_ignored_counted(z, targets, grad_output):
    """``mean`` with ``ignore_index``: divided by every row, ignored ones included."""
    kept = _kept(targets, z)
    return grad_output * kept * (jax.nn.softmax(z, axis=-1) - _onehot(targets, z)) / z.shape[0]


def megatron_737_shard_vocabulary(z, targets, grad_output):
    """Label smoothing with ε/c_shard, the vocabulary of one of two tensor-parallel shards."""
    shard = max(z.shape[-1] // 2, 1)
    q = (1 - SMOOTHING) * _onehot(targets, z) + SMOOTHING / shard
    return grad_output * (jax.nn.softmax(z, axis=-1) - q)


def t5x_z_loss_backward(z, targets, grad_output):
    """T5X's hand-written z-loss backward, (1 + 2λ·lse)·σ − t: right when Σt = 1."""
    lse = jax.nn.logsumexp(z, axis=-1, keepdims=True)
    return grad_output * ((1 + 2 * Z_LOSS * lse) * jax.nn.softmax(z, axis=-1) - targets)


def mean_over_rows_with_weights(z, targets, grad_output, weight=WEIGHT):
    """Weighted ``mean`` divided by the number of rows instead of Σ_r w_{t_r}."""
    w = jnp.asarray(weight[: z.shape[-1]], z.dtype)
    onehot = _onehot(targets, z)
    grad = jax.nn.softmax(z, axis=-1) * jnp.sum(w * onehot, -1, keepdims=True) - w * onehot
    return grad_output * grad / z.shape[0]


def divided_by_rows_twice(z, targets, grad_output):
    """``mean`` over probability targets, divided by the rows twice (once in the loss, once in
    the backward)."""
    rows = z.shape[0]
    return grad_output * (jax.nn.softmax(z, axis=-1) - targets) / rows / rows


def batch_wide_label_sum(z, targets, grad_output):
    """σ·Σy − y with Σy taken over the whole batch instead of the row."""
    total = jnp.sum(targets) / z.shape[0]
    per_row = jnp.reshape(grad_output, (-1, 1))  # reduction none: one upstream value per row
    return per_row * (jax.nn.softmax(z, axis=-1) * total - targets)


@dataclass(frozen=True, slots=True)
class Bug:
    """A closed form, the loss it claims the gradient of, and where it is wrong.

    Attributes:
        closed_form: the function.
        loss: the loss it is meant to differentiate.
        right_with: a loss under which it is right (a kernel with a ``weight`` keyword is
            called with that loss's weights), or ``None`` where it is right only for some
            inputs (``wrong_where`` says which).
        wrong_where: where it is wrong, in words.
    """

    closed_form: object
    loss: Loss
    right_with: Loss | None
    wrong_where: str


_INDICES = {"targets": "indices"}
BUGS = {
    "liger_678_none_ignores_grad_output": Bug(
        liger_678_none_ignores_grad_output, Loss(reduction="none", **_INDICES), None,
        "grad_output ≠ 1"),
    "liger_243_smoothing_dropped": Bug(
        liger_243_smoothing_dropped, Loss(SMOOTHING, reduction="mean", **_INDICES),
        Loss(reduction="mean", **_INDICES), "label_smoothing > 0"),
    "liger_420_smoothing_weighted_by_target": Bug(
        liger_420_smoothing_weighted_by_target,
        Loss(SMOOTHING, WEIGHT, reduction="mean", **_INDICES),
        Loss(SMOOTHING, (2.0,) * 4, reduction="mean", **_INDICES),
        "non-uniform weights with label_smoothing > 0"),
    "unsloth_10616_padded_lanes_capped": Bug(
        unsloth_10616_padded_lanes_capped, Loss(softcap=CAP, **_INDICES), None,
        "rows with a lane at −∞"),
    "unsloth_zoo_593_z_tanh": Bug(
        unsloth_zoo_593_z_tanh, Loss(softcap=CAP, **_INDICES), None, "softcap set"),
    "rocm_te_336_ignored_counted": Bug(
        rocm_te_336_ignored_counted, Loss(ignore_index=IGNORE, reduction="mean", **_INDICES),
        None, "some rows ignored"),
    "megatron_737_shard_vocabulary": Bug(
        megatron_737_shard_vocabulary, Loss(SMOOTHING, **_INDICES), None,
        "more than one class (ε/c_shard ≠ ε/c)"),
    "t5x_z_loss_backward": Bug(
        t5x_z_loss_backward, Loss(z_loss=Z_LOSS), None,
        "targets that do not sum to one (expected: predicted by the theory)"),
    "mean_over_rows_with_weights": Bug(
        mean_over_rows_with_weights, Loss(weight=WEIGHT, reduction="mean", **_INDICES),
        Loss(weight=(1.0,) * 4, reduction="mean", **_INDICES),
        "non-uniform weights (the weights of the batch's targets do not average 1)"),
    "divided_by_rows_twice": Bug(
        divided_by_rows_twice, Loss(reduction="mean"), None, "more than one row"),
    "batch_wide_label_sum": Bug(
        batch_wide_label_sum, Loss(reduction="none"), None, "rows whose label sums differ"),
}
"""Each bug by name."""
