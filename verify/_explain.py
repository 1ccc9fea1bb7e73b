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
from ._frameworks import Kernel
from ._kernel_plan import Layout
from ._kernel_snippet import kernel_snippet
from ._shrink import FirstFailing, shrink
from ._snippet import imported_as, snippet


def closed_form_spec(closed_form: Callable[..., Any]) -> str:
    """A closed form as ``--closed-form`` names it: ``module:qualified.name``.

    A function that cannot be imported by that name (a lambda, a function defined in
    ``__main__`` or inside another) still gets its name, so that its reproduce line fails with
    an error rather than silently checking σ − y instead.
    """
    import inspect

    if not inspect.isfunction(closed_form):  # functools.partial, an object kept in a module
        where = imported_as(closed_form)
        if where is not None:
            return f"{where[0]}:{where[1]}"
    module = getattr(closed_form, "__module__", None) or "__main__"
    name = getattr(closed_form, "__qualname__", None) or getattr(closed_form, "__name__", None)
    return f"{module}:{name or type(closed_form).__name__}"


def reproduce(
    options: Options,
    c: int,
    dtype: str,
    scale: float,
    kind: str | None,
    layout: Layout | None = None,
    framework: str = "jax",
    device: str = "cpu",
) -> str:
    """The ``softmax-ce verify`` line that recomputes one cell: every option that shapes it
    (the closed form, the grid point — ``--shape`` in place of ``--classes`` and ``--samples``
    where the check had a shape —, samples, seed, tolerances given, framework and device).
    ``kind`` None leaves ``--labels`` out (index targets: their kinds are their own)."""
    grid = f"--classes {c}" if layout is None else f"--shape {layout.flag()}"
    rows = f" --samples {options.samples}" if layout is None else ""
    labels = "" if kind is None else f" --labels {kind}"
    line = (
        f"softmax-ce verify {grid} --dtypes {dtype} --scales {format_number(scale)}"
        f"{labels}{rows} --seed {options.seed}"
    )
    if framework != "jax":
        line += f" --framework {framework}"
    if device != "cpu":
        line += f" --device {device}"
    if options.rtol is not None:
        line += f" --rtol {format_number(options.rtol)}"
    if options.atol is not None:
        line += f" --atol {format_number(options.atol)}"
    if options.closed_form is not None:
        line += f" --closed-form {shlex.quote(closed_form_spec(options.closed_form))}"
    return line


def worst(m: Measurement, classes: int, layout: Layout | None = None) -> Worst:
    """The worst element of a measured cell, with its row's kind (and its batch and position
    where the logits have a sequence axis)."""
    row, klass = divmod(int(m.worst_index), classes)
    position = None if layout is None else layout.position(row)
    return Worst(
        row=row,
        class_=klass,
        closed_form=float(m.worst_cf),
        autograd=float(m.worst_ag),
        reference=float(m.worst_ex),
        row_kind=_inputs.ROW_KINDS[min(row, _inputs.RANDOM)],
        batch=None if position is None else position[0],
        position=None if position is None else position[1],
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
    kernel: Kernel | None = None,
    sequence: bool = False,
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
        kernel: a kernel taking ``grad_output``, whose snippet is written in its framework.
        sequence: the function saw the row as one position of one sequence, ``[1, 1, V]``
            (a kernel, or a two-argument JAX function checked with a shape).
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
    if kernel is not None and kernel.three_arguments:
        return kernel_snippet(
            kernel.fn, framework=kernel.framework, device=kernel.device, dtype=dtype,
            z=z.tolist(), y=y.tolist(), tolerance=tolerance, origin=origin, sequence=sequence,
        )
    return snippet(
        closed_form, dtype=dtype, z=z.tolist(), y=y.tolist(), tolerance=tolerance, origin=origin,
        sequence=sequence,
    )


def written(
    kernel: Kernel,
    draws: _inputs.Draws,
    c: int,
    dtype: str,
    scale: float,
    kind: str,
    tolerance: Tolerance,
    seed: int,
    sequence: bool = False,
) -> str | None:
    """A snippet that shows a kernel writing into its inputs, on the cell's first random row
    (no shrinking: any input shows a write)."""
    if kernel.framework == "jax":
        return None
    facts = _dtypes.facts(dtype)
    row = min(_inputs.RANDOM, draws.rows - 1)
    one_row = draws.take(np.array([row]))
    z = _inputs.logits(one_row, scale, facts.far_gap(c))[0]
    z, y = (np.asarray(v).astype(facts.dtype).astype(np.float64) for v in (z, one_row.labels[0]))
    origin = (
        f"row {row} of the cell classes={c}, dtype={dtype}, scale={format_number(scale)}, "
        f"labels={kind}, seed={seed}: the kernel writes into its inputs"
    )
    return kernel_snippet(
        kernel.fn, framework=kernel.framework, device=kernel.device, dtype=dtype,
        z=z.tolist(), y=y.tolist(), tolerance=tolerance, origin=origin, sequence=sequence,
    )
