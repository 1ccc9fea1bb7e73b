"""Shrinking a disagreement to a minimal failing case (part of stage 4, explain).

In the spirit of Hypothesis' "Falsifying example": from the worst row of a disagreeing cell, try
the fewest classes first (2, 3, 4, 8, 16, ... up to the cell's c, then down again by bisection
to the smallest class count that fails), and at each class count the simplest inputs first:
logits all zero, one logit of 1, 10, 100, 1000, then the cell's own row restricted to the classes
that matter; one-hot labels before anything softer. The first that fails is then simplified
logit by logit (0, then an integer, then one significant digit) while it keeps failing.

Whether a candidate fails is not decided here: the search is given ``first_failing``, which
judges one-row candidates (all of one class count) alone, each with the cell's rule, and returns
the index of the first that fails (or None). So the search is plain NumPy and knows nothing of
how the opinions are computed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

Candidates = list[tuple[np.ndarray, np.ndarray]]
FirstFailing = Callable[[Candidates], "int | None"]


def _ladder(classes: int) -> list[int]:
    """Class counts tried first, smallest first: 2, 3, 4, 8, 16, ... and the cell's own."""
    sizes = [2, 3, 4]
    while sizes[-1] * 2 < classes:
        sizes.append(sizes[-1] * 2)
    return [size for size in sizes if size < classes] + [classes]


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
    first_failing: FirstFailing,
    z_row: np.ndarray,
    y_row: np.ndarray,
    worst_class: int,
    normalized: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A minimal failing ``(z, y)`` (float64, one row each) near a failing row, or None.

    Args:
        first_failing: judges candidates of one class count alone; the index of the first that
            fails, or None.
        z_row, y_row: the failing row, float64, as the dtype holds it.
        worst_class: the class of the worst element in that row.
        normalized: whether the cell's labels sum to one (one-hot labels are tried first either
            way; labels that do not sum to one only when they need not).

    Returns:
        ``None`` when even the whole row does not fail on its own (the failure needs the rest
        of the batch).
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
        hit = first_failing(candidates)
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
        return _simplify(first_failing, *found)
    return None


def _simplify(first_failing: FirstFailing, z: np.ndarray, y: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    z = z.copy()
    for k in range(z.size):
        trials = []
        for value in _simpler(float(z[k])):
            trial = z.copy()
            trial[k] = value
            trials.append((trial, y))
        if trials:
            hit = first_failing(trials)
            if hit is not None:
                z = trials[hit][0]
    return z, y
