r"""Stages 2 to 4 for a loss variant's cells: a batch's opinions (compiled once per loss, dtypes
and shape), measured, judged and explained, one cell per dtype.

A cell is one batch (:func:`batch_cells`), or a streamed cell's calls, each a batch of its own,
measured one by one and combined (:func:`streamed_cells`, :mod:`._variant_stream`). The driver
is :mod:`._variant_check`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from derivation import Loss

from . import (_batch_shrink, _dtypes, _explain, _inputs, _judge, _kernel_bridge, _kernel_plan,
               _measure, _opinions, _variant, _variant_stream)
from ._options import Options, Tolerance
from ._report import AutogradCheck, Cell


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


FAST_COMPILE_ELEMENTS = 2**15
"""The largest batch (rows × classes logits, in each dtype) whose reference program is compiled with
XLA's backend optimisation off (:data:`_FAST_COMPILE`): it compiles in about 0.6× the time, and
runs at most about 2.5× slower, which below this size costs a few milliseconds a run against
about half a second saved a program. Larger batches get XLA's default (run time counts there).
The two compilations may round differently in the last bits; each is deterministic.
``benchmarks/bench_variant_compile.py`` measures both sides."""

_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _reference_program(loss: Loss, dtypes: tuple[str, ...], z64: jax.Array, y64: jax.Array,
                       direction: jax.Array, g: jax.Array, d: jax.Array
                       ) -> list[dict[str, jax.Array]]:
    """The pipeline's reference program (``_opinions``) for a variant batch, its upstream
    gradient and denominator data, not constants: one compilation per loss, dtypes and shape,
    unoptimised up to :data:`FAST_COMPILE_ELEMENTS` logits."""
    # Per dtype, not over the dtypes: a cell's reproduce line (one dtype) gets the same program.
    fast = int(np.size(z64[0])) <= FAST_COMPILE_ELEMENTS
    args = (z64, y64, direction, g, d)
    return _opinions.PROGRAMS.compiled(_REFERENCE_KINDS[fast], (loss, dtypes), args)(*args)


def _variant_reference(loss: Loss, dtypes: tuple[str, ...], z64: jax.Array, y64: jax.Array,
               direction: jax.Array, g: jax.Array, d: jax.Array) -> list[dict[str, jax.Array]]:
    """The body of :func:`_reference_program`."""
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
        forward, central, along, v, noise = _opinions.autograd_check(  # label: the size here
            exact_ref, zr[:checked], yr[:checked], exact[:checked], direction, label[:checked])
        # Rows checked by finite differences: finite (or −∞) logits and a finite loss (with
        # label smoothing a lane at −∞ makes a row's loss infinite, in PyTorch too).
        finite_loss = jnp.isfinite(exact_ref.row_losses(zr[:checked], yr[:checked]))
        checked_ok = jnp.all(jnp.isfinite(zr[:checked]) | (zr[:checked] < 0), -1) & finite_loss
        out.append({
            "z": z, "y": y, "autograd": jax.grad(in_dtype.loss)(z, y).astype(f64),
            "exact": exact, "checked_ok": checked_ok, "sigma": sigma, "label": label,
            "label_sum": label_sum, "forward": forward, "central": central, "along": along,
            "direction": v, "noise": noise,
        })  # fmt: skip
    return out


_REFERENCE_KINDS = {False: "variant reference", True: "variant reference, fast compile"}
"""The reference program's kind of :class:`verify._opinions.Programs`, by whether it is
compiled unoptimised (a small batch): compiled once per loss, dtypes and shape, and this
package's kept on disk as the plain ones are (a warm run does not trace it)."""
_opinions.register(_REFERENCE_KINDS[False], jax.jit(_variant_reference, static_argnums=(0, 1)))
_opinions.register(_REFERENCE_KINDS[True], jax.jit(_variant_reference, static_argnums=(0, 1),
                                                   compiler_options=_FAST_COMPILE))


