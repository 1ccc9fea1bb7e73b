r"""Stage 3, judge (1 of 3): the elementwise rule — does a closed form agree with ``jax.grad`` at
one element?

Three opinions meet at every element: the closed form ``cf`` and ``jax.grad`` ``ag`` in the cell's
dtype, and the exact gradient ``ex`` (float64 ``jax.grad`` at the same, dtype-rounded inputs).
An element agrees when both ``cf`` and ``ag`` are finite and

.. math::
    |cf - ag| \le \mathrm{atol} + \mathrm{rtol}\,|ag|
    \quad\text{or}\quad
    |cf - ex| \le |ag - ex| + 4\,\mathrm{eps}\,\big(|\sigma \textstyle\sum_i y_i| + |y|\big)
    + \mathrm{tiny}:

within tolerance of ``jax.grad``, or no farther from the exact gradient than ``jax.grad`` is, up to
a rounding allowance. The allowance is what one honest evaluation of the gradient's terms (from
the derivation, :math:`\sigma_k \sum_i y_i - y_k`) may be off in the dtype: the shift, ``exp``, the
normalising sum and division, the product and the subtraction each round by up to eps/2 of what
they round. Without it, which of two honest evaluations lands nearer the exact value is a coin
toss: σ − y in bfloat16 is farther than ``jax.grad`` at about 6% of elements (soft labels,
c = 10, N(0, 1) logits; pinned by a test). With it, σ − y agrees over the whole default grid,
while a 1% error, 1.01·(σ − y), is caught wherever the dtype resolves 1% — float16, float32,
float64 — and not in bfloat16, whose eps is 0.8% (both pinned by tests). ``tiny``, the
dtype's smallest normal number, covers values flushed to zero.

The rule is elementwise, so the judge may apply it to any subset of elements (those not within
tolerance, say) and get the same answer there. NumPy, float64; the reference supplies the
predicted residual and the sizes of the terms.

*Corrected*: the same rule for ``cf + (Σy − 1)·σ``, the closed form with the derivation's
predicted residual added back, the allowance taken on the closed form's terms :math:`|\sigma| +
|y|`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._dtypes import DtypeFacts
from ._reference import Reference, plain

ROUNDING_ALLOWANCE = 4.0
"""The allowance beyond ``jax.grad``'s own error, in eps of the size of the terms rounded."""


@dataclass(frozen=True)
class Judged:
    """Elementwise results of the rule, all ``[rows, classes]``.

    Attributes:
        within: within tolerance of ``jax.grad``.
        agree: agrees (within tolerance, or no farther from the exact gradient).
        agree_corrected: agrees once the predicted residual is added back.
        predicted: the predicted residual :math:`(\\sum y - 1)\\sigma`, gradient minus σ − y.
        size: the size of the gradient's terms, :math:`|\\sigma \\sum y| + |y|`.
        allowance: the rounding allowance of the plain rule.
    """

    within: np.ndarray
    agree: np.ndarray
    agree_corrected: np.ndarray
    predicted: np.ndarray
    size: np.ndarray
    allowance: np.ndarray


def allowance(size: np.ndarray, facts: DtypeFacts) -> np.ndarray:
    """The rounding allowance at terms of this size: ``4 eps size + tiny``."""
    return ROUNDING_ALLOWANCE * facts.eps * size + facts.tiny


def band(ag: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """The tolerance band around ``jax.grad``: ``atol + rtol |ag|``."""
    width = np.abs(ag)
    width *= rtol
    width += atol
    return width


def within_band(cf: np.ndarray, ag: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``|cf - ag| <= width`` (false where either is NaN), for :func:`band`'s ``width``."""
    with np.errstate(invalid="ignore"):
        gap = np.subtract(cf, ag)
        np.abs(gap, out=gap)
        return gap <= width


def close(cf: np.ndarray, ag: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """``|cf - ag| <= atol + rtol |ag|`` (false where either is NaN)."""
    with np.errstate(invalid="ignore"):
        return within_band(cf, ag, band(ag, rtol, atol))


def within(cf: np.ndarray, ag: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Both finite, and ``|cf - ag| <= atol + rtol |ag|``."""
    return close(cf, ag, rtol, atol) & np.isfinite(cf) & np.isfinite(ag)


def no_farther(cf: np.ndarray, ag: np.ndarray, ex: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Both finite, and ``|cf - ex| <= |ag - ex| + allowed``."""
    with np.errstate(invalid="ignore"):
        near = np.abs(cf - ex) <= np.abs(ag - ex) + allowed
    return near & np.isfinite(cf) & np.isfinite(ag)


def elementwise(
    cf: ArrayLike,
    ag: ArrayLike,
    ex: ArrayLike,
    zr: ArrayLike,
    yr: ArrayLike,
    facts: DtypeFacts,
    rtol: float,
    atol: float,
    *,
    reference: Reference | None = None,
    theory_inputs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Judged:
    """Applies the rule to every element; every array float64 ``[rows, classes]``.

    Args:
        cf, ag, ex: the closed form, ``jax.grad`` in the dtype, the exact gradient.
        zr, yr: the dtype-rounded inputs.
        facts: the dtype's.
        rtol, atol: the tolerance.
        reference: the loss and its theory (default: the plain softmax cross-entropy).
        theory_inputs: ``(sigma, label, label_sum)`` when already computed; else from ``zr``,
            ``yr`` by the reference.
    """
    reference = reference or plain()
    cf, ag, ex = (np.asarray(a, np.float64) for a in (cf, ag, ex))
    if theory_inputs is None:
        import jax

        with jax.enable_x64(True):
            theory_inputs = tuple(np.asarray(a) for a in reference.theory_inputs(
                np.asarray(zr, np.float64), np.asarray(yr, np.float64)))
    sigma, label, label_sum = theory_inputs
    predicted = reference.residual(sigma, label, label_sum)
    size = reference.gradient_size(sigma, label, label_sum)
    allowed = allowance(size, facts)
    is_within = within(cf, ag, rtol, atol)
    agree = is_within | no_farther(cf, ag, ex, allowed)
    corrected = cf + predicted
    agree_corrected = within(corrected, ag, rtol, atol) | no_farther(
        corrected, ag, ex, allowance(reference.closed_form_size(sigma, label, label_sum), facts)
    )
    return Judged(is_within, agree, agree_corrected, predicted, size, allowed)
