r"""Stage 3, judge (3 of 3): a cell's verdict and the one-line reason for it, from its
:class:`~verify._measure.Measurement` (pure Python). This is the only ``judge``.

In this order:

1. ``undefined`` — some input overflows on the cast to the dtype; neither side is judged.
2. ``disagree`` — float64 autograd itself fails its forward-mode or finite-difference check, or
   the closed form or ``jax.grad`` is NaN or inf where the exact gradient is finite.
3. ``agree`` — every element is within tolerance of ``jax.grad`` (the explanation still says by
   how much the rounded labels miss :math:`\sum y = 1`, where they do).
4. ``expected`` — the rounded labels miss :math:`\sum y = 1` on some row, so the derivation
   predicts that σ − y misses the gradient by :math:`(\sum y - 1)\,\sigma`; the closed form shows
   that residual (the least-squares fraction of the predicted residual in the measured one is
   between 1/2 and 3/2: nearer the prediction than to none or to twice it), and with the
   predicted residual added back every element agrees.
5. ``agree`` — every element agrees (within tolerance, or no farther from the exact gradient than
   ``jax.grad`` is, up to the rounding allowance of ``_rule``).
6. ``disagree`` — anything else.

Step 3 comes before 4 so that a residual below the tolerance is not reported; step 4 before 5 so
that a residual the data resolve is reported even where it is smaller than a rounding unit.

An explanation states the measured/predicted ratio only where the data resolve the predicted
residual in the cell's dtype (:func:`resolved`): fitted against the rounding of one honest
evaluation in that dtype (``jax.grad``'s own error), the ratio has a standard error of at most
:data:`RESOLVED_SE`. Elsewhere — labels that sum to one up to a rounding the dtype cannot show —
it says so, with no ratio; and a disagreement many times the predicted residual is said to be
more than the labels explain, not given as a ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._measure import Measurement
from ._opinions import FINITE_DIFFERENCE_RTOL, FORWARD_MODE_RTOL
from ._options import Tolerance

VERDICTS: tuple[str, ...] = ("agree", "expected", "undefined", "disagree")

RESIDUAL_MATCH = (0.5, 1.5)
"""The fitted fraction of the predicted residual within which a cell can be ``expected``."""

RESOLVED_SE = 0.25
"""The largest standard error of a stated measured/predicted ratio: two of them tell the
prediction (1) from no residual (0) and from twice it (2)."""

FAR_BEYOND = 10.0
"""A measured residual more than this many times the predicted one is not a fit of it."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict (one of :data:`VERDICTS`) and why, in one line."""

    verdict: str
    explanation: str


def residual_match(m: Measurement) -> float | None:
    """The least-squares fraction of the predicted residual that the closed form shows."""
    norm = float(m.residual_norm)
    return float(m.residual_dot) / norm if norm > 0 else None


def resolution(m: Measurement) -> float | None:
    r"""The standard error of :func:`residual_match` were the closed form off by no more than
    ``jax.grad``'s own rounding: :math:`\sqrt{\lVert ag - ex \rVert^2 / ((n - 1)\,
    \lVert p \rVert^2)}` for the predicted residual p over n elements; None without one."""
    norm, n = float(m.residual_norm), int(m.elements)
    if norm <= 0 or n < 2:
        return None
    return (float(m.autograd_noise) / ((n - 1) * norm)) ** 0.5


def resolved(m: Measurement) -> bool:
    """Whether the data resolve the predicted residual in the cell's dtype."""
    se = resolution(m)
    return se is not None and se <= RESOLVED_SE


def _below(m: Measurement, dtype: str, normalized_labels: bool) -> str:
    return (f"{_label_sums(m, dtype, normalized_labels)}, a residual (Σy − 1)·σ below what "
            f"{dtype} can show here")


def autograd_ok(m: Measurement) -> bool:
    """Float64 ``jax.grad`` passed its forward-mode and finite-difference checks."""
    return float(m.forward_mode) <= FORWARD_MODE_RTOL and (
        float(m.finite_difference) <= FINITE_DIFFERENCE_RTOL
    )


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%"


