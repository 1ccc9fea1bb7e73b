"""One cell measured: the opinions side by side, judged element by element, then reduced.

Everything is reduced inside one compiled function per (closed form, dtype, shape): the scale and
the tolerances are data, and one float64 vector of statistics leaves it. The rule is in
``_rule``. What makes it fast on CPU, measured: XLA gives every reduction a pass of its own (a
select written out, then reduced), so statistics are few, and run over cache-sized blocks of rows;
reductions of booleans or integers, and argmax, are unvectorised loops, so counts are float64
sums and the worst element is found by float64 max and min.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _dtypes, _inputs, _opinions, _rule

CHECKED_ROWS = 8
"""Rows per chunk whose autograd is checked by forward mode and finite differences."""

TRACES = {"measure": 0}
"""How often the cell function was traced (each trace compiles): once per dtype and shape."""

_COUNTS = (
    "elements", "unjudged", "overflow", "nonfinite_cf", "nonfinite_ag", "within", "agree",
    "agree_corrected", "checked_rows",
)  # fmt: skip
_SUMS = ("residual_dot", "residual_norm")
_MAXIMA = (
    "max_abs_input", "max_abs_err", "max_rel_err", "max_ulp", "autograd_max_ulp",
    "label_sum_max", "label_sum_miss", "forward_mode", "finite_difference",
)  # fmt: skip
_MINIMA = ("label_sum_min",)
_WORST = ("worst_rank", "worst_index", "worst_cf", "worst_ag", "worst_ex")
_FIELDS = _COUNTS + _SUMS + _MAXIMA + _MINIMA + _WORST


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

    @staticmethod
    def combine(parts: list[Measurement]) -> Measurement:
        """One measurement of a cell from those of its chunks, in order (indices are global)."""
        first = max(range(len(parts)), key=lambda i: parts[i].worst_rank)  # first on ties
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


_PAIR = 2.0**26


def _first(hits: jax.Array) -> jax.Array:
    """The index of the first true element of a vector (its length if none)."""
    index = jnp.arange(hits.shape[0], dtype=jnp.float64)
    return jnp.min(jnp.where(hits, index, hits.shape[0])).astype(jnp.int32)


def _rank(
    judged: jax.Array, finite: jax.Array, agree: jax.Array, err_ulp: jax.Array
) -> jax.Array:
    """Orders elements worst first, in one float64: a side not finite (inf), then the elements
    that do not agree by their error in ULPs (>= 0), then those that agree, by it too (in
    [-1, 0)), then the elements not judged (-2)."""
    agreeing = -1.0 / (1.0 + err_ulp)
    ranked = jnp.where(finite, jnp.where(agree, agreeing, err_ulp), jnp.inf)
    return jnp.where(judged, jnp.where(jnp.isnan(ranked), jnp.inf, ranked), -2.0)


def _statistics(
    facts: _dtypes.DtypeFacts,
    z64: jax.Array,
    y64: jax.Array,
    cf: jax.Array,
    valid: jax.Array,
    rtol: jax.Array,
    atol: jax.Array,
) -> dict[str, jax.Array]:
    """The statistics of a block of rows (all but the autograd check's)."""
    classes = z64.shape[-1]
    z, y = z64.astype(facts.dtype), y64.astype(facts.dtype)
    zr, yr = z.astype(jnp.float64), y.astype(jnp.float64)  # the inputs, as the dtype holds them
    cf = cf.astype(jnp.float64)
    ag = _opinions.autograd(z, y).astype(jnp.float64)
    ex = _opinions.autograd(zr, yr)
    rule = _rule.judge(cf, ag, ex, zr, yr, facts, rtol, atol)

    rows = valid[:, None]
    judged = rows & jnp.isfinite(ex)
    err_cf, err_ag = jnp.abs(cf - ex), jnp.abs(ag - ex)
    finite_err = judged & jnp.isfinite(err_cf)
    # ULPs at the size of the gradient's terms; below the smallest normal number, where XLA on
    # CPU flushes float32 and bfloat16 to zero, the unit is that number.
    normal = rule.size >= facts.tiny
    ulp = jnp.where(normal, _dtypes.ulp(rule.size, facts.eps, facts.tiny), facts.tiny)
    # Each statistic costs a pass of its own on CPU (a select written out, then reduced), so
    # counts go two to a float64 sum, a + 2**26 b: exact while a block holds < 2**26 elements.
    pairs = {
        ("elements", "within"): (judged, judged & rule.within),
        ("agree", "agree_corrected"): (judged & rule.agree, judged & rule.agree_corrected),
        ("nonfinite_cf", "nonfinite_ag"): (judged & ~jnp.isfinite(cf), judged & ~jnp.isfinite(ag)),
    }
    values = {}
    for (low, high), (a, b) in pairs.items():
        packed = jnp.sum(jnp.where(a, 1.0, 0.0) + jnp.where(b, _PAIR, 0.0))
        values[high] = jnp.floor(packed / _PAIR)
        values[low] = packed - values[high] * _PAIR
    # The measured residual cf - ex against the predicted one, cf - ex = -predicted.
    values["residual_dot"] = jnp.sum(jnp.where(finite_err, (cf - ex) * -rule.predicted, 0.0))
    values["residual_norm"] = jnp.sum(jnp.where(judged, rule.predicted**2, 0.0))
    err_ulp = err_cf / ulp
    maxima = {
        "max_abs_err": jnp.where(finite_err, err_cf, 0.0),
        "max_rel_err": jnp.where(finite_err, err_cf / jnp.maximum(jnp.abs(ex), facts.tiny), 0.0),
        "max_ulp": jnp.where(finite_err, err_ulp, 0.0),
        "autograd_max_ulp": jnp.where(judged & jnp.isfinite(err_ag), err_ag / ulp, 0.0),
    }
    values |= {name: jnp.max(array) for name, array in maxima.items()}

    # The first worst element, by float64 max and min reductions (argmax is a variadic
    # reduction: a scalar loop on CPU).
    rank = _rank(judged, jnp.isfinite(cf) & jnp.isfinite(ag), rule.agree, err_ulp)
    row_best = jnp.max(rank, axis=-1)
    worst_rank = jnp.max(row_best)
    worst_row = _first(row_best == worst_rank)
    worst_class = _first(rank[worst_row] == worst_rank)
    at_worst = lambda a: a[worst_row, worst_class]  # noqa: E731
    label_sum = jnp.sum(yr, axis=-1)
    return values | {
        "label_sum_max": jnp.max(jnp.where(valid, label_sum, -jnp.inf)),
        "label_sum_miss": jnp.max(jnp.where(valid, jnp.abs(label_sum - 1), 0.0)),
        "label_sum_min": jnp.min(jnp.where(valid, label_sum, jnp.inf)),
        "worst_rank": worst_rank,
        "worst_index": (worst_row * classes + worst_class).astype(jnp.float64),
        "worst_cf": at_worst(cf),
        "worst_ag": at_worst(ag),
        "worst_ex": at_worst(ex),
    }


def _combine_blocks(blocks: dict[str, jax.Array], block_elements: int) -> dict[str, jax.Array]:
    """Per-block statistics (a leading block axis) reduced to the chunk's."""
    first = jnp.argmax(blocks["worst_rank"])  # the first block on ties
    combined = {}
    for name, values in blocks.items():
        if name in _COUNTS or name in _SUMS:
            combined[name] = jnp.sum(values)
        elif name in _MAXIMA:
            combined[name] = jnp.max(values)
        elif name in _MINIMA:
            combined[name] = jnp.min(values)
        else:
            combined[name] = values[first]
    combined["worst_index"] = combined["worst_index"] + first * block_elements
    return combined


def _rows(draws: _inputs.Draws, start: jax.Array, size: int) -> _inputs.Draws:
    """Rows ``start .. start + size`` of the draws, padded (repeating the last row) if short."""
    rows = draws.noise.shape[0]
    if rows == size:
        return draws

    def cut(a: jax.Array) -> jax.Array:
        if rows < size:
            return jnp.pad(a, [(0, size - rows)] + [(0, 0)] * (a.ndim - 1), mode="edge")
        return jax.lax.dynamic_slice_in_dim(a, start, size)

    per_row = ("noise", "noise_max", "labels", "top", "partner", "row_kind")
    return dataclasses.replace(draws, **{name: cut(getattr(draws, name)) for name in per_row})


@partial(jax.jit, static_argnames=("closed_form", "dtype", "size", "block_rows"))
def _measure(
    closed_form: Callable[[jax.Array, jax.Array], jax.Array],
    dtype: str,
    draws: _inputs.Draws,
    seed: jax.Array,
    begin: jax.Array,
    scale: jax.Array,
    rtol: jax.Array,
    atol: jax.Array,
    size: int,
    block_rows: int,
) -> jax.Array:
    """The statistics of the chunk of ``size`` rows from row ``begin``, as a float64 vector in
    the order of ``_FIELDS``.

    The last chunk is moved back to end at the last row (its rows already counted are not
    counted again) or, when there are fewer rows than ``size``, padded with rows not counted.
    The closed form sees the whole chunk; everything else runs over blocks of ``block_rows``
    rows, small enough for the many elementwise passes to stay in cache.
    """
    TRACES["measure"] += 1
    facts = _dtypes.facts(dtype)
    rows, classes = draws.noise.shape
    start = jnp.clip(begin, 0, max(rows - size, 0))
    index = start + jnp.arange(size)
    valid = (index >= begin) & (index < rows)
    draws = _rows(draws, start, size)

    z64 = _inputs.logits(draws, scale, facts.far_gap(classes))
    y64 = draws.labels
    z, y = z64.astype(facts.dtype), y64.astype(facts.dtype)
    cf = jnp.asarray(closed_form(z, y))
    if cf.shape != z.shape:
        raise ValueError(
            f"closed_form: expected an array of shape (rows, c) = {z.shape}, got {cf.shape}"
        )

    blocks = size // block_rows
    split = lambda a: a.reshape(blocks, block_rows, *a.shape[1:])  # noqa: E731
    per_block = jax.lax.map(
        lambda args: _statistics(facts, *args, rtol, atol),
        (split(z64), split(y64), split(cf), split(valid)),
    )
    values = _combine_blocks(per_block, block_rows * classes)
    values["worst_index"] = values["worst_index"] + start * classes
    values["unjudged"] = jnp.sum(valid) * classes - values["elements"]
    # The largest finite |logit|: scale * |noise| but in the adversarial rows, which come first.
    # (Labels are at most 7.4: no dtype overflows on them.) An input overflows on the cast
    # exactly when this largest one does.
    head = z64[:_inputs.ADVERSARIAL_ROWS]
    head_valid = valid[: head.shape[0], None] & jnp.isfinite(head)
    values["max_abs_input"] = jnp.maximum(
        jnp.max(jnp.where(head_valid, jnp.abs(head), 0.0)),
        scale * jnp.max(jnp.where(valid, draws.noise_max, 0.0)),
    )
    largest = values["max_abs_input"].astype(facts.dtype)
    values["overflow"] = jnp.where(jnp.isfinite(largest), 0.0, 1.0)

    checked = slice(0, min(CHECKED_ROWS, size))
    zr = z[checked].astype(jnp.float64)
    yr = y[checked].astype(jnp.float64)
    ex = _opinions.autograd(zr, yr)
    sigma = jax.nn.softmax(zr, axis=-1)
    gradient_size = _rule.predictions().gradient_size(
        sigma, yr, jnp.sum(yr, axis=-1, keepdims=True)
    )
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), classes), 2)
    direction = jax.random.normal(jax.random.fold_in(key, begin), zr.shape, jnp.float64)
    forward, central = _opinions.autograd_check(zr, yr, ex, direction, gradient_size)
    checked_valid = valid[checked] & jnp.all(jnp.isfinite(zr) | (zr < 0), -1)
    values["checked_rows"] = jnp.sum(jnp.where(checked_valid, 1.0, 0.0))
    values["forward_mode"] = jnp.max(jnp.where(checked_valid, forward, 0.0))
    values["finite_difference"] = jnp.max(jnp.where(checked_valid, central, 0.0))
    return jnp.stack([values[name].astype(jnp.float64) for name in _FIELDS])


