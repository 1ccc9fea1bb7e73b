"""The check's results as frozen records: a :class:`Report` of :class:`Cell` s (no JAX here).

Field names are the JSON keys of ``softmax-ce.verify/1``; rendering lives in ``_render`` and
``_plot`` as functions of these records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING

from typing import TYPE_CHECKING

from ._options import Tolerance

if TYPE_CHECKING:
    from derivation._loss import Loss
    from ._frameworks import Write

SCHEMA = "softmax-ce.verify/1"


def format_number(value: float) -> str:
    """The shortest text that reads back as ``value``: ``100`` for 100.0, ``0.1``, ``1e-07``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, slots=True)
class Worst:
    """The worst element: where the closed form (or jax.grad) is NaN or inf, else of the
    elements that disagree — or, if none does, of all — the one farthest off in ULPs.

    Attributes:
        row: the row in the cell (rows 0–3 are the adversarial ones).
        class_: the class (JSON key ``"class"``).
        closed_form: the closed form's value, in the cell's dtype.
        autograd: ``jax.grad`` in the cell's dtype.
        reference: the exact gradient, float64 ``jax.grad`` at the same rounded inputs.
        row_kind: ``"far-above"``, ``"ties"``, ``"all-equal"``, ``"masked"`` or ``"random"``.
        batch, position: where the row stands in logits ``[batch, sequence, vocabulary]``
            (``verify.check(shape=(B, T, V))``), else None.
    """

    row: int
    class_: int
    closed_form: float
    autograd: float
    reference: float
    row_kind: str
    batch: int | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class AutogradCheck:
    """Float64 ``jax.grad`` checked along one random direction per row.

    Attributes:
        rows: how many rows were checked.
        forward_mode: the largest relative discrepancy of ``jax.jvp`` from ⟨grad, v⟩.
        finite_difference: the same for central finite differences.
        ok: both within their bounds.
    """

    rows: int
    forward_mode: float
    finite_difference: float
    ok: bool


@dataclass(frozen=True, slots=True)
class Cell:
    """One (classes, dtype, scale, labels) cell of the grid.

    Errors are the closed form's, against the exact gradient (float64 ``jax.grad`` at the inputs
    rounded to the dtype). ULPs are the dtype's, taken at the size of the gradient's terms
    :math:`|\\sigma \\sum y| + |y|` rather than at the gradient itself: where the terms cancel
    (σ_p ≈ 1 = y_p) the ULP of the tiny result would measure the cancellation, which every
    evaluation in that dtype suffers, not the closed form. Below the dtype's smallest normal
    number (where XLA on CPU flushes float32 and bfloat16 to zero) the unit is that number.
    ``None`` where a cell is
    ``undefined`` (or where the value is not finite, e.g. a closed form that returned NaN).

    Attributes:
        classes, dtype, scale, labels, samples: the cell; ``samples`` random rows are drawn, and
            4 adversarial rows come on top (``rows`` in all).
        max_abs_err, max_rel_err, max_ulp: the closed form's largest errors: absolute,
            relative to the exact gradient (at least the dtype's smallest normal number), and
            in ULPs of the terms.
        agree_fraction: the fraction of elements that agree.
        verdict: ``"agree"``, ``"expected"``, ``"undefined"`` or ``"disagree"``.
        explanation: one line saying why.
        worst: the worst element (a side not finite, or the farthest off in ULPs, disagreeing
            elements first).
        reproduce: the ``softmax-ce verify`` line that recomputes this cell.
        rows: the rows measured, ``samples + 4``.
        within_tolerance: the fraction of elements within tolerance of ``jax.grad``.
        autograd_max_ulp: ``jax.grad``'s own largest error in the dtype, in ULPs.
        label_sum_miss: the largest :math:`|\\sum y - 1|` over rows, labels rounded to the dtype.
        residual_match: the fraction of the predicted residual :math:`(\\sum y - 1)\\sigma`
            that the closed form shows (least squares); ``None`` where none is predicted.
        autograd_check: float64 ``jax.grad`` against forward mode and finite differences.
        counterexample: for a ``disagree`` cell, a shrunk failing case as a runnable Python
            snippet, or ``None``.
        grad_output: for a loss variant, the upstream gradient of the cell (``"1"``, ``"0.75"``,
            ``"±(0.5 to 2) in steps of 1/8, drawn by row"``); ``None`` for the plain loss.
        writes: the inputs a kernel wrote into, in the first call that wrote (such a cell is
            ``disagree``, whatever the kernel returned, but for an ``undefined`` one, whose
            explanation still says what it wrote); empty when none.
    """

    classes: int
    dtype: str
    scale: float
    labels: str
    samples: int
    max_abs_err: float | None
    max_rel_err: float | None
    max_ulp: float | None
    agree_fraction: float | None
    verdict: str
    explanation: str
    worst: Worst | None
    reproduce: str
    rows: int
    within_tolerance: float | None
    autograd_max_ulp: float | None
    label_sum_miss: float | None
    residual_match: float | None
    autograd_check: AutogradCheck | None
    counterexample: str | None
    grad_output: str | None = None
    writes: tuple[Write, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """The map of where a closed form agrees with ``jax.grad``.

    Attributes:
        claim: the closed form checked: ``"softmax(z) - y"`` or the function's name.
        seed: the seed every draw came from.
        tolerances: the tolerance used per dtype.
        cells: one :class:`Cell` per (classes, dtype, scale, labels), in that nesting order
            (for a loss variant, per upstream gradient too).
        loss: the loss variant checked, or ``None`` for the plain loss.
    """

    claim: str
    seed: int
    tolerances: Mapping[str, Tolerance]
    cells: tuple[Cell, ...]
    loss: Loss | None = None

    @property
    def ok(self) -> bool:
        """True when no cell disagrees: each agrees, is expected, or is undefined."""
        return all(cell.verdict != "disagree" for cell in self.cells)

    @property
    def summary(self) -> dict[str, int]:
        """Cells in all, then per verdict."""
        counts = {"cells": len(self.cells)}
        for verdict in ("agree", "disagree", "expected", "undefined"):
            counts[verdict] = sum(cell.verdict == verdict for cell in self.cells)
        return counts

    def to_json(self) -> str:
        """The report as ``softmax-ce.verify/1`` JSON; same inputs and seed give the same bytes."""
        from ._render import to_json

        return to_json(self)

    def to_markdown(self) -> str:
        """The report as Markdown: a table of cells, then each cell that does not agree."""
        from ._render import to_markdown

        return to_markdown(self)

    def to_text(self, width: int = 120) -> str:
        """The report as a plain-text table (Rich, no ANSI codes)."""
        from ._render import to_text

        return to_text(self, width=width)

    def plot(self, path: str | PathLike[str]) -> None:
        """Writes the heatmap of max ULP error (scale × dtype, a panel per label kind) as PNG."""
        from ._plot import plot

        plot(self, path)
