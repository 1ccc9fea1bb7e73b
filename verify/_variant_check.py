r"""``verify.check(closed_form, loss=Loss(...))``: the pipeline's stages, driven for a variant.

The stages are the plain check's (draw, opinions, judge, explain, report); what differs is the
grid and the reference. Each cell is one batch: the rows are never split or padded, because a
``mean`` divides by a sum over the whole batch and a kernel computes it from all the rows it is
given — except a cell with a shape whose rows × classes exceed a chunk, which is streamed
(:mod:`._variant_stream`): each call a batch of its own, its mean divided by that call's
denominator, the calls' measurements combined into the cell's. The grid: the class counts,
dtypes and scales asked for; the target kinds (:func:`._variant.kinds`: for index targets none,
a quarter and all rows ignored); and the upstream gradient, 1 and swept
(:data:`._variant.GRAD_OUTPUTS`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from derivation import Loss

from . import _batch_shrink, _dtypes, _inputs, _kernel_bridge, _limits, _variant, _variant_stream
from ._frameworks import name_of
from ._kernel_plan import Windows
from ._loss_options import check_labels
from ._options import Options, Tolerance
from ._report import Cell, Report, format_number
from ._variant_cells import batch_cells, streamed_cells


def claim_of(closed_form: Callable[..., Any] | None, loss: Loss) -> str:
    if closed_form is None:
        return _variant.DerivedClosedForm(loss).__name__
    return name_of(closed_form)


def check_variant(closed_form: Callable[..., Any] | None, loss: Loss, options: Options,
                  tolerances: dict[str, Tolerance],
                  progress: Callable[[int, int], None] | None,
                  finish: Callable[[list[Cell]], list[Cell]] | None = None,
                  windows: Windows | None = None) -> Report:
    """The report of a variant check (arguments already validated); ``finish``, when given, is
    applied to the cells of each batch as they are made (a kernel's writes into its inputs).
    With ``windows`` (a shape's calls) that take more than one call, each cell is streamed
    (:mod:`._variant_stream`: each call its own batch)."""
    fn = closed_form if closed_form is not None else _variant.DerivedClosedForm(loss)
    for c in options.classes:
        loss.weight_for(c)  # one weight per class, or a ValueError naming weight
    _representable(loss, options.dtypes)
    check_labels(loss, options.labels)
    kinds = _variant.kinds(loss, options.labels)
    _batch_shrink.reset_budget()
    rows = options.samples + _inputs.ADVERSARIAL_ROWS
    streamed_by = windows if windows is not None and windows.streams else None
    if streamed_by is not None:  # one call in flight (a shape's memory, as the CLI checks it)
        _limits.check_streamed(rows, streamed_by.layout.vocabulary, options.dtypes)
    with jax.enable_x64(True):
        _validate(fn, loss, options, rows if streamed_by is None else streamed_by.rows)
        if isinstance(fn, _kernel_bridge.Bridge):
            _probe(fn, loss, options)
        cells = []
        total = (len(options.classes) * len(kinds) * len(_variant.GRAD_OUTPUTS)
                 * len(options.scales) * len(options.dtypes))

        def made(batch: list[Cell]) -> None:
            cells.extend(batch if finish is None else finish(batch))
            if progress is not None:
                progress(len(cells), total)

        # A small batch waits, its programs run, until the next batch (of any size) is started:
        # then it is judged while JAX computes that one. (A kernel's calls, and the writes into
        # its inputs found for a batch, are each batch's own: one at a time.)
        waiting = None
        for c in options.classes:  # with a shape: V alone
            pipelined = (rows * c <= _limits.VARIANT_PIPELINED_ELEMENTS
                         and not isinstance(fn, _kernel_bridge.Bridge))
            noise = None if streamed_by else _inputs.draw_noise(options.seed, c, options.samples)
            for kind in kinds:
                if streamed_by:
                    streamed = _variant_stream.StreamedCell.make(loss, options.seed, kind,
                                                                 streamed_by)
                else:
                    drawn = "onehot" if loss.targets == "indices" else kind
                    draws = _inputs.draw(options.seed, c, drawn, options.samples, noise)
                    y = _variant.encode(loss, draws.labels, kind, options.seed)
                    denominator = _variant.denominator(loss, y)
                for mode in _variant.GRAD_OUTPUTS:
                    if not streamed_by:
                        g = _variant.grad_output(loss, mode, draws.rows, np.float64)
                        reference = _variant.VariantReference(loss, g, denominator)
                    for scale in options.scales:
                        if streamed_by:
                            made(streamed_cells(fn, mode, streamed, options, c, scale,
                                                tolerances))
                            continue
                        started = batch_cells(fn, mode, reference, options, draws, y, c, scale,
                                              kind, tolerances)
                        if waiting is not None:
                            made(waiting())
                        waiting = started if pipelined else None
                        if not pipelined:
                            made(started())
                        started = None  # the batch judged is let go before the next is drawn
        if waiting is not None:
            made(waiting())
    order = {key: n for n, key in enumerate(itertools.product(
        options.classes, options.dtypes, options.scales, kinds, _variant.GRAD_OUTPUTS))}
    cells.sort(key=lambda cell: order[cell.classes, cell.dtype, cell.scale, cell.labels,
                                      _mode_of(loss, cell.grad_output)])
    note = where_it_differs(cells)
    if note:
        cells = [dataclasses.replace(cell, explanation=f"{cell.explanation}; {note}")
                 if cell.verdict == "disagree" else cell for cell in cells]
    return Report(claim=claim_of(closed_form, loss), seed=options.seed,
                  tolerances=MappingProxyType(tolerances), cells=tuple(cells), loss=loss)


_AXES = {"labels": "targets", "grad_output": "grad_output", "dtype": "dtype", "scale": "scale",
         "classes": "classes"}


def where_it_differs(cells: list[Cell]) -> str:
    """Which axes of the grid the disagreement follows, in words: e.g. ``disagrees with
    grad_output 0.75, not with 1`` (empty when no cell disagrees, or when no one axis separates
    the cells that do from those that do not)."""
    bad = [cell for cell in cells if cell.verdict == "disagree"]
    if not bad:
        return ""
    parts = []
    for field, name in _AXES.items():
        values = list(dict.fromkeys(getattr(cell, field) for cell in cells))
        failing = [v for v in values if any(getattr(c, field) == v for c in bad)]
        passing = [v for v in values if v not in failing]
        if failing and passing:
            shown = lambda vs: ", ".join(str(v) for v in vs)  # noqa: E731
            parts.append(f"{name} {shown(failing)}, not {shown(passing)}")
    if not parts:  # no one axis separates them: every cell, or no pattern to name
        return "it disagrees in every cell of the grid" if len(bad) == len(cells) else ""
    return "it disagrees with " + "; with ".join(parts)


def _mode_of(loss: Loss, grad_output: str | None) -> str:
    return next(m for m in _variant.GRAD_OUTPUTS
                if _variant.describe_grad_output(loss, m) == grad_output)


_VALIDATED: set[tuple[Any, ...]] = set()
"""(kernel, loss, dtype, shape) already traced without fault: not traced again."""


def _validate(fn: Callable[..., Any], loss: Loss, options: Options, rows: int) -> None:
    """Traces the kernel on every (dtype, c) at the shape ``[rows, c]`` it is called on (a
    cell's batch, or a streamed cell's calls, all of one shape) before anything is computed.
    The derived closed form is this package's, traced by its own tests: not traced here."""
    if type(fn) is _variant.DerivedClosedForm:
        return
    for dtype, c in itertools.product(options.dtypes, options.classes):
        _validate_shape(fn, loss, dtype, rows, c)


def _validate_shape(fn: Callable[..., Any], loss: Loss, dtype: str, rows: int, c: int) -> None:
    """Traces the kernel on ``[rows, c]`` logits of ``dtype`` (once a process per shape)."""
    key = (fn, loss, dtype, rows, c)
    try:
        if key in _VALIDATED:
            return
    except TypeError:  # an unhashable kernel: traced every time
        key = None
    spec = jax.ShapeDtypeStruct((rows, c), _dtypes.facts(dtype).dtype)
    g = _variant.grad_output(loss, _variant.GRAD_OUTPUTS[1], rows, spec.dtype)
    try:
        out = jax.eval_shape(lambda z, y: _variant.bind(fn, loss, z, y, g), spec, spec)
    except (Exception, SystemExit) as error:  # the user's code: a bad closed form (even
        first = (str(error).strip().splitlines() or [""])[0]  # sys.exit); one line
        raise ValueError(
            f"closed_form: {claim_of(fn, loss)} raised {type(error).__name__}: {first} on "
            f"{dtype} logits of shape {spec.shape}; expected a JAX-traceable "
            "(z, targets, grad_output) -> gradient") from error
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != spec.shape:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"closed_form: expected an array of shape (rows, c) = {spec.shape},"
                         f" got {shape}")
    if not jnp.issubdtype(out.dtype, jnp.floating) or out.dtype != spec.dtype:
        raise TypeError(
            f"closed_form: {claim_of(fn, loss)} returns {out.dtype} on {dtype} logits; "
            f"expected a real floating-point gradient in the logits' dtype {dtype} (return "
            "grad.astype(z.dtype))")
    if key is not None:
        _VALIDATED.add(key)


def _probe(fn: _kernel_bridge.Bridge, loss: Loss, options: Options) -> None:
    """Calls a torch or NumPy kernel once per (dtype, c) on a few rows of zero logits, every
    target class 0 (none ignored), so that a kernel that raises on any input is one error
    before anything is measured; an exception on a later batch is a ``disagree`` cell."""
    rows = _kernel_bridge.PROBE_ROWS
    for dtype, c in itertools.product(options.dtypes, options.classes):
        labels = np.zeros((rows, c))
        labels[:, 0] = 1.0
        y = _variant.encode(loss, labels, "indices", options.seed)
        z = jnp.zeros((rows, c), _dtypes.facts(dtype).dtype)
        g = _variant.grad_output(loss, _variant.GRAD_OUTPUTS[0], rows, z.dtype)
        _variant.bind(fn, loss, z, jnp.asarray(y, z.dtype), g)
        _, errors = fn.take()  # nothing carried over; what the probe raised, raised here
        if errors:
            raise next(iter(errors.values()))


def _representable(loss: Loss, dtypes: tuple[str, ...]) -> None:
    """Refuses a temperature, softcap or weight that rounds to zero or infinity in a checked
    dtype (as a kernel holds it, e.g. PyTorch's ``weight`` in the logits' dtype), or a z-loss
    that rounds to infinity: every cell would be NaN on both sides, blamed on the closed form.

    Raises:
        ValueError: ``temperature: ...``, ``softcap: ...``, ``weight: ...`` or ``z_loss: ...``.
    """
    given = {"temperature": (loss.temperature,), "softcap": (loss.softcap,) if loss.softcap
             else (), "weight": loss.weight or (), "z_loss": (loss.z_loss,) if loss.z_loss
             else ()}
    for dtype in dtypes:
        facts = _dtypes.facts(dtype)
        for name, values in given.items():
            for value in values:
                with np.errstate(over="ignore", under="ignore"):
                    rounded = float(np.asarray(value, facts.dtype).astype(np.float64))
                if not np.isfinite(rounded) or (rounded == 0 and name != "z_loss"):
                    stays = "finite" if name == "z_loss" else "nonzero and finite"
                    raise ValueError(
                        f"{name}: {value!r} rounds to {rounded:g} in {dtype}; expected a value "
                        f"that stays {stays} there (at most {facts.max:g})")


__all__ = ["check_variant", "claim_of", "format_number"]
