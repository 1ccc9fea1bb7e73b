r"""A loss variant's LLM-shaped cell, streamed: its rows cut into calls, each call its own batch.

A variant's cell is drawn and called whole while its ``B·T × V`` logits fit one chunk of the
plain pipeline (``verify._check.MAX_CHUNK_ELEMENTS``, 2**20 elements). A larger one is streamed
the way the plain loss streams a shape (:func:`verify._kernel_plan.windows`): the kernel is
called on whole sequences ``[b, T, V]``, at least two a call, where two fit a chunk, else on
windows ``[2, t, V]`` of ``t`` positions of two sequences at once (``[1, t, V]`` for a batch
of one sequence, ``[b, 1, V]`` where a sequence is one position long or a call holds fewer
than four rows) — so that a kernel wrong only across sequences (a mean taken per sequence,
``grad_output`` read as ``[T, B]``) or across positions is wrong in every call; without a
sequence axis, on ``n`` rows ``[n, V]``. Every call has the same shape: the last group of
sequences and the last window are moved back to end at the batch's end, and the rows they
repeat are not counted again. Each call is a batch of its own, judged alone:

* **what a streamed mean means**: each call is a batch of ``b`` sequences or a window of ``t``
  positions, and its ``mean`` divides by that call's denominator
  :math:`D = \sum_{r \in \text{call}} m_r w_{t_r}` (the rows of the call for probability
  targets) — as a kernel computes it from what it is given, and as a training loop that
  accumulates gradients over micro-batches calls it. A call whose every row is ignored has
  D = 0: PyTorch's mean is NaN there and its gradient zero, as in a whole cell. ``sum`` and
  ``none`` do not depend on the batch: a streamed cell is then the whole cell, row by row;
* **the same rows, whatever the calls**: the draws come from
  :class:`verify._stream.StreamedDraws` (a row's draws depend on the seed, the vocabulary, the
  label kind and the row only), the ignored rows are chosen over all ``B·T`` rows from the seed
  (:func:`._variant.ignored_rows`), and the per-row upstream gradient of ``none`` is
  :func:`._variant.row_pattern` over all rows, gathered per call;
* **judged call by call**: each call's atol is scaled by its own gradient's scale
  (``_variant_cells._scaled_tolerance``: max|g·m|·max w / D of that call), and the cell's
  explanation gives the range of atols used; the calls' measurements (of the rows each counts)
  combine into the cell's (:meth:`verify._measure.Measurement.combine`, the worst element's
  index mapped to the cell's row), one cell per dtype; a disagreeing cell's counterexample
  shrinks the batch of the call that counts its worst element (:mod:`._batch_shrink`);
* **memory**: one call in flight (at most ``max(2**20, V)`` elements in every dtype), a few
  blocks of draws, and a few bytes per row (the ignored rows, the per-row upstream gradient) —
  flat in ``B·T``; :func:`verify._limits.streamed_variant_bytes` bounds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivation import Loss

from . import _inputs, _kernel_plan, _variant
from ._kernel_plan import Windows
from ._stream import StreamedDraws


@dataclass(frozen=True)
class Call:
    """One call of a streamed cell: its rows (:class:`verify._kernel_plan.Call`), as a batch of
    their own.

    Attributes:
        rows: which of the cell's rows it holds, and which it counts.
        draws: the call's draws.
        y: its labels as the pipeline carries them (:func:`._variant.encode`).
        reference: its reference: its rows' upstream gradient, its own denominator.
    """

    rows: _kernel_plan.Call
    draws: _inputs.Draws
    y: np.ndarray
    reference: _variant.VariantReference


@dataclass(frozen=True)
class StreamedCell:
    """The rows of one streamed (classes, target kind): drawn by blocks as calls ask for them.

    Attributes:
        loss: the variant.
        draws: the cell's streamed draws (one-hot labels for index targets).
        kind: the target kind.
        seed: the check's seed.
        ignored: ``[rows]``, the rows whose target is ``ignore_index`` (None: probabilities).
        windows: how the rows are cut into calls.
    """

    loss: Loss
    draws: StreamedDraws
    kind: str
    seed: int
    ignored: np.ndarray | None
    windows: Windows

    @classmethod
    def make(cls, loss: Loss, seed: int, kind: str, windows: Windows) -> StreamedCell:
        classes, rows = windows.layout.vocabulary, windows.layout.rows
        drawn = "onehot" if loss.targets == "indices" else kind
        draws = StreamedDraws(seed, classes, drawn, rows)
        ignored = (_variant.ignored_rows(kind, seed, rows, classes)
                   if loss.targets == "indices" else None)  # fmt: skip
        return cls(loss, draws, kind, seed, ignored, windows)

    @property
    def rows(self) -> int:
        return self.draws.rows

    def holding(self, row: int, mode: str) -> Call:
        """The call that counts ``row``, with upstream gradient ``mode``
        (:data:`._variant.GRAD_OUTPUTS`)."""
        g = _variant.grad_output(self.loss, mode, self.rows, np.float64)
        return self._call(self.windows.holding(row), g)

    def calls(self, mode: str) -> Iterator[Call]:
        """Every call of the cell, in order (the upstream gradient made once, then gathered)."""
        g = _variant.grad_output(self.loss, mode, self.rows, np.float64)
        for rows in self.windows.calls():
            yield self._call(rows, g)

    def _call(self, rows: _kernel_plan.Call, g: Any) -> Call:
        part = self.draws.take(rows.index)
        ignored = None if self.ignored is None else self.ignored[rows.index]
        y = _variant.encode(self.loss, part.labels, self.kind, self.seed, ignored)
        reference = _variant.VariantReference(self.loss, g[rows.index] if g.ndim else g,
                                              _variant.denominator(self.loss, y))
        return Call(rows, part, y, reference)

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


__all__ = ["Call", "StreamedCell", "atol_words"]