def _closed_form(fn: Callable[..., Any], loss: Loss, z: jax.Array, y: jax.Array,
                 g: jax.Array) -> jax.Array:
    TRACES["closed_form"] += 1
    return jnp.asarray(_variant.bind(fn, loss, z, y, g.astype(z.dtype))).astype(jnp.float64)


_opinions.register("variant closed form", jax.jit(_closed_form, static_argnums=(0, 1)))


def _closed_form_program(fn: Callable[..., Any], loss: Loss, z: jax.Array, y: jax.Array,
                         g: jax.Array) -> jax.Array:
    """The closed form (a kernel, or the derived one) on one batch in its dtype, widened:
    compiled once per kernel, loss and shape (the derived closed form's kept on disk)."""
    args = (z, y, g)
    return _opinions.PROGRAMS.compiled("variant closed form", (fn, loss), args)(*args)


TRACES = {"reference": 0, "closed_form": 0}
"""Compilations of the variant programs (once per loss, dtypes and shape; per kernel too)."""


def _start_opinions(fn: Callable[..., Any], reference: _variant.VariantReference,
                    dtypes: tuple[str, ...], z64: np.ndarray, y: np.ndarray,
                    direction: np.ndarray) -> list[dict[str, jax.Array]]:
    """Starts a batch's programs, the reference program and then, per dtype, the closed form's
    (JAX runs them asynchronously; a kernel's calls are waited for one at a time, in order)."""
    g = jnp.asarray(reference.grad_output, jnp.float64)
    d = jnp.asarray(reference.denominator, jnp.float64)
    outputs = _reference_program(reference.spec, dtypes, z64, y, direction, g, d)
    for out in outputs:
        out["closed_form"] = _closed_form_program(fn, reference.spec, out.pop("z"), out.pop("y"),
                                                  g)
        if isinstance(fn, _kernel_bridge.Bridge):
            jax.block_until_ready(out["closed_form"])
    return outputs


def _opinions_of(reference: _variant.VariantReference, dtypes: tuple[str, ...],
                 pending: list[dict[str, jax.Array]]) -> dict[str, _opinions.Opinions]:
    """The opinions of :func:`_start_opinions`, per dtype (waiting for them)."""
    result = {}
    for dtype, out in zip(dtypes, pending, strict=True):
        arrays = {k: np.asarray(v) for k, v in out.items()}
        theory = (arrays["sigma"], arrays["label"], arrays["label_sum"])  # computed: selected
        result[dtype] = _opinions.Opinions(size=reference.gradient_size(*theory), **arrays)
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


def _start_batch(fn: Callable[..., Any], reference: _variant.VariantReference,
                 options: Options, draws: _inputs.Draws, y: np.ndarray, c: int, scale: float,
                 tolerances: dict[str, Tolerance], rows: _kernel_plan.Call | None = None,
                 ) -> Callable[[], tuple[dict[str, _Measured], np.ndarray]]:
    """Stage 2 started on one batch (a cell's, or a streamed cell's call holding ``rows``); the
    function returned waits for it and does stage 3: per dtype the measurement (of the rows it
    counts, its worst element's index in the cell's rows), and the batch's float64 logits
    ``[dtypes, rows, c]``."""
    facts = [_dtypes.facts(dtype) for dtype in options.dtypes]
    valid = np.ones(draws.rows, bool) if rows is None else rows.counted
    z64 = np.stack([_inputs.logits(draws, scale, f.far_gap(c)) for f in facts])
    checked = min(_opinions.CHECKED_ROWS, draws.rows)
    direction = _inputs.generator(options.seed, c, _inputs.DIRECTIONS,
                                  0 if rows is None else rows.first).standard_normal((checked, c))
    pending = _start_opinions(fn, reference, options.dtypes, z64, y, direction)

    def measured() -> tuple[dict[str, _Measured], np.ndarray]:
        opinions = _opinions_of(reference, options.dtypes, pending)
        noise_max = scale * float(np.max(draws.noise_max, where=valid, initial=0.0))
        out = {}
        for f, z in zip(facts, z64, strict=True):
            finite = np.isfinite(z) & valid[:, None]
            largest = max(noise_max, float(np.max(np.abs(z), where=finite, initial=0.0)))
            tolerance, scaled = _scaled_tolerance(tolerances[f.name], reference, y)
            o = opinions[f.name]
            check = _measure.autograd_check(o, valid)
            m = _measure.measure(o, reference, f, tolerance.rtol, tolerance.atol, valid,
                                 largest, check)
            if rows is not None:  # the call's row of the worst element, as the cell's row
                row, class_ = divmod(int(m.worst_index), c)
                m = dataclasses.replace(m, worst_index=float(int(rows.index[row]) * c + class_))
            out[f.name] = _Measured(m, tolerance, scaled)
        return out, z64

    return measured


