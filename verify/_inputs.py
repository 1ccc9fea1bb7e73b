r"""Stage 1, draw: the inputs of a cell — logits :math:`\text{scale}\cdot N(0, 1)`, adversarial
rows, labels — in NumPy, so that drawing compiles nothing.

Every draw comes from NumPy's ``Generator`` (PCG64) seeded with ``(seed, classes, purpose)``:
the noise with purpose 0, the labels with purpose 1 and the label kind. So a cell's draws do not
depend on which other cells are in the grid, and the cells of one class count and label kind
share their draws across dtypes and scales: the map compares the same inputs, scaled and then
rounded to each dtype.

Rows ``0 .. 3`` of every cell are adversarial, the ``samples`` random rows follow:

* ``far-above``: one logit (the label's largest class) :math:`\log c + 1.5 \log(1/\mathrm{eps})`
  above the rest, so the softmax saturates in the cell's dtype;
* ``ties``: that class and the row's largest logit (another class) share its value exactly;
* ``all-equal``: every logit equal;
* ``masked``: about half the classes masked with :math:`-\infty`, their labels set to zero (and
  the labels renormalised unless the kind is ``unnormalized``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ._options import LABEL_KINDS, SMOOTHING

ROW_KINDS: tuple[str, ...] = ("far-above", "ties", "all-equal", "masked", "random")
"""What each row is; rows ``0 .. 3`` are the adversarial ones, in this order."""

ADVERSARIAL_ROWS = 4
FAR_ABOVE, TIES, ALL_EQUAL, MASKED, RANDOM = range(5)
BACKGROUND_ELEMENTS = 2**20
"""Noise of more elements than this (a chunk's) is drawn in a background thread."""

PIECE_ELEMENTS = 2**16
"""Elements the background thread draws at a time."""

NOISE, LABELS, DIRECTIONS = range(3)
"""The purposes a generator is seeded with, after the seed and the class count."""


def generator(seed: int, classes: int, purpose: int, *more: int) -> np.random.Generator:
    """The generator of one purpose: PCG64 seeded with ``(seed, classes, purpose, *more)``."""
    return np.random.default_rng([seed, classes, purpose, *more])


@dataclass(frozen=True)
class Draws:
    """The random part of every cell with one class count and label kind (NumPy arrays).

    Attributes:
        noise: standard normal draws (float32), ``[rows, classes]``; logits are
            ``scale * noise`` in float64. Rows may be drawn as they are asked for: read them
            through :meth:`take`.
        noise_max: ``[rows]``, the largest ``|noise|`` of each row.
        labels: ``[rows, classes]`` float64, already zero (and renormalised) where the masked
            row masks.
        mask: ``[classes]``, the classes the masked row sets to :math:`-\\infty`.
        top: ``[rows]``, the label's largest class: the one the ``far-above`` row lifts.
        partner: ``[rows]``, a class other than the top one: it ties with the top class in the
            ``ties`` row when the top class already holds the row's largest logit.
        row_kind: ``[rows]``, an index into :data:`ROW_KINDS`.
    """

    noise: np.ndarray
    noise_max: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    top: np.ndarray
    partner: np.ndarray
    row_kind: np.ndarray
    draw_to: Callable[[int], None] | None = field(default=None, repr=False, compare=False)
    """Waits until the noise is drawn up to a row (:meth:`Noise.draw_to`); None where it is."""

    @property
    def rows(self) -> int:
        return self.noise.shape[0]

    def take(self, rows: ArrayLike | slice) -> Draws:
        """The draws of some rows (the mask is per cell and kept whole); a slice gives views."""
        if self.draw_to is not None:
            self.draw_to(_stop(rows, self.rows))
        return Draws(
            noise=self.noise[rows],
            noise_max=self.noise_max[rows],
            labels=self.labels[rows],
            mask=self.mask,
            top=self.top[rows],
            partner=self.partner[rows],
            row_kind=self.row_kind[rows],
        )


def _stop(rows: ArrayLike | slice, total: int) -> int:
    """One past the last row that ``rows`` (a slice or indices of ``total`` rows) takes."""
    if isinstance(rows, slice):
        taken = range(total)[rows]
        return max(taken[0], taken[-1]) + 1 if taken else 0
    taken = np.arange(total)[rows]  # indices, negative ones or a mask alike (IndexError past)
    return int(taken.max()) + 1 if taken.size else 0


def first_largest(values: np.ndarray) -> np.ndarray:
    """The index of the first largest value of each row."""
    return np.argmax(values, axis=-1)


def _labels(kind: str, rng: np.random.Generator, rows: int, classes: int) -> np.ndarray:
    """Labels of one kind, ``[rows, classes]`` float64."""
    onehot = np.zeros((rows, classes))
    onehot[np.arange(rows), rng.integers(0, classes, rows)] = 1.0
    if kind == "onehot":
        return onehot
    if kind == "smoothed":
        return (1 - SMOOTHING) * onehot + SMOOTHING / classes
    if kind == "soft":
        # Dirichlet(1, ..., 1) is normalised standard exponentials.
        weights = rng.standard_exponential((rows, classes), dtype=np.float32).astype(np.float64)
        return weights / np.sum(weights, axis=-1, keepdims=True)
    # unnormalized: non-negative, summing to t with |log t| in [0.5, 2]: t in [0.14, 0.61] or
    # [1.6, 7.4].
    weights = rng.random((rows, classes), dtype=np.float32).astype(np.float64)
    log_total = rng.uniform(0.5, 2.0, (rows, 1))
    sign = np.where(rng.random((rows, 1)) < 0.5, 1.0, -1.0)
    return weights / np.sum(weights, axis=-1, keepdims=True) * np.exp(sign * log_total)


class Noise:
    """The logit noise of every cell with c classes: standard normal, ``[samples + 4, classes]``
    float32, and the largest magnitude of each row.

    Past :data:`BACKGROUND_ELEMENTS` it is drawn in a background thread, a piece of rows at a time
    (NumPy draws without the GIL), while the rows drawn so far are computed and judged;
    :meth:`draw_to` waits for the rows it asks for. One generator fills the rows in order: the
    values are those one draw of every row gives (NumPy's generators fill an array element after
    element, and a piece begins where the last one ended).
    """

    def __init__(self, seed: int, classes: int, samples: int) -> None:
        rows = samples + ADVERSARIAL_ROWS
        self.values = np.empty((rows, classes), np.float32)
        self.largest = np.empty(rows, np.float32)
        self._rng = generator(seed, classes, NOISE)
        self._drawn = 0
        self._failed: BaseException | None = None
        self._progress = threading.Condition()
        self._thread = None
        if self.values.size > BACKGROUND_ELEMENTS:
            self._thread = threading.Thread(target=self._draw_all, name="noise", daemon=True)
            self._thread.start()
        else:
            self._draw(0, rows)

    def _draw(self, start: int, stop: int) -> None:
        rows = slice(start, stop)
        self._rng.standard_normal(out=self.values[rows], dtype=np.float32)
        np.max(np.abs(self.values[rows]), axis=-1, out=self.largest[rows])

    def _draw_all(self) -> None:
        rows, classes = self.values.shape
        step = max(1, PIECE_ELEMENTS // classes)
        try:
            for start in range(0, rows, step):
                stop = min(start + step, rows)
                self._draw(start, stop)
                with self._progress:
                    self._drawn = stop
                    self._progress.notify_all()
        except BaseException as error:  # handed to the waiting thread
            with self._progress:
                self._failed = error
                self._progress.notify_all()

    def draw_to(self, stop: int) -> None:
        """Waits until the rows before ``stop`` are drawn."""
        if self._thread is None:
            return
        with self._progress:
            self._progress.wait_for(lambda: self._drawn >= stop or self._failed is not None)
        if self._failed is not None:
            raise self._failed


def draw_noise(seed: int, classes: int, samples: int) -> Noise:
    """:class:`Noise`, every row drawn."""
    noise = Noise(seed, classes, samples)
    noise.draw_to(samples + ADVERSARIAL_ROWS)
    return noise


def draw(
    seed: int, classes: int, labels: str, samples: int, noise: Noise
) -> Draws:
    """The draws of every cell with this class count and label kind.

    Args:
        seed: the seed of every generator.
        classes: c, the number of classes.
        labels: a label kind from :data:`verify.LABEL_KINDS`.
        samples: the number of random rows; the adversarial rows come on top.
        noise: the :class:`Noise` of the same seed, classes and samples, drawn or not: the
            draws' :meth:`Draws.take` draws it as far as the rows taken.

    Returns:
        :class:`Draws` with ``samples + 4`` rows.
    """
    rows = samples + ADVERSARIAL_ROWS
    rng = generator(seed, classes, LABELS, LABEL_KINDS.index(labels))
    values = _labels(labels, rng, rows, classes)
    top = first_largest(values)
    # A partner different from the top class (the top class itself when c = 1).
    offset = rng.integers(1, max(classes, 2), rows)
    partner = (top + offset) % classes if classes > 1 else top
    mask = (rng.random(classes) < 0.5) & (np.arange(classes) != top[MASKED])
    if rows > MASKED:
        masked = np.where(mask, 0.0, values[MASKED])
        if labels != "unnormalized":
            masked = masked / np.sum(masked)
        values[MASKED] = masked
    row_kind = np.minimum(np.arange(rows), RANDOM).astype(np.int32)
    return Draws(noise.values, noise.largest, values, mask, top, partner, row_kind,
                 noise.draw_to)


def logits(draws: Draws, scale: float, far_gap: float) -> np.ndarray:
    """The float64 logits of a cell (or of some of its rows), adversarial rows included.

    Args:
        draws: the cell's draws (or :meth:`Draws.take` of them).
        scale: the cell's scale.
        far_gap: how far the ``far-above`` row's top logit stands above the rest (per dtype).

    Returns:
        ``[rows, classes]`` float64 logits; masked classes are :math:`-\\infty`.
    """
    # At a scale near float64's largest, logits overflow to ±inf: the cell is undefined (the
    # judge says so), not a warning on the user's terminal.
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.multiply(draws.noise, scale, dtype=np.float64)
        # Only the first rows of a cell are adversarial: build those, leave the others alone.
        for row in range(min(ADVERSARIAL_ROWS, z.shape[0])):
            kind = int(draws.row_kind[row])
            if kind != RANDOM:
                z[row] = _adversarial(kind, z[row], draws, row, far_gap)
    return z


def _adversarial(kind: int, z: np.ndarray, draws: Draws, row: int, far_gap: float) -> np.ndarray:
    """One adversarial row, built from its random logits ``z``."""
    top = int(draws.top[row])
    if kind == FAR_ABOVE:
        rest = np.delete(z, top)
        z = z.copy()
        z[top] = (rest.max() if rest.size else 0.0) + far_gap  # c = 1: no rest
    elif kind == TIES:
        # The label's class ties with the row's largest logit (or, if it is that, the partner).
        leader = int(first_largest(z))
        partner = int(draws.partner[row]) if leader == top else leader
        z = z.copy()
        z[[top, partner]] = z.max()
    elif kind == ALL_EQUAL:
        z = np.full_like(z, z[0])
    elif kind == MASKED:
        z = np.where(draws.mask, -np.inf, z)
    return z
