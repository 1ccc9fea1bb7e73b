"""``verify.check``: a closed-form gradient against ``jax.grad`` over a grid of cells.

The pipeline, one stage a module, data passing forward only:

1. **draw** (:mod:`._inputs`): the rows of every cell with one class count and label kind, in
   NumPy; a cell scales them and builds its adversarial rows;
2. **opinions** (:mod:`._opinions`): the closed form (its own call), ``jax.grad`` in the dtype,
   the exact float64 gradient and its self-check, chunk by chunk, as float64 NumPy arrays;
3. **judge** (:mod:`._rule` elementwise, :mod:`._measure` reduced, :mod:`._judge` the verdict);
4. **explain** (:mod:`._explain`): the worst element, the reproduce line, a shrunk
   counterexample;
5. **report** (:mod:`._report` records, rendered by :mod:`._render` and :mod:`._plot`).

This module drives them: it plans the chunks, starts the compilations of every shape ahead (in
background threads, while it draws), and feeds each stage's output to the next; a cell's
combined measurement is judged, explained and recorded in :mod:`._plain_cells` (a loss
variant's check is driven by :mod:`._variant_check`). The reference (:mod:`._reference`: the
loss and the derivation's predictions) travels through stages 2–4.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from derivation._loss import Loss

from . import _batch_shrink, _dtypes, _inputs, _measure, _opinions
from ._frameworks import Write, name_of
from ._kernel_bridge import probe
from ._kernel_options import validate_shape
from ._kernel_plan import (
    Plan,
    finish_variant_cells,
    layout,
    plan,
    variant_function,
)
from ._stream import StreamedDraws
from ._plain_cells import plain_cell
from ._options import (
    DEFAULT_CLASSES,
    DEFAULT_SAMPLES,
    DEFAULT_SCALES,
    DEFAULT_SEED,
    DTYPES,
    LABEL_KINDS,
    Options,
    Tolerance,
    tolerances_for,
    validate,
)
from ._reference import Reference, plain
from ._report import Report

MAX_CHUNK_ELEMENTS = 2**20
"""Elements per chunk of rows: c = 262,144 classes go 4 rows at a time."""

BLOCK_ELEMENTS = 2**16
"""Elements the judge takes at a time: its passes over a block stay in cache."""

MIN_BUCKET_ROWS = 64
"""Chunks have at least this many rows (padded, not counted), so small grids share programs."""

DEFAULT_CLAIM = "softmax(z) - y"


def _exits_are_errors(run: Callable[..., Report]) -> Callable[..., Report]:
    """``sys.exit`` inside the user's function, wherever the check calls it (tracing, a shrunk
    candidate, a compile thread), is a ValueError like its other exceptions: never the end of
    the caller's process with the function's exit code and no word."""
    @functools.wraps(run)
    def checked(*args: Any, **kwargs: Any) -> Report:
        try:
            return run(*args, **kwargs)
        except SystemExit as error:
            fn = args[0] if args else kwargs.get("closed_form")
            raise ValueError(f"closed_form: {name_of(fn)} raised SystemExit: {error.code} "
                             "during the check") from error

    return checked


@_exits_are_errors
def check(
    closed_form: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    *,
    classes: int | Iterable[int] = DEFAULT_CLASSES,
    dtypes: str | Iterable[str] = DTYPES,
    scales: float | Iterable[float] = DEFAULT_SCALES,
    labels: str | Iterable[str] = LABEL_KINDS,
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    rtol: float | None = None,
    atol: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    loss: Loss | None = None,
    framework: str = "jax",
    device: str = "cpu",
    shape: tuple[int, ...] | str | None = None,
) -> Report:
    r"""Checks a closed-form gradient of the softmax cross-entropy against ``jax.grad``.

    The loss is :math:`C = -\sum_{r,k} y_{rk} \log \mathrm{softmax}(z_r)_k` over ``[rows, c]``
    logits ``z`` and labels ``y``. For every cell (classes, dtype, scale, labels) the inputs are
    drawn (``samples`` rows of ``scale * N(0, 1)`` logits plus 4 adversarial rows, float64),
    rounded to the dtype, and three opinions are compared element by element: the closed form
    and ``jax.grad`` in the dtype, and the exact gradient, float64 ``jax.grad`` at the rounded
    inputs (itself checked against forward mode and central differences).

    Args:
        closed_form: a JAX-traceable ``(z, y) -> gradient`` on ``[rows, c]`` arrays; ``None``
            is σ(z) − y with the softmax computed stably. It runs with 64-bit types enabled,
            so arrays it creates without a dtype are 64-bit: follow the inputs' dtype.
        classes: class counts c >= 1.
        dtypes: names from :data:`verify.DTYPES`.
        scales: logit scales, finite and > 0.
        labels: names from :data:`verify.LABEL_KINDS`.
        samples: random rows per cell.
        seed: every draw comes from a NumPy generator seeded with it (and the cell's class
            count and label kind).
        rtol: overrides the relative tolerance of every dtype (:data:`verify.TOLERANCES`).
        atol: overrides the absolute tolerance of every dtype.
        progress: called as ``progress(done, total)`` after each cell.
        loss: a loss variant (:class:`verify.Loss`); then ``closed_form`` is a kernel's backward
            ``(z, targets, grad_output) -> gradient`` (``None``: the derivation's closed form
            for it) and the grid sweeps the targets and the upstream gradient too (see
            :mod:`._variant_check`). ``None`` or ``Loss()`` is the plain loss.
        framework: what ``closed_form`` is written in: ``"jax"``, ``"torch"`` or ``"numpy"``.
            A torch or NumPy function is a kernel ``(logits, targets, grad_output) ->
            grad_logits``, called on its own copies of the inputs in the cell's dtype (torch
            tensors, NumPy arrays; bfloat16 as ``ml_dtypes.bfloat16``), with the labels as
            ``targets`` and ``grad_output`` 2, its gradient halved (exact: the plain loss's
            own upstream gradient is 1); a JAX function may take these three arguments
            too. A kernel that writes into any of its inputs is ``disagree``, whatever it
            returns, and the explanation says which input.
        device: ``"cpu"``, or ``"cuda"`` for a torch kernel where ``torch.cuda.is_available()``.
        shape: ``(B, T, V)``: logits shaped ``[batch, sequence, vocabulary]``, or ``(rows, V)``;
            it sets the class count (V) and the rows (B·T, the first 4 adversarial), so leave
            ``classes`` and ``samples`` out. The function sees logits ``[b, t, V]``: the whole
            batch where it fits 2**20 elements, else calls of one shape gathered from it —
            whole sequences, at least two a call, or windows of ``t`` positions of two
            sequences at once (:func:`verify._kernel_plan.windows`) —, and the worst element
            is named by (batch, position, class). With a loss variant a
            batch past 2**20 elements is streamed too: each call is a batch of b sequences or
            a window of t positions; its mean divides by that call's denominator (see
            :mod:`verify._variant_stream`); memory stays one call's, whatever the batch.

    Returns:
        A :class:`verify.Report`, one :class:`verify.Cell` per (classes, dtype, scale, labels).

    Raises:
        ValueError: a bad argument, or a closed form that raises or returns the wrong shape;
            the message starts with the parameter's name. Nothing is computed before every
            argument has been checked (a kernel is called once on two rows of each dtype and
            class count for that).
        TypeError: ``closed_form`` is not callable or returns something that is not an array
            (for a kernel: not the framework's array, or not in the logits' dtype).

    Example:
        >>> import verify
        >>> report = verify.check(classes=10, dtypes="float32", scales=1.0, samples=16)
        >>> report.ok, report.cells[0].verdict
        (True, 'agree')
    """
    shaped = validate_shape(shape)
    if shaped is not None:
        layout(shaped)  # at least 5 rows, or a ValueError naming shape
        if tuple(np.atleast_1d(classes)) != DEFAULT_CLASSES or samples != DEFAULT_SAMPLES:
            raise ValueError(
                "shape: sets the class count (V) and the rows (B·T); leave classes and samples "
                "out"
            )
        classes, samples = shaped[-1], int(np.prod(shaped[:-1])) - _inputs.ADVERSARIAL_ROWS
    options = validate(
        closed_form,
        classes=classes,
        dtypes=dtypes,
        scales=scales,
        labels=labels,
        samples=samples,
        seed=seed,
        rtol=rtol,
        atol=atol,
        drawn_whole=shaped is None,  # a shape is streamed past a chunk, variant or not
        variant=isinstance(loss, Loss) and not loss.is_plain,
    )
    how = plan(options.closed_form, _traceable(None), framework, device, shaped,
               MAX_CHUNK_ELEMENTS)
    tolerances = tolerances_for(options.dtypes, options.rtol, options.atol)
    if loss is not None and not isinstance(loss, Loss):
        raise ValueError(f"loss: expected a verify.Loss or None, got {loss!r}")
    _batch_shrink.reset_budget()
    if loss is not None and not loss.is_plain:
        from ._variant_check import check_variant

        return check_variant(
            variant_function(how, options.closed_form), loss, options, tolerances, progress,
            finish=lambda cells: finish_variant_cells(cells, how, options, loss, framework),
            windows=how.windows,  # streamed past a chunk
        )
    fn, kernel = how.fn, how.kernel
    reference = plain()
    rows = options.samples + _inputs.ADVERSARIAL_ROWS
    # a kernel sees the cell's very rows: a tail it mishandles is not hidden by padding
    sizes = {c: chunking(rows, c, MAX_CHUNK_ELEMENTS, pad=how.kernel is None)
             for c in options.classes}
    if how.windows is not None and how.windows.view is not None:  # [b, t, V] calls
        sizes = {c: (how.windows.rows, _block(how.windows.rows, c)) for c in options.classes}
    with jax.enable_x64(True):
        if how.bridged:
            probe(fn, options.dtypes, options.classes)
        else:
            _check_closed_form(fn, options, {c: min(rows, size) for c, (size, _) in sizes.items()})
        for c, (size, _) in sizes.items():  # compile ahead, while drawing
            _opinions.PROGRAMS.prepare(reference, fn, options.dtypes, size, c, min(rows, size))
        cells = {}
        total = len(options.classes) * len(options.dtypes) * len(options.scales)
        total *= len(options.labels)
        parts: dict[tuple[int, str, float], list[dict[str, _measure.Measurement]]] = {}
        # One chunk ahead: JAX computes the next chunk's opinions while NumPy judges this one.
        ahead = None
        writes: dict[tuple[int, str, float], dict[str, tuple[Write, ...]]] = {}
        raised: dict[tuple[int, str, float, str], str] = {}
        for job in itertools.chain(_chunks(how, reference, options, sizes), [None]):
            if ahead is not None:
                key = (ahead.c, ahead.kind, ahead.scale)
                parts.setdefault(key, []).append(
                    _judge_chunk(ahead, reference, options, tolerances, sizes)
                )
                written = writes.setdefault(key, {})
                for dtype, found in ahead.writes.items():
                    written.setdefault(dtype, found)  # the first call that wrote
                for dtype, message in ahead.raised.items():
                    raised.setdefault((*key, dtype), message)
                if ahead.last:  # the cells of this (classes, labels, scale) are measured
                    group = parts.pop(key)
                    written = writes.pop(key)
                    for dtype in options.dtypes:
                        m = _measure.Measurement.combine([part[dtype] for part in group])
                        cell = plain_cell(
                            fn, kernel, how.layout, framework, reference, options, ahead.draws,
                            ahead.c, dtype, ahead.scale, ahead.kind, tolerances[dtype], m,
                            written.get(dtype, ()), MAX_CHUNK_ELEMENTS,
                            (*key, dtype) not in raised,
                        )
                        if (*key, dtype) in raised:
                            cell = dataclasses.replace(cell, verdict="disagree",
                                                       explanation=raised[(*key, dtype)],
                                                       counterexample=None)
                        cells[ahead.c, dtype, ahead.scale, ahead.kind] = cell
                        if progress is not None:
                            progress(len(cells), total)
            ahead = job
    order = itertools.product(options.classes, options.dtypes, options.scales, options.labels)
    return Report(
        claim=claim_of(options.closed_form),
        seed=options.seed,
        tolerances=MappingProxyType(tolerances),
        cells=tuple(cells[key] for key in order),
    )


def claim_of(closed_form: Callable[..., Any] | None) -> str:
    """What the report says was checked: ``"softmax(z) - y"``, or the function's name."""
    return DEFAULT_CLAIM if closed_form is None else name_of(closed_form)


