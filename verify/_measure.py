"""One cell measured: the opinions side by side, judged element by element, then reduced.

Everything is reduced inside one compiled function per (closed form, dtype, shape): the scale and
the tolerances are data, and only scalars leave it. The rule is in ``_rule``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _dtypes, _inputs, _opinions, _rule

CHECKED_ROWS = 8
"""Rows per chunk whose autograd is checked by forward mode and finite differences."""

TRACES = {"measure": 0}
"""How often the cell function was traced (each trace compiles): one per dtype and shape."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """A cell's measurements, reduced over its elements (NumPy scalars, float64 or int64).

    ``worst_*`` describe the element nearest to (or farthest past) failing; ``worst_index`` is
    its flat index in ``[rows, classes]``.
    """

    elements: np.ndarray  # judged: the exact gradient is finite there
    unjudged: np.ndarray  # the exact gradient is not finite
    overflow: np.ndarray  # finite float64 inputs that are not finite in the dtype
    max_abs_input: np.ndarray  # the largest finite |input| in float64
    nonfinite_cf: np.ndarray
    nonfinite_ag: np.ndarray
    within: np.ndarray  # elements within tolerance of jax.grad
    agree: np.ndarray  # elements that agree
    agree_corrected: np.ndarray  # elements that agree once the predicted residual is added
    max_abs_err: np.ndarray
    max_rel_err: np.ndarray
    max_ulp: np.ndarray
    autograd_max_ulp: np.ndarray
    residual_dot: np.ndarray  # <measured residual, predicted residual>
    residual_norm: np.ndarray  # <predicted residual, predicted residual>
    label_sum_min: np.ndarray
    label_sum_max: np.ndarray
    label_sum_miss: np.ndarray  # max |sum(y) - 1| over rows, labels rounded to the dtype
    forward_mode: np.ndarray  # max relative discrepancy of the JVP
    finite_difference: np.ndarray  # max relative discrepancy of central differences
    checked_rows: np.ndarray
    worst_badness: np.ndarray
    worst_index: np.ndarray
    worst_cf: np.ndarray
    worst_ag: np.ndarray
    worst_ex: np.ndarray

    @staticmethod
    def combine(parts: list[Measurement], chunk_rows: int, classes: int) -> Measurement:
        """One measurement of a cell from those of its consecutive chunks of ``chunk_rows``."""
        if len(parts) == 1:
            return parts[0]
        values = {f.name: np.array([getattr(p, f.name) for p in parts]) for f in fields(parts[0])}
        first = int(np.argmax(values["worst_badness"]))  # the first chunk on ties
        combined: dict[str, Any] = {}
        for name, array in values.items():
            if name.startswith("worst_"):
                combined[name] = array[first]
            elif name.startswith(("max_", "label_sum_max", "label_sum_miss")) or name in (
                "forward_mode",
                "finite_difference",
            ):
                combined[name] = array.max()
            elif name == "label_sum_min":
                combined[name] = array.min()
            else:
                combined[name] = array.sum()
        combined["worst_index"] = combined["worst_index"] + first * chunk_rows * classes
        return Measurement(**combined)


@partial(jax.jit, static_argnames=("closed_form", "dtype"))
def _measure(
    closed_form: Callable[[jax.Array, jax.Array], jax.Array],
    dtype: str,
    draws: _inputs.Draws,
    valid: jax.Array,
    scale: jax.Array,
    rtol: jax.Array,
    atol: jax.Array,
) -> dict[str, jax.Array]:
    TRACES["measure"] += 1
    facts = _dtypes.facts(dtype)
    classes = draws.noise.shape[-1]

    z64 = _inputs.logits(draws, scale, facts.far_gap(classes))
    y64 = draws.labels
    z, y = z64.astype(facts.dtype), y64.astype(facts.dtype)
    zr, yr = z.astype(jnp.float64), y.astype(jnp.float64)  # the inputs, as the dtype holds them
    rows = valid[:, None]
    overflow = (jnp.isfinite(z64) & ~jnp.isfinite(zr)) | (jnp.isfinite(y64) & ~jnp.isfinite(yr))

    cf = jnp.asarray(closed_form(z, y))
    if cf.shape != z.shape:
        raise ValueError(
            f"closed_form: expected an array of shape (rows, c) = {z.shape}, got {cf.shape}"
        )
    cf = cf.astype(jnp.float64)
    ag = _opinions.autograd(z, y).astype(jnp.float64)
    ex = _opinions.autograd(zr, yr)

    judged = rows & jnp.isfinite(ex)
    rule = _rule.judge(cf, ag, ex, zr, yr, facts, rtol, atol)
    label_sum = jnp.sum(yr, axis=-1)

    err_cf, err_ag = jnp.abs(cf - ex), jnp.abs(ag - ex)
    ulp = _dtypes.ulp(rule.size, facts.eps, facts.tiny)  # at the size of the gradient's terms
    finite_err = judged & jnp.isfinite(err_cf)
    badness = jnp.where(judged, rule.badness, -1.0)
    worst = jnp.argmax(badness)

    def count(mask: jax.Array) -> jax.Array:
        return jnp.sum(mask, dtype=jnp.int64)

    def largest(values: jax.Array, where: jax.Array) -> jax.Array:
        return jnp.max(jnp.where(where, values, 0.0))

    # The measured residual cf - ex against the predicted one, cf - ex = -predicted.
    residual_dot = jnp.sum(jnp.where(finite_err, (cf - ex) * -rule.predicted, 0.0))
    residual_norm = jnp.sum(jnp.where(judged, rule.predicted**2, 0.0))
    miss = jnp.where(valid, jnp.abs(label_sum - 1), 0.0)

    checked = slice(0, min(CHECKED_ROWS, z.shape[0]))
    forward, central = _opinions.autograd_check(
        zr[checked], yr[checked], ex[checked], draws.direction[checked], rule.size[checked]
    )
    checked_valid = valid[checked] & jnp.all(jnp.isfinite(zr[checked]) | (zr[checked] < 0), -1)
    finite_input = jnp.isfinite(z64)
    flat = lambda a: a.reshape(-1)[worst]  # noqa: E731
    return {
        "elements": count(judged),
        "unjudged": count(rows & ~jnp.isfinite(ex)),
        "overflow": count(rows & overflow),
        "max_abs_input": jnp.maximum(
            largest(jnp.abs(z64), rows & finite_input), largest(jnp.abs(y64), rows)
        ),
        "nonfinite_cf": count(judged & ~jnp.isfinite(cf)),
        "nonfinite_ag": count(judged & ~jnp.isfinite(ag)),
        "within": count(judged & rule.within),
        "agree": count(judged & rule.agree),
        "agree_corrected": count(judged & rule.agree_corrected),
        "max_abs_err": largest(err_cf, finite_err),
        "max_rel_err": largest(err_cf / jnp.maximum(jnp.abs(ex), facts.tiny), finite_err),
        "max_ulp": largest(err_cf / ulp, finite_err),
        "autograd_max_ulp": largest(err_ag / ulp, judged & jnp.isfinite(err_ag)),
        "residual_dot": residual_dot,
        "residual_norm": residual_norm,
        "label_sum_min": jnp.min(jnp.where(valid, label_sum, jnp.inf)),
        "label_sum_max": jnp.max(jnp.where(valid, label_sum, -jnp.inf)),
        "label_sum_miss": jnp.max(miss),
        "forward_mode": largest(forward, checked_valid),
        "finite_difference": largest(central, checked_valid),
        "checked_rows": count(checked_valid),
        "worst_badness": badness.reshape(-1)[worst],
        "worst_index": worst.astype(jnp.int64),
        "worst_cf": flat(cf),
        "worst_ag": flat(ag),
        "worst_ex": flat(ex),
    }


def measure(
    closed_form: Callable[[jax.Array, jax.Array], jax.Array],
    dtype: str,
    draws: _inputs.Draws,
    scale: float,
    rtol: float,
    atol: float,
    max_elements: int,
) -> Measurement:
    """Measures one cell, in chunks of rows of at most ``max_elements`` elements each.

    Every chunk has the same shape (the last is padded with rows that are not counted), so a
    (closed form, dtype, class count) compiles once whatever the scale, labels or tolerances.
    Needs 64-bit JAX.
    """
    rows, classes = draws.noise.shape
    size = chunk_rows(rows, classes, max_elements)
    chunks = -(-rows // size)
    parts = []
    for start in range(0, rows, size):
        index = np.minimum(np.arange(start, start + size), rows - 1)
        valid = np.arange(start, start + size) < rows
        part = draws if chunks == 1 else draws.take(index)
        values = _measure(
            closed_form,
            dtype,
            part,
            jnp.asarray(valid),
            jnp.float64(scale),
            jnp.float64(rtol),
            jnp.float64(atol),
        )
        parts.append(Measurement(**jax.device_get(values)))
    return Measurement.combine(parts, size, classes)


def chunk_rows(rows: int, classes: int, max_elements: int) -> int:
    """Rows per chunk: as even chunks as can be of at most ``max_elements`` (at least one row)."""
    chunks = -(-rows * classes // max(max_elements, classes))
    return -(-rows // chunks)
