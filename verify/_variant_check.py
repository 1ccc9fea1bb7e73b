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
from functools import partial
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from derivation import Loss

from . import (_batch_shrink, _dtypes, _explain, _inputs, _judge, _kernel_bridge, _measure,
               _limits, _opinions, _variant, _variant_stream)
from ._kernel_plan import Layout
from ._loss_options import check_labels
from ._options import Options, Tolerance
from ._report import AutogradCheck, Cell, Report, format_number


def claim_of(closed_form: Callable[..., Any] | None, loss: Loss) -> str:
    if closed_form is None:
        return _variant.DerivedClosedForm(loss).__name__
    name = getattr(closed_form, "__name__", None)
    return name if isinstance(name, str) else repr(closed_form)


def check_variant(closed_form: Callable[..., Any] | None, loss: Loss, options: Options,
                  tolerances: dict[str, Tolerance],
                  progress: Callable[[int, int], None] | None,
                  finish: Callable[[list[Cell]], list[Cell]] | None = None,
                  layout: Layout | None = None, chunk_elements: int | None = None) -> Report:
    """The report of a variant check (arguments already validated); ``finish``, when given, is
    applied to the cells of each batch as they are made (a kernel's writes into its inputs).
    With a ``layout`` whose rows × classes exceed ``chunk_elements``, each cell is streamed
    (:mod:`._variant_stream`: each call its own batch)."""
    fn = closed_form if closed_form is not None else _variant.DerivedClosedForm(loss)
    for c in options.classes:
        loss.weight_for(c)  # one weight per class, or a ValueError naming weight
    _representable(loss, options.dtypes)
    check_labels(loss, options.labels)
    kinds = _variant.kinds(loss, options.labels)
    _batch_shrink.reset_budget()
    rows = options.samples + _inputs.ADVERSARIAL_ROWS
    sizes = {c: _variant_stream.call_rows(layout, rows, c, chunk_elements)
             for c in options.classes}  # fmt: skip
    for c, size in sizes.items():
        if size:  # streamed: one call in flight (a shape's memory, as the CLI checks it)
            _limits.check_streamed(rows, c, options.dtypes)
    with jax.enable_x64(True):
        _validate(fn, loss, options, {c: sizes[c] or rows for c in options.classes})
        if isinstance(fn, _kernel_bridge.Bridge):
            _probe(fn, loss, options)
        cells = []
        total = (len(options.classes) * len(kinds) * len(_variant.GRAD_OUTPUTS)
                 * len(options.scales) * len(options.dtypes))
        for c in options.classes:
            size = sizes[c]
            noise = None if size else _inputs.draw_noise(options.seed, c, options.samples)
            for kind in kinds:
                if size:
                    streamed = _variant_stream.StreamedCell.make(loss, options.seed, c, kind,
                                                                 rows, size)
                else:
                    drawn = "onehot" if loss.targets == "indices" else kind
                    draws = _inputs.draw(options.seed, c, drawn, options.samples, noise)
                    y = _variant.encode(loss, draws.labels, kind, options.seed)
                    denominator = _variant.denominator(loss, y)
                for mode in _variant.GRAD_OUTPUTS:
                    if not size:
                        g = _variant.grad_output(loss, mode, draws.rows, np.float64)
                        reference = _variant.VariantReference(loss, g, denominator)
                    for scale in options.scales:
                        if size:
                            made = _streamed_cells(fn, mode, streamed, options, c, scale,
                                                   tolerances)
                        else:
                            made = _cells(fn, mode, reference, options, draws, y, c, scale,
                                          kind, tolerances)
                        cells += made if finish is None else finish(made)
                        if progress is not None:
                            progress(len(cells), total)
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
    grad_output 0.75, not with 1`` (empty when no cell disagrees)."""
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
    if not parts:
        return "it disagrees in every cell of the grid"
    return "it disagrees with " + "; with ".join(parts)


def _mode_of(loss: Loss, grad_output: str | None) -> str:
    return next(m for m in _variant.GRAD_OUTPUTS
                if _variant.describe_grad_output(loss, m) == grad_output)


_VALIDATED: set[tuple[Any, ...]] = set()
"""(kernel, loss, dtype, shape) already traced without fault: not traced again."""


def _validate(fn: Callable[..., Any], loss: Loss, options: Options,
              rows: dict[int, int]) -> None:
    """Traces the kernel on every (dtype, c) shape ``[rows[c], c]`` (a cell's batch, or a
    streamed cell's call) before anything is computed."""
    for dtype, c in itertools.product(options.dtypes, options.classes):
        key = (fn, loss, dtype, rows[c], c)
        try:
            if key in _VALIDATED:
                continue
        except TypeError:  # an unhashable kernel: traced every time
            key = None
        spec = jax.ShapeDtypeStruct((rows[c], c), _dtypes.facts(dtype).dtype)
        g = _variant.grad_output(loss, _variant.GRAD_OUTPUTS[1], rows[c], spec.dtype)
        try:
            out = jax.eval_shape(lambda z, y: _variant.bind(fn, loss, z, y, g), spec, spec)
        except Exception as error:  # the user's code: any exception is a bad closed form
            raise ValueError(
                f"closed_form: {claim_of(fn, loss)} raised {type(error).__name__}: {error} on "
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
        fn.take()


def _representable(loss: Loss, dtypes: tuple[str, ...]) -> None:
    """Refuses a temperature, softcap or weight that rounds to zero or infinity in a checked
    dtype (as a kernel holds it, e.g. PyTorch's ``weight`` in the logits' dtype): every cell
    would be NaN on both sides, blamed on the closed form.

    Raises:
        ValueError: ``temperature: ...``, ``softcap: ...`` or ``weight: ...``.
    """
    given = {"temperature": (loss.temperature,), "softcap": (loss.softcap,) if loss.softcap
             else (), "weight": loss.weight or ()}
    for dtype in dtypes:
        facts = _dtypes.facts(dtype)
        for name, values in given.items():
            for value in values:
                with np.errstate(over="ignore", under="ignore"):
                    rounded = float(np.asarray(value, facts.dtype).astype(np.float64))
                if not (np.isfinite(rounded) and rounded != 0):
                    raise ValueError(
                        f"{name}: {value!r} rounds to {rounded:g} in {dtype}; expected a value "
                        f"that stays nonzero and finite there (at most {facts.max:g})")


def _reproduce(options: Options, loss: Loss, c: int, dtype: str, scale: float,
               kind: str) -> str:
    line = _explain.reproduce(options, c, dtype, scale, kind if loss.targets == "probabilities"
                              else None)
    return " ".join([line, *loss.flags()])


def _explanation(judgement: _judge.Judgement, loss: Loss, kind: str, ignored: int,
                 rows: int) -> str:
    """The judge's reason, and what the cell is: every row ignored, ``ignored`` of ``rows``."""
    text = judgement.explanation
    if kind == "all-ignored":
        mean = ("PyTorch's mean is NaN and its gradient zero" if loss.reduction == "mean"
                else "the loss and its gradient are zero")
        return f"every row ignored ({mean}); {text}"
    if kind == "ignored":
        return f"{ignored} of {rows} rows ignored; {text}"
    return text


def _ignored(loss: Loss, y: np.ndarray) -> np.ndarray:
    return _variant.decoded(loss, y) == loss.ignore_index


@partial(jax.jit, static_argnums=(0, 1))
def _reference_program(loss: Loss, dtypes: tuple[str, ...], z64: jax.Array, y64: jax.Array,
                       direction: jax.Array, g: jax.Array, d: jax.Array
                       ) -> list[dict[str, jax.Array]]:
    """The pipeline's reference program (``_opinions``) for a variant batch, its upstream
    gradient and denominator data, not constants: one compilation per loss, dtypes and shape."""
    TRACES["reference"] += 1
    f64 = jnp.float64
    out = []
    for index, name in enumerate(dtypes):
        dtype = _dtypes.facts(name).dtype
        z, y = z64[index].astype(dtype), y64.astype(dtype)
        zr, yr = z.astype(f64), y.astype(f64)
        exact_ref = _variant.VariantReference(loss, g, d)
        in_dtype = _variant.VariantReference(loss, g.astype(dtype), d.astype(dtype))
        exact = jax.grad(exact_ref.loss)(zr, yr)
        sigma, label, label_sum = exact_ref.theory_inputs(zr, yr)
        checked = direction.shape[0]
        forward, central, along, v = _opinions.autograd_check(
            exact_ref, zr[:checked], yr[:checked], exact[:checked], direction)
        # Rows checked by finite differences: finite (or −∞) logits and a finite loss (with
        # label smoothing a lane at −∞ makes a row's loss infinite, in PyTorch too).
        finite_loss = jnp.isfinite(exact_ref.row_losses(zr[:checked], yr[:checked]))
        checked_ok = jnp.all(jnp.isfinite(zr[:checked]) | (zr[:checked] < 0), -1) & finite_loss
        out.append({
            "z": z, "y": y, "autograd": jax.grad(in_dtype.loss)(z, y).astype(f64),
            "exact": exact, "checked_ok": checked_ok, "sigma": sigma, "label": label,
            "label_sum": label_sum, "forward": forward, "central": central, "along": along,
            "direction": v,
        })  # fmt: skip
    return out


@partial(jax.jit, static_argnums=(0, 1))
def _closed_form_program(fn: Callable[..., Any], loss: Loss, z: jax.Array, y: jax.Array,
                         g: jax.Array) -> jax.Array:
    TRACES["closed_form"] += 1
    return jnp.asarray(_variant.bind(fn, loss, z, y, g.astype(z.dtype))).astype(jnp.float64)


TRACES = {"reference": 0, "closed_form": 0}
"""Compilations of the variant programs (once per loss, dtypes and shape; per kernel too)."""


def _opinions_of(fn: Callable[..., Any], reference: _variant.VariantReference,
                 dtypes: tuple[str, ...], z64: np.ndarray, y: np.ndarray,
                 direction: np.ndarray) -> dict[str, _opinions.Opinions]:
    g = jnp.asarray(reference.grad_output, jnp.float64)
    d = jnp.asarray(reference.denominator, jnp.float64)
    outputs = _reference_program(reference.spec, dtypes, z64, y, direction, g, d)
    result = {}
    for dtype, out in zip(dtypes, outputs, strict=True):
        cf = np.asarray(_closed_form_program(fn, reference.spec, out.pop("z"), out.pop("y"), g))
        result[dtype] = _opinions.Opinions(closed_form=cf,
                                           **{k: np.asarray(v) for k, v in out.items()})
    return result


@dataclasses.dataclass(frozen=True)
class _Measured:
    """One dtype's measurement of a cell: of its batch, or of a streamed cell's calls combined.

    Attributes:
        m: the measurement (worst index in the cell's rows).
        tolerance: the tolerance judged by (a streamed cell's: the largest atol of its calls).
        scaled: the words that say how atol was scaled (empty when it was not).
    """

    m: _measure.Measurement
    tolerance: Tolerance
    scaled: str


def _measure_batch(fn: Callable[..., Any], reference: _variant.VariantReference,
                   options: Options, draws: _inputs.Draws, y: np.ndarray, c: int, scale: float,
                   tolerances: dict[str, Tolerance], start: int = 0,
                   ) -> tuple[dict[str, _Measured], np.ndarray]:
    """Stages 2 and 3 on one batch (a cell's, or a streamed cell's call from row ``start``):
    per dtype its measurement, and the batch's float64 logits ``[dtypes, rows, c]``."""
    facts = [_dtypes.facts(dtype) for dtype in options.dtypes]
    rows = draws.rows
    valid = np.ones(rows, bool)
    z64 = np.stack([_inputs.logits(draws, scale, f.far_gap(c)) for f in facts])
    checked = min(_opinions.CHECKED_ROWS, rows)
    direction = _inputs.generator(options.seed, c, _inputs.DIRECTIONS, start).standard_normal(
        (checked, c))
    opinions = _opinions_of(fn, reference, options.dtypes, z64, y, direction)
    noise_max = scale * float(np.max(draws.noise_max))
    out = {}
    for f, z in zip(facts, z64, strict=True):
        finite = np.isfinite(z)
        largest = max(noise_max, float(np.max(np.abs(z), where=finite, initial=0.0)))
        tolerance, scaled = _scaled_tolerance(tolerances[f.name], reference, y)
        o = opinions[f.name]
        check = _measure.autograd_check(o, reference, valid)
        m = _measure.measure(o, reference, f, tolerance.rtol, tolerance.atol, valid, largest,
                             check)
        if start:
            m = dataclasses.replace(m, worst_index=m.worst_index + start * c)
        out[f.name] = _Measured(m, tolerance, scaled)
    return out, z64


def _cells(fn: Callable[..., Any], mode: str, reference: _variant.VariantReference,
           options: Options, draws: _inputs.Draws, y: np.ndarray, c: int, scale: float,
           kind: str, tolerances: dict[str, Tolerance]) -> list[Cell]:
    """The cells of one batch: one per dtype."""
    loss = reference.spec
    measured, z64 = _measure_batch(fn, reference, options, draws, y, c, scale, tolerances)
    ignored = int(np.sum(_ignored(loss, y))) if kind == "ignored" else 0
    out = []
    for index, dtype in enumerate(options.dtypes):

        def batch(worst_row: int, z: np.ndarray = z64[index]) -> _Shrinkable:
            return _Shrinkable(z, y, worst_row, "the cell's rows")

        out.append(_cell(fn, mode, loss, options, c, dtype, scale, kind, measured[dtype],
                         (ignored, draws.rows), batch))
    return out


def _streamed_cells(fn: Callable[..., Any], mode: str, streamed: _variant_stream.StreamedCell,
                    options: Options, c: int, scale: float,
                    tolerances: dict[str, Tolerance]) -> list[Cell]:
    """The cells of a streamed batch (:mod:`._variant_stream`), one per dtype: each call
    measured as a batch of its own, the calls' measurements combined."""
    loss = streamed.loss
    parts: dict[str, list[_Measured]] = {dtype: [] for dtype in options.dtypes}
    for call in streamed.calls(mode):
        measured, _ = _measure_batch(fn, call.reference, options, call.draws, call.y, c, scale,
                                     tolerances, call.start)  # fmt: skip
        for dtype, one in measured.items():
            parts[dtype].append(one)
    out = []
    for dtype in options.dtypes:
        measured = parts[dtype]
        atols = [one.tolerance.atol for one in measured]
        tolerance = dataclasses.replace(tolerances[dtype], atol=max(atols))
        words = _variant_stream.atol_words(tolerances[dtype].atol, atols, len(measured))
        combined = _Measured(_measure.Measurement.combine([one.m for one in measured]),
                             tolerance, words)

        def batch(worst_row: int, dtype: str = dtype) -> _Shrinkable:
            start = streamed.holding(worst_row)
            call = streamed.call(start, mode)
            z64 = _inputs.logits(call.draws, scale, _dtypes.facts(dtype).far_gap(c))
            return _Shrinkable(z64, call.y, worst_row - start,
                               f"the rows {start}–{start + call.rows - 1} of the call that "
                               "holds the worst element (its own batch)")

        out.append(_cell(fn, mode, loss, options, c, dtype, scale, streamed.kind, combined,
                         (streamed.ignored_count(), streamed.rows), batch))
    return out


@dataclasses.dataclass(frozen=True)
class _Shrinkable:
    """The batch a disagreeing cell's counterexample is shrunk from: its float64 logits (before
    rounding to the dtype), its labels, the worst row in it, and whose rows they are."""

    z64: np.ndarray
    y: np.ndarray
    worst_row: int
    rows: str


def _cell(fn: Callable[..., Any], mode: str, loss: Loss, options: Options, c: int, dtype: str,
          scale: float, kind: str, measured: _Measured, ignored: tuple[int, int],
          batch: Callable[[int], _Shrinkable]) -> Cell:
    """Stages 3 (the verdict) and 4 of one cell; ``ignored`` is (rows ignored, rows), and
    ``batch`` gives the batch to shrink around the worst row."""
    f = _dtypes.facts(dtype)
    m, tolerance = measured.m, measured.tolerance
    normalized = loss.targets == "indices" or kind != "unnormalized"
    judgement = _judge.judge(m, f.name, f.max, tolerance, normalized)
    undefined = judgement.verdict == "undefined"
    n = int(m.elements)
    worst = None if undefined or not n else _explain.worst(m, c)
    counterexample = None
    explanation = _explanation(judgement, loss, kind, *ignored) + measured.scaled
    if judgement.verdict == "disagree" and worst is not None and _judge.autograd_ok(m):
        shrinkable = batch(worst.row)
        counterexample, why = _batch_shrink.counterexample(
            fn, loss, mode, f.name, tolerance, shrinkable.z64, shrinkable.y, options, c, scale,
            kind, shrinkable.worst_row, rows=shrinkable.rows)
        if counterexample is None:
            explanation += f"; no counterexample: {why}"

    def fraction(count: Any) -> float | None:
        return None if undefined or not n else int(count) / n

    errors = undefined or bool(m.nonfinite_cf)
    return Cell(
        classes=c, dtype=f.name, scale=scale, labels=kind, samples=options.samples,
        max_abs_err=None if errors else _finite(m.max_abs_err),
        max_rel_err=None if errors else _finite(m.max_rel_err),
        max_ulp=None if errors else _finite(m.max_ulp),
        agree_fraction=fraction(m.agree), verdict=judgement.verdict,
        explanation=explanation, worst=worst,
        reproduce=_reproduce(options, loss, c, f.name, scale, kind), rows=ignored[1],
        within_tolerance=fraction(m.within),
        autograd_max_ulp=None if undefined else _finite(m.autograd_max_ulp),
        label_sum_miss=None if undefined else _finite(m.label_sum_miss),
        residual_match=None if undefined else _judge.residual_match(m),
        autograd_check=None if undefined else AutogradCheck(
            rows=int(m.checked_rows), forward_mode=float(m.forward_mode),
            finite_difference=float(m.finite_difference), ok=_judge.autograd_ok(m)),
        counterexample=counterexample,
        grad_output=_variant.describe_grad_output(loss, mode),
    )


def _scaled_tolerance(tolerance: Tolerance, reference: _variant.VariantReference,
                      y: np.ndarray) -> tuple[Tolerance, str]:
    """The tolerance with atol scaled down by the gradient's scale max_r|g_r·m_r|·max_k w_k / D
    where that is below one (a mean over many rows: else every element is below atol and any
    output agrees), and the words that say so (empty when atol is unchanged)."""
    loss = reference.spec
    d = float(reference.denominator)
    if d <= 0:
        return tolerance, ""
    g = np.broadcast_to(np.abs(np.asarray(reference.grad_output, np.float64)), (y.shape[0],))
    kept = ~_ignored(loss, y) if loss.targets == "indices" and loss.ignore_index is not None \
        else np.ones(y.shape[0], bool)
    weight = float(np.max(np.abs(loss.weight_for(y.shape[1]))))
    factor = float(np.max(g * kept, initial=0.0)) * weight / d
    if not 0 < factor < 1:
        return tolerance, ""
    atol = tolerance.atol * factor
    return (dataclasses.replace(tolerance, atol=atol),
            f"; atol {tolerance.atol:g} scaled to {atol:.3g} by the gradient's scale "
            f"max|g·m|·max w/D = {factor:.3g}")


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


__all__ = ["check_variant", "claim_of", "format_number"]