def batch_cells(fn: Callable[..., Any], mode: str, reference: _variant.VariantReference,
                options: Options, draws: _inputs.Draws, y: np.ndarray, c: int, scale: float,
                kind: str, tolerances: dict[str, Tolerance]) -> Callable[[], list[Cell]]:
    """Starts the cells of one batch, one per dtype: the function returned waits for the
    batch's programs and makes them."""
    loss = reference.spec
    started = _start_batch(fn, reference, options, draws, y, c, scale, tolerances)

    def cells() -> list[Cell]:
        measured, z64 = started()
        ignored = int(np.sum(_ignored(loss, y))) if kind == "ignored" else 0
        out = []
        for index, dtype in enumerate(options.dtypes):

            def batch(worst_row: int, z: np.ndarray = z64[index]) -> _Shrinkable:
                return _Shrinkable(z, y, worst_row, "the cell's rows")

            out.append(_cell(fn, mode, loss, options, c, dtype, scale, kind, measured[dtype],
                             (ignored, draws.rows), batch))
        return out

    return cells


def streamed_cells(fn: Callable[..., Any], mode: str, streamed: _variant_stream.StreamedCell,
                   options: Options, c: int, scale: float,
                   tolerances: dict[str, Tolerance]) -> list[Cell]:
    """The cells of a streamed batch (:mod:`._variant_stream`), one per dtype: each call
    measured as a batch of its own, the calls' measurements combined."""
    loss = streamed.loss
    parts: dict[str, list[_Measured]] = {dtype: [] for dtype in options.dtypes}
    for call in streamed.calls(mode):
        measured, _ = _start_batch(fn, call.reference, options, call.draws, call.y, c, scale,
                                   tolerances, call.rows)()
        for dtype, one in measured.items():
            parts[dtype].append(one)
    sequence = streamed.windows.view is not None
    out = []
    for dtype in options.dtypes:
        measured = parts[dtype]
        atols = [one.tolerance.atol for one in measured]
        tolerance = dataclasses.replace(tolerances[dtype], atol=max(atols))
        words = _variant_stream.atol_words(tolerances[dtype].atol, atols, len(measured))
        combined = _Measured(_measure.Measurement.combine([one.m for one in measured]),
                             tolerance, words)

        def batch(worst_row: int, dtype: str = dtype) -> _Shrinkable:
            call = streamed.holding(worst_row, mode)
            z64 = _inputs.logits(call.draws, scale, _dtypes.facts(dtype).far_gap(c))
            local = int(np.flatnonzero(call.rows.index == worst_row)[0])
            return _Shrinkable(z64, call.y, local,
                               f"the call that holds the worst element ({call.rows.words(sequence)}"
                               ", its own batch)")

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
    weight = 1.0 if loss.weight is None else float(np.max(np.abs(loss.weight_for(y.shape[1]))))
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


__all__ = ["FAST_COMPILE_ELEMENTS", "TRACES", "batch_cells", "streamed_cells"]
