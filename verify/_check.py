"""``verify.check``: a closed-form gradient against ``jax.grad`` over a grid of cells."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _dtypes, _inputs
from ._measure import chunking, measure
from ._opinions import softmax_minus_labels
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
from ._report import AutogradCheck, Cell, Report, Worst, format_number
from ._shrink import shrink
from ._snippet import snippet
from ._verdict import autograd_ok, judge, residual_match

MAX_CHUNK_ELEMENTS = 2**20
"""Elements measured per compiled call: c = 262,144 classes go 4 rows at a time."""

DEFAULT_CLAIM = "softmax(z) - y"


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
) -> Report:
    r"""Checks a closed-form gradient of the softmax cross-entropy against ``jax.grad``.

    The loss is :math:`C = -\sum_{r,k} y_{rk} \log \mathrm{softmax}(z_r)_k` over ``[rows, c]``
    logits ``z`` and labels ``y``. For every cell (classes, dtype, scale, labels) the inputs are
    drawn in float64 (``samples`` rows of ``scale * N(0, 1)`` logits plus 4 adversarial rows),
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
        seed: every draw comes from ``jax.random.key(seed)``.
        rtol: overrides the relative tolerance of every dtype (:data:`verify.TOLERANCES`).
        atol: overrides the absolute tolerance of every dtype.
        progress: called as ``progress(done, total)`` after each cell.

    Returns:
        A :class:`verify.Report`, one :class:`verify.Cell` per (classes, dtype, scale, labels).

    Raises:
        ValueError: a bad argument, or a closed form that raises or returns the wrong shape;
            the message starts with the parameter's name. Nothing is computed before every
            argument has been checked.
        TypeError: ``closed_form`` is not callable or returns something that is not an array.

    Example:
        >>> import verify
        >>> report = verify.check(classes=10, dtypes="float32", scales=1.0, samples=16)
        >>> report.ok, report.cells[0].verdict
        (True, 'agree')
    """
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
    )
    tolerances = tolerances_for(options.dtypes, options.rtol, options.atol)
    fn = _traceable(options.closed_form)
    with jax.enable_x64(True):
        _check_closed_form(fn, options)
        cells = {}
        total = len(options.classes) * len(options.dtypes) * len(options.scales)
        total *= len(options.labels)
        for c in options.classes:
            noise = _inputs.draw_noise(options.seed, c, options.samples)
            for kind in options.labels:
                draws = _inputs.draw(options.seed, c, kind, options.samples, noise)
                for dtype, scale in itertools.product(options.dtypes, options.scales):
                    cells[c, dtype, scale, kind] = _cell(
                        fn, options, draws, c, dtype, scale, kind, tolerances[dtype]
                    )
                    if progress is not None:
                        progress(len(cells), total)
    order = itertools.product(options.classes, options.dtypes, options.scales, options.labels)
    return Report(
        claim=claim_of(options.closed_form),
        seed=options.seed,
        tolerances=MappingProxyType(tolerances),
        cells=tuple(cells[key] for key in order),
    )


def claim_of(closed_form: Callable[..., Any] | None) -> str:
    """What the report says was checked: ``"softmax(z) - y"``, or the function's name."""
    if closed_form is None:
        return DEFAULT_CLAIM
    name = getattr(closed_form, "__name__", None)
    return name if isinstance(name, str) else repr(closed_form)


def _traceable(closed_form: Callable[..., Any] | None) -> Callable[..., Any]:
    """The function to compile; a hashable stand-in for callables that are not hashable."""
    if closed_form is None:
        return softmax_minus_labels
    try:
        hash(closed_form)
    except TypeError:
        return functools.partial(closed_form)
    return closed_form


