"""What the agreement rule cannot see, pinned so that the README's word on it stays true.

Liger-Kernel #1329: a bfloat16 kernel rounded σ/N to bfloat16 before subtracting (1 − ε)/N at
the target, so where σ_t ≈ 1 − ε the small difference keeps only the bits the rounding left.
bfloat16 ``jax.grad`` rounds σ before the subtraction too, so by the rule "within tolerance of
jax.grad, or no farther from the exact gradient than jax.grad" the kernel agrees. Its errors are
still visible in the report's ULPs: larger than those of the same gradient rounded once.
"""

import jax
import jax.numpy as jnp

import verify
from derivation import Loss

SMOOTHING = 0.1
LOSS = Loss(label_smoothing=SMOOTHING, reduction="mean", targets="indices")
GRID = {"classes": (10,), "dtypes": ("bfloat16",), "scales": (1.0,), "samples": 64}


def _smoothed(targets, c, dtype):
    return (1 - SMOOTHING) * jax.nn.one_hot(targets, c, dtype=dtype) + SMOOTHING / c


def liger_1329_rounded_before_subtracting(z, targets, grad_output):
    """σ/N rounded to the logits' dtype, then the smoothed target over N subtracted."""
    n, c = z.shape
    sigma = jax.nn.softmax(z.astype(jnp.float32), axis=-1)
    rounded = (sigma / n).astype(z.dtype)
    target = (_smoothed(targets, c, jnp.float32) / n).astype(z.dtype)
    return (grad_output * (rounded - target)).astype(z.dtype)


def rounded_once(z, targets, grad_output):
    """The same gradient in float32, rounded once to the logits' dtype."""
    n, c = z.shape
    sigma = jax.nn.softmax(z.astype(jnp.float32), axis=-1)
    exact = grad_output * (sigma - _smoothed(targets, c, jnp.float32)) / n
    return exact.astype(z.dtype)


def test_liger_1329_agrees_under_the_rule_but_shows_larger_ulps():
    bug = verify.check(liger_1329_rounded_before_subtracting, loss=LOSS, **GRID)
    once = verify.check(rounded_once, loss=LOSS, **GRID)
    assert bug.ok and {cell.verdict for cell in bug.cells} == {"agree"}
    assert once.ok and {cell.verdict for cell in once.cells} == {"agree"}
    for wrong, right in zip(bug.cells, once.cells, strict=True):
        assert right.max_ulp <= 0.5 + 1e-6  # rounded once: within half a ULP of the terms
        assert wrong.max_ulp > 1.5 * right.max_ulp
