"""Stages 3 and 4 for a cell of the plain loss: its combined measurement judged, explained (the
worst element, the reproduce line, a shrunk counterexample) and recorded as a :class:`Cell`.

:func:`plain_cell` is what :mod:`._check` calls once a cell's chunks are all measured; a loss
variant's cells are made in :mod:`._variant_cells`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from . import _batch_shrink, _dtypes, _explain, _inputs, _judge, _measure, _opinions, _rule
from ._frameworks import Kernel, Write, with_writes
from ._kernel_bridge import raised
from ._kernel_plan import Layout
from ._options import Options, Tolerance
from ._reference import Reference
from ._report import AutogradCheck, Cell
from ._stream import StreamedDraws


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _whole(draws: Any, chunk_elements: int) -> tuple[_inputs.Draws | None, str]:
    """The cell's draws whole, for shrinking its batch: streamed draws are made whole only
    while they fit a chunk (memory stays bounded whatever the batch)."""
    if not isinstance(draws, StreamedDraws):
        return draws.take(slice(0, draws.rows)), ""  # every row drawn
    if draws.rows * draws.classes > chunk_elements:
        return None, (f"the batch of {draws.rows} rows × {draws.classes} classes is not drawn "
                      "whole to be shrunk")
    return draws.take(slice(0, draws.rows)), ""


def plain_cell(
    fn: Callable[..., Any],
    kernel: Kernel | None,
    layout: Layout | None,
    framework: str,
    reference: Reference,
    options: Options,
    draws: _inputs.Draws,
    c: int,
    dtype: str,
    scale: float,
    kind: str,
    tolerance: Tolerance,
    m: _measure.Measurement,
    writes: tuple[Write, ...],
    chunk_elements: int,
    shrink: bool = True,
) -> Cell:
    """One cell: judged, explained, recorded. ``writes`` are the inputs its kernel wrote into;
    a streamed cell's draws are made whole to shrink its batch only up to ``chunk_elements``;
    without ``shrink`` no counterexample is made (its kernel raised on the cell's batch)."""
    judgement = _judge.judge(m, dtype, _dtypes.facts(dtype).max, tolerance,
                             kind != "unnormalized")
    if writes:  # reported whatever the verdict (an undefined cell stays undefined)
        judgement = _judge.Judgement(*with_writes(judgement.verdict, judgement.explanation, writes))
    undefined = judgement.verdict == "undefined"
    n = int(m.elements)
    worst = None if undefined or not n else _explain.worst(m, c, layout)
    counterexample = None
    sequence = layout is not None and layout.sequence is not None
    if writes and judgement.verdict == "disagree" and kernel is not None:
        counterexample = _explain.written(kernel, draws, c, dtype, scale, kind, tolerance,
                                          options.seed, sequence)
    elif shrink and judgement.verdict == "disagree" and worst is not None \
            and _judge.autograd_ok(m):
        with _batch_shrink.shrinking(fn):
            counterexample, judgement = _shrunk(
                fn, kernel, reference, options, draws, worst, c, dtype, scale, kind, tolerance,
                sequence, judgement, chunk_elements)

    def fraction(count: Any) -> float | None:
        return None if undefined or not n else int(count) / n

    errors = undefined or bool(m.nonfinite_cf)
    return Cell(
        classes=c,
        dtype=dtype,
        scale=scale,
        labels=kind,
        samples=options.samples,
        max_abs_err=None if errors else _finite(m.max_abs_err),
        max_rel_err=None if errors else _finite(m.max_rel_err),
        max_ulp=None if errors else _finite(m.max_ulp),
        agree_fraction=fraction(m.agree),
        verdict=judgement.verdict,
        explanation=judgement.explanation,
        worst=worst,
        reproduce=_explain.reproduce(options, c, dtype, scale, kind, layout, framework,
                                     kernel.device if kernel is not None else "cpu"),
        rows=draws.rows,
        within_tolerance=fraction(m.within),
        autograd_max_ulp=None if undefined else _finite(m.autograd_max_ulp),
        label_sum_miss=None if undefined else _finite(m.label_sum_miss),
        residual_match=None if undefined else _judge.residual_match(m),
        autograd_check=None
        if undefined
        else AutogradCheck(
            rows=int(m.checked_rows),
            forward_mode=float(m.forward_mode),
            finite_difference=float(m.finite_difference),
            ok=_judge.autograd_ok(m),
        ),
        counterexample=counterexample,
        writes=writes,
    )


SHRINK_BATCH = 64
"""Candidates judged per compiled call (padded), so each class count compiles once."""


def _shrunk(fn: Callable[..., Any], kernel: Kernel | None, reference: Reference,
            options: Options, draws: _inputs.Draws, worst: Any, c: int, dtype: str,
            scale: float, kind: str, tolerance: Tolerance, sequence: bool,
            judgement: _judge.Judgement, chunk_elements: int
            ) -> tuple[str | None, _judge.Judgement]:
    """A disagreeing cell's counterexample: its worst row shrunk alone, else its batch; or
    None, the judgement then saying why."""
    one_row = draws.take(np.array([worst.row]))
    z_row = _inputs.logits(one_row, scale, _dtypes.facts(dtype).far_gap(c))[0]
    counterexample = _explain.counterexample(
        functools.partial(_first_failing, fn, reference, dtype, tolerance),
        options.closed_form, options, z_row, one_row.labels[0], worst, c, dtype, scale,
        kind, tolerance, kernel=kernel, sequence=sequence,
    )
    if counterexample is not None:
        return counterexample, judgement
    # no row fails alone: shrink the batch (_batch_shrink)
    whole, why = _whole(draws, chunk_elements)
    if not _batch_shrink.kernel_time_left(fn):
        whole, why = None, _batch_shrink.NOT_SHRUNK.format(_batch_shrink.KERNEL_SHRINK_SECONDS)
    if whole is not None:
        z_all = _inputs.logits(whole, scale, _dtypes.facts(dtype).far_gap(c))
        counterexample, why = _batch_shrink.plain_counterexample(
            fn, options.closed_form, dtype, tolerance, z_all, whole.labels, options, c,
            scale, kind, worst.row, kernel)
    if counterexample is None:
        judgement = dataclasses.replace(
            judgement, explanation=f"{judgement.explanation}; no counterexample: {why}")
    return counterexample, judgement


def _first_failing(
    fn: Callable[..., Any],
    reference: Reference,
    dtype: str,
    tolerance: Tolerance,
    candidates: list[tuple[np.ndarray, np.ndarray]],
) -> int | None:
    """Stages 2 and 3 again, on one-row candidates (all of one class count), each judged alone:
    the index of the first that fails, or None — also when the closed form cannot be evaluated
    at this class count (it may be written for another)."""
    if not _batch_shrink.kernel_time_left(fn):  # the kernel's calls have had their time
        return None
    facts = _dtypes.facts(dtype)
    classes = candidates[0][0].shape[-1]
    spec = jax.ShapeDtypeStruct((1, classes), facts.dtype)
    with jax.enable_x64(True):
        try:
            shape = jax.eval_shape(fn, spec, spec).shape
        except Exception:  # noqa: BLE001 - the user's code; it fails elsewhere, not here
            return None
        if shape != spec.shape:
            return None
        for start in range(0, len(candidates), SHRINK_BATCH):
            batch = candidates[start : start + SHRINK_BATCH]
            count = len(batch)
            batch = batch + [batch[-1]] * (SHRINK_BATCH - count)
            z64 = np.stack([z for z, _ in batch]).astype(np.float64)
            y64 = np.stack([y for _, y in batch]).astype(np.float64)
            (out,) = _opinions.PROGRAMS.reference(  # no rows for the autograd check
                reference, (dtype,), z64[None], y64, np.ones((0, classes))
            )
            cf = np.asarray(_opinions.rows_alone(fn, out["z"], out["y"]))  # z, y in the dtype
            if raised(fn) or not _batch_shrink.kernel_time_left(fn):
                return None  # a kernel that cannot take these (written for others), or out of
                # time (its calls gave NaN)
            zr, yr = (np.asarray(out[k]).astype(np.float64) for k in ("z", "y"))
            ex = np.asarray(out["exact"])
            judged = _rule.elementwise(
                cf, np.asarray(out["autograd"]), ex, zr, yr, facts, tolerance.rtol,
                tolerance.atol, reference=reference,
                theory_inputs=tuple(np.asarray(out[k]) for k in ("sigma", "label", "label_sum")),
            )
            representable = np.all((np.isfinite(zr) | (zr < 0)) & np.isfinite(yr), axis=-1)
            failing = np.isfinite(ex) & ~judged.agree & ~judged.agree_corrected
            hits = np.flatnonzero((representable & np.any(failing, axis=-1))[:count])
            if hits.size:
                return start + int(hits[0])
    return None