def measure(
    closed_form: Callable[[jax.Array, jax.Array], jax.Array],
    dtype: str,
    draws: _inputs.Draws,
    seed: int,
    scale: float,
    rtol: float,
    atol: float,
    max_elements: int,
) -> Measurement:
    """Measures one cell, in chunks of rows of at most about ``max_elements`` elements each.

    Every chunk has the same shape, so a (closed form, dtype, class count) compiles once
    whatever the scale, labels or tolerances. Needs 64-bit JAX.
    """
    rows, classes = draws.noise.shape
    size, block = chunking(rows, classes, max_elements)
    parts = []
    for begin in range(0, rows, size):
        vector = _measure(
            closed_form,
            dtype,
            draws,
            np.uint32(seed),
            np.int32(begin),  # NumPy scalars: jnp scalars would each cost an eager dispatch
            np.float64(scale),
            np.float64(rtol),
            np.float64(atol),
            size=size,
            block_rows=block,
        )
        values = np.asarray(vector).tolist()
        parts.append(Measurement(**dict(zip(_FIELDS, values, strict=True))))
    return Measurement.combine(parts)


BLOCK_ELEMENTS = 2**16
"""Elements per block: the working set of a block's passes (~20 float64 arrays) stays in cache."""


def chunking(rows: int, classes: int, max_elements: int) -> tuple[int, int]:
    """Rows per chunk and rows per block: chunks of about ``max_elements`` (at least a row), as
    even as can be, each a whole number of blocks of about ``BLOCK_ELEMENTS``."""
    chunks = -(-rows * classes // max(max_elements, classes))
    size = -(-rows // chunks)
    block = -(-size // min(size, -(-size * classes // BLOCK_ELEMENTS)))
    return block * -(-size // block), block