def _check_closed_form(fn: Callable[..., Any], options: Options) -> None:
    """Traces the closed form on every (dtype, c) shape before anything is computed."""
    rows = options.samples + _inputs.ADVERSARIAL_ROWS
    for dtype, c in itertools.product(options.dtypes, options.classes):
        size, _ = chunking(rows, c, MAX_CHUNK_ELEMENTS)
        spec = jax.ShapeDtypeStruct((size, c), jnp.dtype(dtype))
        try:
            out = jax.eval_shape(fn, spec, spec)
        except Exception as error:  # the user's code: any exception is a bad closed form
            raise ValueError(
                f"closed_form: {claim_of(fn)} raised {type(error).__name__}: {error} on "
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
        if jnp.issubdtype(out.dtype, jnp.complexfloating):
            raise TypeError(f"closed_form: expected a real array, got {out.dtype}")


def _reproduce(options: Options, c: int, dtype: str, scale: float, kind: str) -> str:
    line = (
        f"softmax-ce verify --classes {c} --dtypes {dtype} --scales {format_number(scale)} "
        f"--labels {kind} --samples {options.samples} --seed {options.seed}"
    )
    if options.rtol is not None:
        line += f" --rtol {format_number(options.rtol)}"
    if options.atol is not None:
        line += f" --atol {format_number(options.atol)}"
    return line


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _cell(
    fn: Callable[..., Any],
    options: Options,
    draws: _inputs.Draws,
    c: int,
    dtype: str,
    scale: float,
    kind: str,
    tolerance: Tolerance,
) -> Cell:
    facts = _dtypes.facts(dtype)
    m = measure(
        fn, dtype, draws, options.seed, scale, tolerance.rtol, tolerance.atol, MAX_CHUNK_ELEMENTS
    )
    normalized = kind != "unnormalized"
    judgement = judge(m, dtype, facts.max, tolerance, normalized)
    undefined = judgement.verdict == "undefined"
    n = int(m.elements)
    row, klass = divmod(int(m.worst_index), c)
    worst = None
    if not undefined and n:
        worst = Worst(
            row=row,
            class_=klass,
            closed_form=float(m.worst_cf),
            autograd=float(m.worst_ag),
            reference=float(m.worst_ex),
            row_kind=_inputs.ROW_KINDS[min(row, _inputs.RANDOM)],
        )
    counterexample = None
    if judgement.verdict == "disagree" and worst is not None and autograd_ok(m):
        counterexample = _counterexample(
            fn, options, draws, c, dtype, scale, kind, tolerance, row, klass
        )

    def fraction(count: Any) -> float | None:
        return None if undefined or not n else int(count) / n

    return Cell(
        classes=c,
        dtype=dtype,
        scale=scale,
        labels=kind,
        samples=options.samples,
        max_abs_err=None if undefined else _finite(m.max_abs_err) if not m.nonfinite_cf else None,
        max_rel_err=None if undefined else _finite(m.max_rel_err) if not m.nonfinite_cf else None,
        max_ulp=None if undefined else _finite(m.max_ulp) if not m.nonfinite_cf else None,
        agree_fraction=fraction(m.agree),
        verdict=judgement.verdict,
        explanation=judgement.explanation,
        worst=worst,
        reproduce=_reproduce(options, c, dtype, scale, kind),
        rows=draws.rows,
        within_tolerance=fraction(m.within),
        autograd_max_ulp=None if undefined else _finite(m.autograd_max_ulp),
        label_sum_miss=None if undefined else _finite(m.label_sum_miss),
        residual_match=None if undefined else residual_match(m),
        autograd_check=None
        if undefined
        else AutogradCheck(
            rows=int(m.checked_rows),
            forward_mode=float(m.forward_mode),
            finite_difference=float(m.finite_difference),
            ok=autograd_ok(m),
        ),
        counterexample=counterexample,
    )


def _counterexample(
    fn: Callable[..., Any],
    options: Options,
    draws: _inputs.Draws,
    c: int,
    dtype: str,
    scale: float,
    kind: str,
    tolerance: Tolerance,
    row: int,
    klass: int,
) -> str | None:
    facts = _dtypes.facts(dtype)
    one_row = draws.take(np.array([row]))
    z_row = np.asarray(_inputs.logits(one_row, scale, facts.far_gap(c)))[0]
    y_row = np.asarray(one_row.labels)[0]
    found = shrink(fn, dtype, tolerance, z_row, y_row, klass, kind != "unnormalized")
    if found is None:
        return None
    z, y = (np.asarray(jnp.asarray(v).astype(facts.dtype).astype(jnp.float64)) for v in found)
    origin = (
        f"shrunk from row {row} of the cell classes={c}, dtype={dtype}, "
        f"scale={format_number(scale)}, labels={kind}, seed={options.seed}"
    )
    return snippet(
        options.closed_form, dtype=dtype, z=z.tolist(), y=y.tolist(), tolerance=tolerance,
        origin=origin,
    )
