"""Stage 4, explain: the evidence behind a verdict — the worst element, the line that reproduces
the cell and, for a disagreement, a shrunk counterexample as a runnable snippet.

Nothing here computes an opinion or judges: the counterexample's search (:mod:`._shrink`) is
handed a ``first_failing`` that does, by the pipeline that calls this stage.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import ml_dtypes  # noqa: F401 - registers bfloat16 with NumPy
import numpy as np

from . import _dtypes, _inputs
from ._measure import Measurement
from ._options import Options, Tolerance
from ._report import Worst, format_number
from ._shrink import FirstFailing, shrink
from ._snippet import snippet


def closed_form_spec(closed_form: Callable[..., Any]) -> str:
    """A closed form as ``--closed-form`` names it: ``module:qualified.name``.

    A function that cannot be imported by that name (a lambda, a function defined in
    ``__main__`` or inside another) still gets its name, so that its reproduce line fails with
    an error rather than silently checking σ − y instead.
    """
    module = getattr(closed_form, "__module__", None) or "__main__"
    name = getattr(closed_form, "__qualname__", None) or getattr(closed_form, "__name__", None)
    return f"{module}:{name or type(closed_form).__name__}"


def reproduce(options: Options, c: int, dtype: str, scale: float, kind: str) -> str:
    """The ``softmax-ce verify`` line that recomputes one cell: every option that shapes it
    (the closed form, the grid point, samples, seed, tolerances given)."""
    line = (
        f"softmax-ce verify --classes {c} --dtypes {dtype} --scales {format_number(scale)} "
        f"--labels {kind} --samples {options.samples} --seed {options.seed}"
    )
    if options.rtol is not None:
        line += f" --rtol {format_number(options.rtol)}"
    if options.atol is not None:
        line += f" --atol {format_number(options.atol)}"
    if options.closed_form is not None:
        line += f" --closed-form {shlex.quote(closed_form_spec(options.closed_form))}"
    return line


def worst(m: Measurement, classes: int) -> Worst:
    """The worst element of a measured cell, with its row's kind."""
    row, klass = divmod(int(m.worst_index), classes)
    return Worst(
        row=row,
        class_=klass,
        closed_form=float(m.worst_cf),
        autograd=float(m.worst_ag),
        reference=float(m.worst_ex),
        row_kind=_inputs.ROW_KINDS[min(row, _inputs.RANDOM)],
    )


def counterexample(
    first_failing: FirstFailing,
    closed_form: Callable[..., Any] | None,
    options: Options,
    z_row: np.ndarray,
    y_row: np.ndarray,
    where: Worst,
    c: int,
    dtype: str,
    scale: float,
    kind: str,
    tolerance: Tolerance,
) -> str | None:
    """A shrunk failing case near the worst row, as a runnable snippet, or None.

    Args:
        first_failing: judges one-row candidates of one class count alone (see
            :func:`verify._shrink.shrink`).
        closed_form: the user's closed form (None for σ − y), as the snippet names it.
        options: the check's options.
        z_row, y_row: the worst row's float64 inputs.
        where: the worst element.
        c, dtype, scale, kind: the cell.
        tolerance: the cell's tolerance.
    """
    found = shrink(first_failing, z_row, y_row, where.class_, kind != "unnormalized")
    if found is None:
        return None
    dtype_ = _dtypes.facts(dtype).dtype
    z, y = (np.asarray(v).astype(dtype_).astype(np.float64) for v in found)
    origin = (
        f"shrunk from row {where.row} of the cell classes={c}, dtype={dtype}, "
        f"scale={format_number(scale)}, labels={kind}, seed={options.seed}"
    )
    return snippet(
        closed_form, dtype=dtype, z=z.tolist(), y=y.tolist(), tolerance=tolerance, origin=origin
    )
