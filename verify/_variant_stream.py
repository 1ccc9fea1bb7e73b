r"""A loss variant's LLM-shaped cell, streamed: its rows cut into calls, each call its own batch.

A variant's cell is drawn and called whole while its ``B·T × V`` logits fit one chunk of the
plain pipeline (``verify._check.MAX_CHUNK_ELEMENTS``, 2**20 elements). A larger one is streamed
the way the plain loss streams a shape (:func:`verify._kernel_plan.aligned_chunking`): the
kernel is called on whole sequences ``[b, T, V]`` where ``T·V`` fits a chunk, else on windows
``[1, t, V]`` of ``t`` positions of one sequence (``t`` dividing ``T``); without a sequence axis,
on ``n`` rows ``[n, V]``. Each call is a batch of its own, judged alone:

* **what a streamed mean means**: each call is a batch of ``b`` sequences or a window of ``t``
  positions, and its ``mean`` divides by that call's denominator
  :math:`D = \sum_{r \in \text{call}} m_r w_{t_r}` (the rows of the call for probability
  targets) — as a kernel computes it from what it is given, and as a training loop that
  accumulates gradients over micro-batches calls it. A call whose every row is ignored has
  D = 0: PyTorch's mean is NaN there and its gradient zero, as in a whole cell. ``sum`` and
  ``none`` do not depend on the batch: a streamed cell is then the whole cell, row by row;
* **the same rows, whatever the chunking**: the draws come from
  :class:`verify._stream.StreamedDraws` (a row's draws depend on the seed, the vocabulary, the
  label kind and the row only), the ignored rows are chosen over all ``B·T`` rows from the seed
  (:func:`._variant.ignored_rows`), and the per-row upstream gradient of ``none`` is
  :func:`._variant.row_pattern` over all rows, sliced per call;
* **judged call by call**: each call's atol is scaled by its own gradient's scale
  (``_variant_cells._scaled_tolerance``: max|g·m|·max w / D of that call), and the cell's
  explanation gives the range of atols used; the calls' measurements combine into the cell's
  (:meth:`verify._measure.Measurement.combine`, the worst element's index offset by its call's
  first row), one cell per dtype; a disagreeing cell's counterexample shrinks the batch of the
  call that holds its worst element (:mod:`._batch_shrink`);
* **memory**: one call in flight (at most ``max(2**20, V)`` elements in every dtype), two
  blocks of draws, and a few bytes per row (the ignored rows, the per-row upstream gradient) —
  flat in ``B·T``; :func:`verify._limits.streamed_variant_bytes` bounds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivation import Loss

from . import _inputs, _variant
from ._kernel_plan import Layout, aligned_chunking
from ._stream import StreamedDraws


def call_rows(layout: Layout | None, rows: int, classes: int,
              max_elements: int | None) -> int | None:
    """Rows per call of a streamed cell, or None when the cell is one batch (no shape, or its
    ``rows × classes`` fit ``max_elements``)."""
    if layout is None or max_elements is None or rows * classes <= max_elements:
        return None
    if layout.sequence is None:
        return max(1, max_elements // classes)
    size, _ = aligned_chunking(layout, max_elements, max_elements)
    return size


@dataclass(frozen=True)
class Call:
    """One call of a streamed cell: its rows ``[start, start + rows)``, as a batch of their own.

    Attributes:
        start: the cell's row where the call begins.
        draws: the call's draws.
        y: its labels as the pipeline carries them (:func:`._variant.encode`).
        reference: its reference: its slice of the upstream gradient, its own denominator.
    """

    start: int
    draws: _inputs.Draws
    y: np.ndarray
    reference: _variant.VariantReference

    @property
    def rows(self) -> int:
        return self.draws.rows


@dataclass(frozen=True)
class StreamedCell:
    """The rows of one streamed (classes, target kind): drawn by blocks as calls ask for them.

    Attributes:
        loss: the variant.
        draws: the cell's streamed draws (one-hot labels for index targets).
        kind: the target kind.
        seed: the check's seed.
        ignored: ``[rows]``, the rows whose target is ``ignore_index`` (None: probabilities).
        size: rows per call (the last call may hold fewer: whole sequences, or whole windows).
    """

    loss: Loss
    draws: StreamedDraws
    kind: str
    seed: int
    ignored: np.ndarray | None
    size: int

    @classmethod
    def make(cls, loss: Loss, seed: int, classes: int, kind: str, rows: int,
             size: int) -> StreamedCell:
        drawn = "onehot" if loss.targets == "indices" else kind
        draws = StreamedDraws(seed, classes, drawn, rows)
        ignored = (_variant.ignored_rows(kind, seed, rows, classes)
                   if loss.targets == "indices" else None)  # fmt: skip
        return cls(loss, draws, kind, seed, ignored, size)

    @property
    def rows(self) -> int:
        return self.draws.rows

    def starts(self) -> range:
        return range(0, self.rows, self.size)

    def call(self, start: int, mode: str) -> Call:
        """The call from row ``start`` (a multiple of :attr:`size`) with upstream gradient
        ``mode`` (:data:`._variant.GRAD_OUTPUTS`)."""
        return self._call(start, _variant.grad_output(self.loss, mode, self.rows, np.float64))

    def calls(self, mode: str) -> Iterator[Call]:
        """Every call of the cell, in order (the upstream gradient made once, then sliced)."""
        g = _variant.grad_output(self.loss, mode, self.rows, np.float64)
        for start in self.starts():
            yield self._call(start, g)

    def _call(self, start: int, g: Any) -> Call:
        stop = min(start + self.size, self.rows)
        part = self.draws.take(slice(start, stop))
        ignored = None if self.ignored is None else self.ignored[start:stop]
        y = _variant.encode(self.loss, part.labels, self.kind, self.seed, ignored)
        reference = _variant.VariantReference(self.loss, g[start:stop] if g.ndim else g,
                                              _variant.denominator(self.loss, y))
        return Call(start, part, y, reference)

    def holding(self, row: int) -> int:
        """The first row of the call that holds ``row``."""
        return row // self.size * self.size

    def ignored_count(self) -> int:
        return 0 if self.ignored is None else int(np.count_nonzero(self.ignored))


def atol_words(atol: float, used: list[float], calls: int) -> str:
    """How a streamed cell's atol was scaled, call by call (empty when no call scaled it)."""
    low, high = min(used), max(used)
    if low == high == atol:
        return ""
    span = f"{low:.3g} in each of" if low == high else f"from {low:.3g} to {high:.3g} over"
    return (f"; atol {atol:g} scaled call by call by each call's gradient scale max|g·m|·max "
            f"w/D: {span} {calls} calls (each call is a batch of its own: its mean divides by "
            "its own D)")


__all__ = ["Call", "StreamedCell", "atol_words", "call_rows"]
