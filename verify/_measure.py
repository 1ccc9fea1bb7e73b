"""Stage 3, judge (2 of 3): the rule applied to every element of a chunk, reduced to a
:class:`Measurement` (NumPy, float64).

A measurement is what the verdict is decided on: counts of elements within tolerance, agreeing,
agreeing with the predicted residual added back, not finite; the closed form's largest errors;
the residual measured against the one predicted; the worst element; the autograd check. Chunks
reduce to one measurement by :meth:`Measurement.combine`.

Most elements of most cells are within tolerance, so the rest of the rule (no farther from the
exact gradient than ``jax.grad``) is applied to the others only, and the predicted residual is
added back only where it is not zero: the rule is elementwise, so the counts are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from . import _dtypes, _rule
from ._opinions import FINITE_DIFFERENCE_NOISE, Opinions
from ._reference import Reference

_COUNTS = (
    "elements", "unjudged", "overflow", "nonfinite_cf", "nonfinite_ag", "within", "agree",
    "agree_corrected", "checked_rows",
)  # fmt: skip
_SUMS = ("residual_dot", "residual_norm", "autograd_noise")
_MAXIMA = (
    "max_abs_input", "max_abs_err", "max_rel_err", "max_ulp", "autograd_max_ulp",
    "label_sum_max", "label_sum_miss", "forward_mode", "finite_difference",
)  # fmt: skip
_MINIMA = ("label_sum_min",)
_WORST = ("worst_rank", "worst_index", "worst_cf", "worst_ag", "worst_ex")


@dataclass(frozen=True, slots=True)
class Measurement:
    """A cell's measurements, reduced over its elements (Python floats).

    Attributes:
        elements: elements judged: the exact gradient is finite there.
        unjudged: elements whose exact gradient is not finite.
        overflow: 1 when some finite float64 input is not finite in the dtype, else 0.
        nonfinite_cf, nonfinite_ag: judged elements where the closed form, or ``jax.grad`` in
            the dtype, is NaN or inf.
        within, agree, agree_corrected: judged elements within tolerance of ``jax.grad``,
            agreeing, and agreeing once the predicted residual is added back.
        checked_rows: rows whose float64 autograd was checked.
        residual_dot, residual_norm: ⟨measured residual, predicted⟩, ⟨predicted, predicted⟩.
        autograd_noise: ⟨ag − ex, ag − ex⟩ where a residual is predicted: how far one honest
            evaluation in the dtype strays, the noise a fitted residual must stand out of.
        max_abs_input: the largest finite |input| in float64.
        max_abs_err, max_rel_err, max_ulp: the closed form's largest errors.
        autograd_max_ulp: ``jax.grad``'s largest error, in ULPs.
        label_sum_min, label_sum_max, label_sum_miss: the rounded labels' row sums, and their
            largest distance from one.
        forward_mode, finite_difference: the largest relative discrepancies of the autograd check.
        worst_rank, worst_index, worst_cf, worst_ag, worst_ex: the worst element — of the
            elements that do not agree, the first where a side is not finite, else the largest
            error in ULPs; if all agree, the largest error in ULPs — its rank (:func:`_rank`),
            its flat index in ``[rows, classes]``, and its three values.
    """

    elements: float
    unjudged: float
    overflow: float
    nonfinite_cf: float
    nonfinite_ag: float
    within: float
    agree: float
    agree_corrected: float
    checked_rows: float
    residual_dot: float
    residual_norm: float
    max_abs_input: float
    max_abs_err: float
    max_rel_err: float
    max_ulp: float
    autograd_max_ulp: float
    label_sum_max: float
    label_sum_miss: float
    forward_mode: float
    finite_difference: float
    label_sum_min: float
    worst_rank: float
    worst_index: float
    worst_cf: float
    worst_ag: float
    worst_ex: float
    autograd_noise: float = 0.0

    @staticmethod
    def combine(parts: list[Measurement]) -> Measurement:
        """One measurement of a cell from those of its chunks (indices are global).

        On a tie of the worst rank the element of the smallest index is the worst, as in one
        chunk: a streamed cell's calls need not come in row order (windows gather rows across
        sequences)."""
        first = max(range(len(parts)), key=lambda i: (parts[i].worst_rank, -parts[i].worst_index))
        combined = {}
        for field in fields(Measurement):
            name = field.name
            values = [getattr(part, name) for part in parts]
            if name in _COUNTS or name in _SUMS:
                combined[name] = float(sum(values))
            elif name in _MAXIMA:
                combined[name] = max(values)
            elif name in _MINIMA:
                combined[name] = min(values)
            else:
                combined[name] = values[first]
        return Measurement(**combined)


def _rank(judged: np.ndarray, finite: np.ndarray, agree: np.ndarray,
          err_ulp: np.ndarray) -> np.ndarray:
    """Orders elements worst first, in one float64: a side not finite (inf), then the elements
    that do not agree by their error in ULPs (>= 0), then those that agree, by it too (in
    [-1, 0)), then the elements not judged (-2)."""
    err_ulp = np.asarray(err_ulp, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreeing = -1.0 / (1.0 + err_ulp)
    ranked = np.where(finite, np.where(agree, agreeing, err_ulp), np.inf)
    return np.where(judged, np.where(np.isnan(ranked), np.inf, ranked), -2.0)


def _unit(size: np.ndarray, facts: _dtypes.DtypeFacts) -> np.ndarray:
    """The unit errors are measured in: :func:`verify._dtypes.ulp` at ``size``, and below the
    dtype's smallest normal number (where XLA on CPU flushes float32 and bfloat16 to zero) that
    number. (No sizes are negative; a NaN among them leaves every unit as the spacing.)"""
    low = float(np.min(size, initial=np.inf))
    # 2**floor(log2|x|): the exponent's bits alone (the sign's are cleared too), in a new array.
    bits = np.bitwise_and(np.asarray(size, np.float64).view(np.int64), 0x7FF0000000000000)
    spacing = bits.view(np.float64)
    spacing *= facts.eps
    if low < facts.tiny:
        spacing[size < facts.tiny] = facts.tiny
    return spacing


def _max(values: np.ndarray, where: np.ndarray | None) -> float:
    """The largest value where ``where`` holds (all when None), 0 if none."""
    if where is None:
        return float(values.max(initial=0.0))
    return float(np.max(values, where=where, initial=0.0))


def measure(
    o: Opinions,
    reference: Reference,
    facts: _dtypes.DtypeFacts,
    rtol: float,
    atol: float,
    valid: np.ndarray,
    max_abs_input: float,
    check: dict[str, float],
) -> Measurement:
    """The measurement of some rows (a chunk, or a block of one) in one dtype.

    Args:
        o: the chunk's opinions.
        reference: the loss and its theory.
        facts: the dtype's.
        rtol, atol: the tolerance.
        valid: ``[rows]``, the rows of the chunk counted (padding and rows another chunk
            already counted are not).
        max_abs_input: the largest finite |float64 input| of the chunk's valid rows.
        check: :func:`autograd_check` of the chunk (zeros for its other blocks).
    """
    cf, ag, ex = o.closed_form, o.autograd, o.exact
    rows, classes = ex.shape
    all_rows = bool(valid.all())
    # The errors first: their largest values tell whether every value is finite (a NaN or inf in
    # cf, ag or ex makes an error NaN or inf; so does the difference of two finite values near
    # 1e308, where the masks below then leave that error out of the maxima, as of a NaN's).
    with np.errstate(invalid="ignore", over="ignore"):
        off_cf = np.subtract(cf, ex)  # kept for the residual's fit below
        err_cf = np.abs(off_cf)
        off_ag = np.subtract(ag, ex)
        err_ag = np.abs(off_ag)
        largest_cf = float(err_cf.max(initial=0.0))
    # Usually every row is counted and every value finite; then no element needs a mask.
    clean = all_rows and np.isfinite(largest_cf) and bool(np.isfinite(err_ag.max(initial=0.0)))
    if clean:
        mask = judged = None  # None: every element is judged, every value finite
        finite_cf = finite_ag = None
        elements = ex.size
    else:
        judged = np.isfinite(ex) if all_rows else np.isfinite(ex) & valid[:, None]
        mask = judged
        elements = int(np.count_nonzero(judged))
        finite_cf, finite_ag = np.isfinite(cf), np.isfinite(ag)

    def count(flags: np.ndarray) -> int:
        return int(np.count_nonzero(flags if mask is None else flags & mask))

    # The rule: within tolerance; where not, no farther from the exact gradient.
    sigma, label, label_sum = o.sigma, o.label, o.label_sum
    size = o.size
    # In a clean chunk jax.grad is finite everywhere, so a value within its band is finite too:
    # the band alone decides (it is computed once, for the closed form and for the corrected).
    width = _rule.band(ag, rtol, atol) if clean else None
    within = _rule.within_band(cf, ag, width) if clean else _rule.within(cf, ag, rtol, atol)
    agree = within.copy()
    if not within.all():
        rest = ~within
        agree[rest] = _rule.no_farther(cf[rest], ag[rest], ex[rest],
                                       _rule.allowance(size[rest], facts))
    # With the predicted residual added back (only where it is not zero: elsewhere it changes
    # nothing but the allowance).
    predicted = reference.residual(sigma, label, label_sum)
    any_residual = bool(np.any(predicted))
    if any_residual:
        predicted = np.broadcast_to(predicted, ex.shape)
        corrected = cf + predicted
        agree_corrected = (_rule.within_band(corrected, ag, width) if clean else
                           _rule.within(corrected, ag, rtol, atol))
    else:
        corrected, agree_corrected = cf, within.copy()
    if not agree_corrected.all():
        rest = ~agree_corrected
        corrected_size = reference.closed_form_size(
            *(np.broadcast_to(a, ex.shape)[rest] for a in (sigma, label, label_sum))
        )
        agree_corrected[rest] = _rule.no_farther(
            corrected[rest], ag[rest], ex[rest], _rule.allowance(corrected_size, facts)
        )

    # Errors, in ULPs of the terms' size; below the dtype's smallest normal number, where XLA on
    # CPU flushes float32 and bfloat16 to zero, the unit is that number.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ulp = _unit(size, facts)
        if clean:
            err_mask, plain, ag_finite = None, True, None
        else:
            err_mask = np.isfinite(err_cf) & mask
            plain = False
            ag_finite = np.isfinite(err_ag) & mask
        err_where = None if plain else err_mask
        err_ulp = err_cf / ulp
        rel = np.abs(ex)
        np.maximum(rel, facts.tiny, out=rel)
        np.divide(err_cf, rel, out=rel)
        err_ag /= ulp
        ag_ulp = err_ag

    values: dict[str, float] = {
        "elements": float(elements),
        "unjudged": float(int(valid.sum()) * classes - elements),
        "within": float(count(within)),
        "agree": float(count(agree)),
        "agree_corrected": float(count(agree_corrected)),
        "nonfinite_cf": 0.0 if clean else float(count(~finite_cf)),
        "nonfinite_ag": 0.0 if clean else float(count(~finite_ag)),
        "max_abs_err": largest_cf if clean else _max(err_cf, err_where),
        "max_rel_err": _max(rel, err_where),
        "autograd_max_ulp": _max(ag_ulp, ag_finite),
        "max_abs_input": float(max_abs_input),
    }
    with np.errstate(over="ignore"):
        values["overflow"] = 0.0 if np.isfinite(np.array(max_abs_input).astype(facts.dtype)) else 1.0
    # The measured residual cf - ex against the predicted one, cf - ex = -predicted.
    if any_residual:
        with np.errstate(invalid="ignore", over="ignore"):  # inf · 0 where a value is not finite
            product = off_cf * -predicted
            squares = predicted**2
            noise = np.square(off_ag, out=off_ag)
        if not clean:  # those elements are left out
            product = np.where(err_mask, product, 0.0)
            squares = np.where(judged, squares, 0.0)
            noise = np.where(ag_finite, noise, 0.0)
        values["residual_dot"] = float(np.sum(product))
        values["residual_norm"] = float(np.sum(squares))
        values["autograd_noise"] = float(np.sum(noise))
    else:
        values["residual_dot"] = values["residual_norm"] = values["autograd_noise"] = 0.0

    # The worst element, the first in row-major order on ties.
    if clean and count(agree) == elements:
        index = int(np.argmax(err_ulp))  # everything agrees: the largest error in ULPs
        values["max_ulp"] = float(err_ulp.flat[index])  # (errors are finite and >= 0)
        rank = -1.0 / (1.0 + values["max_ulp"])  # _rank of an agreeing element
    elif clean:  # everything finite: the disagreeing element farthest off (errors are >= 0)
        values["max_ulp"] = _max(err_ulp, None)
        index = int(np.argmax(np.where(agree, -1.0, err_ulp)))
        rank = float(err_ulp.flat[index])  # _rank of a disagreeing element
    else:
        values["max_ulp"] = _max(err_ulp, err_where)
        ranks = _rank(
            True if judged is None else judged,
            True if finite_cf is None else finite_cf & finite_ag,
            agree,
            err_ulp,
        )
        index = int(np.argmax(ranks))
        rank = float(ranks.flat[index])
    values |= {
        "worst_rank": rank,
        "worst_index": float(index),
        "worst_cf": float(cf.flat[index]),
        "worst_ag": float(ag.flat[index]),
        "worst_ex": float(ex.flat[index]),
    }

    sums = np.asarray(label_sum, np.float64).reshape(rows, -1)[:, 0]
    values["label_sum_max"] = float(np.max(sums, where=valid, initial=-np.inf))
    values["label_sum_min"] = float(np.min(sums, where=valid, initial=np.inf))
    values["label_sum_miss"] = float(np.max(np.abs(sums - 1), where=valid, initial=0.0))
    return Measurement(**values, **check)


NO_CHECK = {"checked_rows": 0.0, "forward_mode": 0.0, "finite_difference": 0.0}
"""The autograd check of rows that have none: nothing checked, nothing off."""


def autograd_check(o: Opinions, valid: np.ndarray) -> dict[str, float]:
    """The autograd check of a chunk: rows checked, and the largest relative discrepancies of
    forward mode and of central differences, relative to :math:`\\sum_k \\mathrm{size}_k |v_k|`
    (a central difference's beyond :data:`FINITE_DIFFERENCE_NOISE` times its rounding noise).
    """
    checked = o.forward.shape[0]
    size = np.broadcast_to(o.size, o.exact.shape)[:checked]
    scale = np.sum(size * np.abs(o.direction), axis=-1) + 1e-12
    forward = np.abs(o.forward - o.along) / scale
    noise = np.where(np.isfinite(o.noise), o.noise, 0.0)  # none measured: no allowance
    beyond = np.abs(o.central - o.along) - FINITE_DIFFERENCE_NOISE * noise
    central = np.maximum(beyond, 0.0) / scale
    rows = valid[:checked] & o.checked_ok
    return {
        "checked_rows": float(np.count_nonzero(rows)),
        "forward_mode": float(np.max(forward, where=rows, initial=0.0)),
        "finite_difference": float(np.max(central, where=rows, initial=0.0)),
    }