def chunking(rows: int, classes: int, max_elements: int, pad: bool = True) -> tuple[int, int]:
    """Rows per chunk and rows per judging block.

    Chunks hold about ``max_elements`` (at least a row), as even as can be; with ``pad``, a
    chunk of fewer than :data:`MIN_BUCKET_ROWS` rows, or of up to twice that, is padded to that
    bucket where it fits, so that small grids with different ``samples`` share one compiled
    program (the padding rows, the last row repeated, are not counted; a kernel is never
    padded). Blocks hold about :data:`BLOCK_ELEMENTS` (at least a row); a chunk's last block may
    be shorter.
    """
    limit = max(max_elements, classes)
    chunks = -(-rows * classes // limit)
    size = -(-rows // chunks)
    for bucket in (MIN_BUCKET_ROWS, 2 * MIN_BUCKET_ROWS) if pad else ():
        if size <= bucket:
            size = max(size, min(bucket, limit // classes))
            break
    return size, max(1, min(size, BLOCK_ELEMENTS // classes))


def _traceable(closed_form: Callable[..., Any] | None) -> Callable[..., Any]:
    """The function to compile; a hashable stand-in for callables that are not hashable."""
    if closed_form is None:
        return _opinions.softmax_minus_labels
    try:
        hash(closed_form)
    except TypeError:
        return functools.partial(closed_form)
    return closed_form


_TRACEABLE: set[tuple[Callable[..., Any], str, int, int]] = set()
"""(closed form, dtype, rows, classes) already traced without fault in this process."""


def _check_closed_form(fn: Callable[..., Any], options: Options, sizes: dict[int, int]) -> None:
    """Traces the closed form on every (dtype, c) shape before anything is computed."""
    for dtype, c in itertools.product(options.dtypes, options.classes):
        if (fn, dtype, sizes[c], c) in _TRACEABLE:
            continue
        spec = jax.ShapeDtypeStruct((sizes[c], c), _dtypes.facts(dtype).dtype)
        try:
            out = jax.eval_shape(fn, spec, spec)
        except jax.errors.ConcretizationTypeError as error:  # bool(), if, while on a tracer
            raise ValueError(
                f"closed_form: {claim_of(fn)} uses Python control flow (if, while, and/or, "
                "bool()) on a traced value; use jnp.where(condition, a, b) instead"
            ) from error
        except (Exception, SystemExit) as error:  # the user's code: a bad closed form (even
            first = (str(error).strip().splitlines() or [""])[0]  # sys.exit); JAX's run on
            raise ValueError(
                f"closed_form: {claim_of(fn)} raised {type(error).__name__}: {first} on "
                f"{dtype} arrays of shape {spec.shape}; expected a JAX-traceable (z, y) -> "
                "gradient"
            ) from error
        if not isinstance(out, jax.ShapeDtypeStruct):
            raise TypeError(
                f"closed_form: expected an array of shape (rows, c) = {spec.shape}, "
                f"got {type(out).__name__}"
            )
        if out.shape != spec.shape:
            raise ValueError(
                f"closed_form: expected an array of shape (rows, c) = {spec.shape}, "
                f"got {tuple(out.shape)}"
            )
        if not jnp.issubdtype(out.dtype, jnp.floating):  # ints, bools, complex numbers
            raise TypeError(
                f"closed_form: {claim_of(fn)} returns {out.dtype} on {dtype} inputs; expected a "
                "real floating-point gradient (an integer, boolean or complex one is not judged)"
            )
        _TRACEABLE.add((fn, dtype, sizes[c], c))


def _block(size: int, classes: int) -> int:
    """Rows per judging block of a chunk of ``size`` rows that must be cut evenly: the largest
    divisor of ``size`` whose block holds at most :data:`BLOCK_ELEMENTS` (at least a row)."""
    return max((d for d in range(1, size + 1)
                if size % d == 0 and d * classes <= BLOCK_ELEMENTS), default=1)  # fmt: skip


def _row_calls(how: Plan, rows: int,
               size: int) -> Iterator[tuple[Any, np.ndarray, np.ndarray, int, bool]]:
    """The chunks of a cell's rows, in order: what to take of its draws, each chunk row's row
    of the cell, which rows it counts, the row that seeds its directions, and whether it is
    the last. With a sequence axis, the calls of :attr:`Plan.windows` (rows gathered
    ``[b, t, V]``); else ``size`` rows from each multiple of ``size``, the last chunk moved back
    to end at the last row or, with fewer rows than ``size``, padded by repeating the last row
    (neither counted again)."""
    if how.windows is not None and how.windows.view is not None:
        last = how.windows.count - 1
        for number, call in enumerate(how.windows.calls()):
            yield call.index, call.index, call.counted, call.first, number == last
        return
    for begin in range(0, rows, size):
        start = min(begin, max(rows - size, 0))
        index = np.minimum(start + np.arange(size), rows - 1)
        valid = (start + np.arange(size) >= begin) & (start + np.arange(size) < rows)
        taken = slice(start, start + size) if rows >= size else index
        yield taken, index, valid, begin, begin + size >= rows


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """A chunk of rows of the cells of one (classes, labels, scale), its opinions under way;
    ``index`` holds each of its rows' row in the cell."""

    c: int
    kind: str
    scale: float
    draws: _inputs.Draws
    index: np.ndarray
    valid: np.ndarray
    last: bool
    largest: dict[str, float]
    pending: _opinions.Pending
    writes: dict[str, tuple[Write, ...]] = dataclasses.field(default_factory=dict)
    raised: dict[str, str] = dataclasses.field(default_factory=dict)
    """Per dtype, what a kernel raised on this chunk (past its probe: this batch's finding)."""


def _chunks(
    how: Plan,
    reference: Reference,
    options: Options,
    sizes: dict[int, tuple[int, int]],
) -> Iterator[_Chunk]:
    """Stages 1 and 2 for every chunk of the grid, in order: drawn, and its opinions started.

    A bridged kernel's chunk is waited for before it is handed on, so that the inputs it wrote
    into travel with the chunk that wrote them (:attr:`_Chunk.writes`)."""
    facts = [_dtypes.facts(dtype) for dtype in options.dtypes]
    fn = how.fn
    rows = options.samples + _inputs.ADVERSARIAL_ROWS
    for c in options.classes:
        size, _ = sizes[c]
        checked = min(_opinions.CHECKED_ROWS, size)
        streamed = how.layout is not None  # drawn by blocks as chunks ask, whatever the batch
        # A large noise is drawn in the background while its first chunks are computed.
        noise = None if streamed else _inputs.Noise(options.seed, c, options.samples)
        for kind in options.labels:
            if noise is None:
                draws: Any = StreamedDraws(options.seed, c, kind, rows)
            else:
                draws = _inputs.draw(options.seed, c, kind, options.samples, noise)
            for scale in options.scales:
                for taken, index, valid, begin, last in _row_calls(how, draws.rows, size):
                    part = draws.take(taken)
                    z64 = np.stack([_inputs.logits(part, scale, f.far_gap(c)) for f in facts])
                    rng = _inputs.generator(options.seed, c, _inputs.DIRECTIONS, begin)
                    direction = rng.standard_normal((checked, c))
                    if how.bridged:  # nothing carried over (the shrinker calls the kernel too)
                        how.fn.take()
                    pending = _opinions.dispatch(_opinions.PROGRAMS, reference, fn,
                                                 options.dtypes, z64, part.labels, direction,
                                                 own=int(np.unique(index).size))
                    if how.bridged:
                        jax.block_until_ready([out["closed_form"] for out in pending])
                    # The largest finite |logit|: scale * |noise|, but in the adversarial rows
                    # (the cell's first). (Labels are at most 7.4: no dtype overflows on them.)
                    # An input overflows on the cast exactly when this largest one does.
                    noise_max = scale * float(np.max(part.noise_max, where=valid, initial=0.0))
                    head = np.flatnonzero((index < _inputs.ADVERSARIAL_ROWS) & valid)
                    largest = {}
                    for f, z in zip(facts, z64, strict=True):
                        finite = np.isfinite(z[head])
                        top = float(np.max(np.abs(z[head]), where=finite, initial=0.0))
                        largest[f.name] = max(noise_max, top)
                    yield _Chunk(c, kind, scale, draws, index, valid, last, largest, pending,
                                 *how.taken())


def _judge_chunk(
    job: _Chunk,
    reference: Reference,
    options: Options,
    tolerances: dict[str, Tolerance],
    sizes: dict[int, tuple[int, int]],
) -> dict[str, _measure.Measurement]:
    """Stage 3 up to the verdict: one chunk's measurement per dtype, judged block by block."""
    size, block = sizes[job.c]
    opinions = _opinions.collect(options.dtypes, job.pending, job.c)
    measured = {}
    for dtype in options.dtypes:
        f, tolerance = _dtypes.facts(dtype), tolerances[dtype]
        check = _measure.autograd_check(opinions[dtype], job.valid)
        parts = []
        for first in range(0, size, block):
            rows = slice(first, first + block)
            m = _measure.measure(
                _opinions.rows_of(opinions[dtype], rows), reference, f, tolerance.rtol,
                tolerance.atol, job.valid[rows], job.largest[dtype],
                check if first == 0 else _measure.NO_CHECK,
            )
            row, class_ = divmod(int(m.worst_index), job.c)  # the cell's row of the worst
            worst = int(job.index[first + row]) * job.c + class_
            parts.append(dataclasses.replace(m, worst_index=float(worst)))
        measured[dtype] = _measure.Measurement.combine(parts)
    return measured
