r"""Where a loss variant is smallest for one row: the predicted distribution it trains toward.

With class weights and label smoothing, PyTorch's loss for an index target t is smallest not at
the smoothed target q but at :math:`\sigma^*_k = w_k q_k / \sum_j w_j q_j` (pytorch #104776):
the derivation's gradient :math:`\sigma_k \sum_i w_i q_i - w_k q_k` vanishes there. This module
finds the optimum numerically, by Newton's method on the reference loss, so that the shift is
measured and not only derived.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from derivation import Loss

from . import _loss


def optimum(loss: Loss, target: int, classes: int, steps: int = 60) -> np.ndarray:
    """The softmax at the minimum of the reference loss for one row with index target
    ``target``: Newton's method in float64 from z = 0 (the loss is convex in z; the minimum is
    unique up to adding a constant to every logit, fixed here by z_0 = 0).

    Returns:
        ``[classes]`` float64 probabilities.

    Raises:
        ValueError: the loss is not for index targets, or Newton's method did not converge.
    """
    if loss.targets != "indices":
        raise ValueError("loss: the optimum is computed for index targets (targets='indices')")
    row = Loss(loss.label_smoothing, loss.weight, None, "sum", loss.z_loss, loss.softcap,
               loss.temperature, "indices")
    t = np.array([target])
    with jax.enable_x64(True):
        def f(free: jax.Array) -> jax.Array:
            z = jnp.concatenate([jnp.zeros(1), free])[None, :]
            return _loss.reduced(row, z, t)

        grad, hess = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))
        free = jnp.zeros(classes - 1)
        for _ in range(steps):
            g = grad(free)
            if float(jnp.max(jnp.abs(g))) < 1e-14:
                break
            free = free - jnp.linalg.solve(hess(free), g)
        else:
            raise ValueError(f"Newton's method did not converge in {steps} steps")
        z = jnp.concatenate([jnp.zeros(1), free])
        return np.asarray(jax.nn.softmax(_loss.transformed_logits(row, z)))


__all__ = ["optimum"]