def _label_sums(m: Measurement, dtype: str, normalized_labels: bool) -> str:
    if normalized_labels:
        return f"labels rounded to {dtype} miss Σy = 1 by up to {float(m.label_sum_miss):.2g}"
    return f"labels sum to {float(m.label_sum_min):.2g}–{float(m.label_sum_max):.2g}, not 1"


def judge(
    m: Measurement, dtype: str, dtype_max: float, tolerance: Tolerance, normalized_labels: bool
) -> Judgement:
    """The verdict of one cell.

    Args:
        m: the cell's measurement.
        dtype: the cell's dtype name.
        dtype_max: the dtype's largest finite number.
        tolerance: the tolerance in force.
        normalized_labels: whether the float64 labels sum to one (all kinds but unnormalized).
    """
    n = int(m.elements)
    if m.overflow:
        return Judgement(
            "undefined",
            f"inputs overflow {dtype} on the cast (|values| up to {m.max_abs_input:.3g} > max "
            f"{dtype_max:.3g}); neither side is judged",
        )
    if not autograd_ok(m):
        return Judgement(
            "disagree",
            f"float64 jax.grad fails its own check (relative discrepancy {m.forward_mode:.2g} to "
            f"forward mode, {m.finite_difference:.2g} to finite differences): the reference "
            "itself is in doubt",
        )
    for count, side in ((m.nonfinite_cf, "the closed form"), (m.nonfinite_ag, f"{dtype} jax.grad")):
        if int(count):
            return Judgement(
                "disagree",
                f"{side} is NaN or inf at {int(count)} of {n} elements where the float64 "
                "gradient is finite",
            )
    if int(m.within) == n:
        explanation = (
            f"every element within rtol {tolerance.rtol:g}, atol {tolerance.atol:g} of jax.grad"
        )
        if normalized_labels and float(m.label_sum_miss) > 0:
            explanation += f"; {_label_sums(m, dtype, normalized_labels)}, within tolerance here"
        return Judgement("agree", explanation)
    match = residual_match(m)
    low, high = RESIDUAL_MATCH
    matches = match is not None and low <= match <= high
    shown = resolved(m)
    # Every element agreeing, a residual the dtype cannot show is no finding: a closed form
    # that computes σ·Σy − y (right for any labels) matches "as derived" by chance there.
    if matches and int(m.agree_corrected) == n and (shown or int(m.agree) < n):
        how = (f"as derived (measured/predicted residual {match:.2f})" if shown else
               f"as derived: with it added back every element agrees (a residual below what "
               f"{dtype} resolves here, too small to measure)")
        return Judgement(
            "expected",
            f"{_label_sums(m, dtype, normalized_labels)}; the closed form misses the gradient by "
            f"(Σy − 1)·σ {how}",
        )
    if int(m.agree) == n:
        explanation = (
            f"{_percent(int(m.within), n)} of elements within tolerance of jax.grad, the rest no "
            f"farther from the float64 gradient than {dtype} jax.grad"
        )
        if match is not None and float(m.label_sum_miss) > 0:
            explanation += "; " + (
                f"{_label_sums(m, dtype, normalized_labels)}, a residual no larger than {dtype} "
                f"jax.grad's own error, up to rounding (measured/predicted {match:.2g})" if shown else
                _below(m, dtype, normalized_labels)
            )
        return Judgement("agree", explanation)
    explanation = f"{n - int(m.agree)} of {n} elements disagree"
    if match is not None and float(m.label_sum_miss) > 0:
        if not shown:
            explanation += f", not because of the labels: {_below(m, dtype, normalized_labels)}"
        elif abs(match) > FAR_BEYOND:
            explanation += (
                f", far more than the labels explain ({_label_sums(m, dtype, normalized_labels)}:"
                f" the closed form misses the gradient by over {FAR_BEYOND:g} times (Σy − 1)·σ)"
            )
        else:
            explanation += (
                f", not as (Σy − 1)·σ predicts (measured/predicted residual {match:.2g}; "
                f"{_percent(int(m.agree_corrected), n)} agree with it added back)"
            )
    return Judgement("disagree", explanation)
