"""Draws of LLM-shaped cells, made block by block when a chunk asks for them.

A cell of ``B·T`` rows at a vocabulary of 262,144 would hold 3 MiB of noise and labels a row if
drawn whole (:func:`verify._inputs.draw`): 6 GiB for 2,048 positions. :class:`StreamedDraws`
has the same :meth:`take` and ``rows``, but holds nothing of the rows: each block of
:data:`BLOCK_ELEMENTS` is drawn from its own generator, seeded with ``(seed, classes, purpose,
STREAMED, block)``, when a chunk of rows asks for it, and dropped after. So memory stays at a few
blocks whatever the batch, and the draws of a row depend only on the seed, the vocabulary, the
label kind and the row — not on the chunking. Rows 0–3 are adversarial, as in every cell.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _inputs
from ._options import LABEL_KINDS

BLOCK_ELEMENTS = 2**20
"""Elements of one block of draws (at least one row)."""

HELD_BLOCKS = 4
"""Blocks of draws kept at once: a call of two sequences' windows may straddle two blocks in
each (``verify._limits.STREAM_BLOCKS`` counts them)."""

STREAMED = 1
"""Marks the generators of streamed draws apart from those of whole draws."""

VALUES, PARTNERS, MASK = range(3)
"""The parts of a block's labels, each from a generator of its own."""


class StreamedDraws:
    """The draws of every cell with one vocabulary and label kind, ``rows`` of them, drawn by
    blocks on demand (:meth:`take` returns ordinary :class:`verify._inputs.Draws`).

    Attributes:
        noise: a zero-size-in-memory stand-in with the shape ``[rows, classes]`` (read for its
            shape only; the values come from :meth:`take`).
        mask: ``[classes]``, the classes the masked row sets to :math:`-\\infty`.
    """

    def __init__(self, seed: int, classes: int, labels: str, rows: int) -> None:
        self.seed, self.classes, self.kind = seed, classes, labels
        self.block_rows = max(1, BLOCK_ELEMENTS // classes)
        self.noise = np.broadcast_to(np.float32(0), (rows, classes))
        self._held: dict[int, _inputs.Draws] = {}
        first = self._block_labels(0)
        top = _inputs.first_largest(first)
        rng = self._generator(_inputs.LABELS, 0, MASK)
        self.mask = (rng.random(classes) < 0.5) & (np.arange(classes) != top[_inputs.MASKED])

    @property
    def rows(self) -> int:
        return self.noise.shape[0]

    def _block_labels(self, block: int) -> np.ndarray:
        start = block * self.block_rows
        n = min(self.block_rows, self.rows - start)
        rng = self._generator(_inputs.LABELS, block, VALUES)
        return _inputs._labels(self.kind, rng, n, self.classes)

    def _generator(self, purpose: int, block: int, part: int) -> np.random.Generator:
        """The generator of one part of one block: seeded with ``(seed, classes, purpose,
        STREAMED, label kind, block, part)``."""
        kind = LABEL_KINDS.index(self.kind)
        return _inputs.generator(self.seed, self.classes, purpose, STREAMED, kind, block, part)

    def _block(self, block: int) -> _inputs.Draws:
        """A block's draws, kept while it is among the :data:`HELD_BLOCKS` last asked for."""
        held = self._held.pop(block, None)
        if held is None:
            held = self._draw_block(block)
        self._held[block] = held
        while len(self._held) > HELD_BLOCKS:
            self._held.pop(next(iter(self._held)))
        return held

    def _draw_block(self, block: int) -> _inputs.Draws:
        start = block * self.block_rows
        n = min(self.block_rows, self.rows - start)
        rng = _inputs.generator(self.seed, self.classes, _inputs.NOISE, STREAMED, block)
        noise = rng.standard_normal((n, self.classes), dtype=np.float32)
        values = self._block_labels(block)
        top = _inputs.first_largest(values)
        offset = self._generator(_inputs.LABELS, block, PARTNERS).integers(
            1, max(self.classes, 2), n)
        partner = (top + offset) % self.classes if self.classes > 1 else top
        masked = _inputs.MASKED - start
        if 0 <= masked < n:
            row = np.where(self.mask, 0.0, values[masked])
            values[masked] = row / np.sum(row) if self.kind != "unnormalized" else row
        kind = np.minimum(np.arange(start, start + n), _inputs.RANDOM).astype(np.int32)
        return _inputs.Draws(noise, np.max(np.abs(noise), axis=-1), values, self.mask, top,
                             partner, kind)  # fmt: skip

    def take(self, rows: ArrayLike | slice) -> _inputs.Draws:
        """The draws of some rows (a slice, or indices in any order), drawn now from the blocks
        that hold them."""
        index = np.arange(self.rows)[rows]
        blocks = index // self.block_rows
        needed = np.unique(blocks)
        parts = [self._block(int(b)) for b in needed]
        starts = np.cumsum([0, *(len(part.noise_max) for part in parts)])
        local = starts[np.searchsorted(needed, blocks)] + index - blocks * self.block_rows

        def gather(name: str) -> np.ndarray:
            if len(parts) == 1:
                return getattr(parts[0], name)[local]
            return np.concatenate([getattr(part, name) for part in parts])[local]

        return _inputs.Draws(
            noise=gather("noise"), noise_max=gather("noise_max"), labels=gather("labels"),
            mask=self.mask, top=gather("top"), partner=gather("partner"),
            row_kind=gather("row_kind"),
        )
