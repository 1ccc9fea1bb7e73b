"""Shrinking a disagreement to a minimal failing case, printed as a runnable snippet.

In the spirit of Hypothesis' "Falsifying example": from the worst row of a disagreeing cell, try
the fewest classes first (2, 3, 4, 8, 16, ... up to the cell's c, then down again by bisection
to the smallest class count that fails), and at each class count the simplest inputs first:
logits all zero, one logit of 1, 10, 100, 1000, then the cell's own row restricted to the classes
that matter; one-hot labels before anything softer. Every candidate is one row, judged alone
with the cell's rule. The first that fails is then simplified logit by logit (0, then an
integer, then one significant digit) while it keeps failing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _dtypes, _opinions, _rule
from ._options import Tolerance


def _ladder(classes: int) -> list[int]:
    """Class counts tried first, smallest first: 2, 3, 4, 8, 16, ... and the cell's own."""
    sizes = [2, 3, 4]
    while sizes[-1] * 2 < classes:
        sizes.append(sizes[-1] * 2)
    return [size for size in sizes if size < classes] + [classes]

BATCH = 64
"""Candidates judged per compiled call (padded), so each class count compiles once."""


@partial(jax.jit, static_argnames=("closed_form", "dtype"))
def _fails(
    closed_form: Callable[[jax.Array, jax.Array], jax.Array],
    dtype: str,
    z64: jax.Array,
    y64: jax.Array,
    rtol: jax.Array,
    atol: jax.Array,
) -> jax.Array:
    """For each row of ``[n, c]``, judged alone as a ``[1, c]`` batch: does it disagree?"""
    facts = _dtypes.facts(dtype)

    def one(z_row: jax.Array, y_row: jax.Array) -> jax.Array:
        z, y = z_row[None].astype(facts.dtype), y_row[None].astype(facts.dtype)
        zr, yr = z.astype(jnp.float64), y.astype(jnp.float64)
        representable = jnp.all((jnp.isfinite(zr) | (zr < 0)) & jnp.isfinite(yr))
        cf = jnp.asarray(closed_form(z, y)).astype(jnp.float64)
        ag = _opinions.autograd(z, y).astype(jnp.float64)
        ex = _opinions.autograd(zr, yr)
        rule = _rule.judge(cf, ag, ex, zr, yr, facts, rtol, atol)
        failing = jnp.isfinite(ex) & ~rule.agree & ~rule.agree_corrected
        return representable & jnp.any(failing)

    return jax.vmap(one)(z64, y64)


def _first_failing(
    closed_form: Callable,
    dtype: str,
    candidates: list[tuple[np.ndarray, np.ndarray]],
    tol: Tolerance,
) -> int | None:
    """The index of the first failing candidate (all of one class count), or None — also when
    the closed form cannot be evaluated at this class count (it may be written for another)."""
    classes = candidates[0][0].shape[-1]
    spec = jax.ShapeDtypeStruct((1, classes), jnp.dtype(dtype))
    try:
        shape = jax.eval_shape(closed_form, spec, spec).shape
    except Exception:  # noqa: BLE001 - the user's code; it fails elsewhere, not here
        return None
    if shape != spec.shape:
        return None
    for start in range(0, len(candidates), BATCH):
        batch = candidates[start : start + BATCH]
        batch = batch + [batch[-1]] * (BATCH - len(batch))
        z = jnp.asarray(np.stack([z for z, _ in batch]))
        y = jnp.asarray(np.stack([y for _, y in batch]))
        flags = np.asarray(_fails(closed_form, dtype, z, y, tol.rtol, tol.atol))
        hits = np.flatnonzero(flags[: min(BATCH, len(candidates) - start)])
        if hits.size:
            return start + int(hits[0])
    return None


def _keep(z: np.ndarray, y: np.ndarray, worst_class: int, size: int) -> np.ndarray:
    """The ``size`` classes of a row that matter most, in their original order."""
    order = [worst_class, int(np.argmax(y)), int(np.argmax(z))]
    order += sorted(range(z.size), key=lambda k: (-abs(y[k]), -abs(np.nan_to_num(z[k]))))
    kept = list(dict.fromkeys(order))[:size]
    return np.array(sorted(kept))


def _label_palette(size: int, normalized: bool, own: np.ndarray) -> list[np.ndarray]:
    def vector(*values: float) -> np.ndarray:
        return np.array(list(values)[:size] + [0.0] * max(0, size - len(values)))

    palette = [vector(1.0), vector(0.0, 1.0), vector(0.5, 0.5), vector(0.75, 0.25)]
    if not normalized:
        palette += [vector(2.0), vector(0.5), vector(1.0, 1.0)]
    palette.append(np.full(size, 1.0 / size))
    palette.append(own)
    return palette


def _logit_palette(size: int, own: np.ndarray) -> list[np.ndarray]:
    palette = [np.zeros(size)]
    for value in (1.0, 10.0, 100.0, 1000.0):
        palette.append(np.eye(size)[0] * value)
    with np.errstate(invalid="ignore"):
        palette += [np.round(own), own]
    return palette


def _simpler(value: float) -> list[float]:
    """Simpler values to try in place of a logit, simplest first."""
    if not np.isfinite(value):
        return [0.0]
    options = [0.0, float(np.round(value)), float(f"{value:.1g}")]
    return [option for option in dict.fromkeys(options) if option != value]


def shrink(
    closed_form: Callable,
    dtype: str,
    tol: Tolerance,
    z_row: np.ndarray,
    y_row: np.ndarray,
    worst_class: int,
    normalized: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A minimal failing ``(z, y)`` (float64, one row each) near a failing row, or None.

    Needs 64-bit JAX. ``None`` when even the whole row does not fail on its own (the failure
    needs the rest of the batch).
    """
    classes = z_row.size

    def attempt(size: int) -> tuple[np.ndarray, np.ndarray] | None:
        kept = _keep(z_row, y_row, worst_class, size)
        own_z, own_y = z_row[kept], y_row[kept]
        if normalized and own_y.sum() > 0:
            own_y = own_y / own_y.sum()
        zs = _logit_palette(size, own_z)
        ys = _label_palette(size, normalized, own_y)
        pairs = sorted(itertools.product(range(len(zs)), range(len(ys))), key=lambda p: (sum(p), p))
        candidates = [(zs[i], ys[j]) for i, j in pairs]
        hit = _first_failing(closed_form, dtype, candidates, tol)
        return None if hit is None else candidates[hit]

    passed = 1
    for size in _ladder(classes):
        found = attempt(size)
        if found is None:
            passed = size
            continue
        low, high = passed, size  # fails at high; find the smallest that fails above low
        while high - low > 1:
            middle = (low + high) // 2
            smaller = attempt(middle)
            if smaller is None:
                low = middle
            else:
                high, found = middle, smaller
        return _simplify(closed_form, dtype, tol, *found)
    return None


def _simplify(
    closed_form: Callable, dtype: str, tol: Tolerance, z: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    z = z.copy()
    for k in range(z.size):
        trials = []
        for value in _simpler(float(z[k])):
            trial = z.copy()
            trial[k] = value
            trials.append((trial, y))
        if trials:
            hit = _first_failing(closed_form, dtype, trials, tol)
            if hit is not None:
                z = trials[hit][0]
    return z, y
