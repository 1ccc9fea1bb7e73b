"""Counterexamples for a loss variant: shrink the *batch*, not a row (part of stage 4, explain).

With a reduction, a kernel can be wrong only because of the batch — a mean over the wrong
count, a sum over the whole batch — so a row alone may agree. From a disagreeing cell's batch
(in the cell's dtype), in this order, while the smaller batch still disagrees:

1. the fewest rows: the worst row alone, else with 1, 3, 7 or 15 others, then pruned row by
   row;
2. the smallest c: trailing classes that no kept row's target uses, dropped (not with class
   weights: they are per class);
3. the simplest values: logits rounded to integers, then set to zero one by one (small batches).

Each candidate is judged by the cell's rule on its own batch (its own mean denominator), eagerly
in JAX. When no smaller batch disagrees the cell's own batch is the counterexample; when even
that cannot be judged alone, or the check's budget of cells is spent, the cell says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from derivation import Loss

from . import _dtypes, _rule, _variant
from ._frameworks import Kernel
from ._kernel_bridge import as_sequences, bridged, raised
from ._kernel_snippet import kernel_snippet
from ._options import Options, Tolerance
from ._report import format_number

MAX_CELLS = 1
"""Disagreeing cells shrunk per check (each candidate shape compiles); the others say so: the
first counterexample stands for them."""
MAX_VALUES_SINGLY = 24
"""Logits are zeroed one at a time only in batches this small."""

KERNEL_SHRINK_SECONDS = 20.0
"""The time a check lets a kernel's own calls take while its disagreements are shrunk (each
candidate is a call of the user's kernel, which may be slow): once spent, shrinking stops, and
the cells left without a counterexample say so."""
_BUDGET: dict[str, float] = {"left": MAX_CELLS, "spent": 0.0}


def reset_budget() -> None:
    """A new check: :data:`MAX_CELLS` more cells may be shrunk, and a kernel's calls may take
    :data:`KERNEL_SHRINK_SECONDS` more while shrinking."""
    _BUDGET.update(left=MAX_CELLS, spent=0.0)


@contextmanager
def shrinking(fn: Any) -> Iterator[None]:
    """Counts the time the bridged kernel behind ``fn`` (:attr:`Bridge.seconds`) takes inside
    against :data:`KERNEL_SHRINK_SECONDS`."""
    bridge = bridged(fn)
    if bridge is None:
        yield
        return
    _BUDGET["mark"] = bridge.seconds
    bridge.limit = bridge.seconds + max(0.0, KERNEL_SHRINK_SECONDS - _BUDGET["spent"])
    try:
        yield
    finally:
        bridge.limit = None
        _BUDGET["spent"] += bridge.seconds - _BUDGET.pop("mark")


def kernel_time_left(fn: Any) -> bool:
    """Whether shrinking may still call the bridged kernel behind ``fn`` (anything else: yes)."""
    bridge = bridged(fn)
    if bridge is None:
        return True
    now = bridge.seconds - _BUDGET["mark"] if "mark" in _BUDGET else 0.0
    return _BUDGET["spent"] + now < KERNEL_SHRINK_SECONDS


NOT_SHRUNK = "not shrunk: the check spent the {:.0f} s it gives the kernel's calls while shrinking"
"""Why a cell has no counterexample once :func:`kernel_time_left` says no (the seconds filled
in from :data:`KERNEL_SHRINK_SECONDS` when said)."""


@partial(jax.jit, static_argnums=(0, 1, 2))
def _opinions(fn: Callable[..., Any], loss: Loss, dtype: str, z: jax.Array, y: jax.Array,
              g: jax.Array, d: jax.Array) -> tuple[jax.Array, ...]:
    """The three opinions and the theory's inputs on one candidate batch (compiled per shape)."""
    facts = _dtypes.facts(dtype)
    reference = _variant.VariantReference(loss, g, d)
    in_dtype = _variant.VariantReference(loss, g.astype(facts.dtype), d.astype(facts.dtype))
    zd, yd = z.astype(facts.dtype), y.astype(facts.dtype)
    zr, yr = zd.astype(jnp.float64), yd.astype(jnp.float64)
    ex = jax.grad(reference.loss)(zr, yr)
    ag = jax.grad(in_dtype.loss)(zd, yd).astype(jnp.float64)
    cf = jnp.asarray(_variant.bind(fn, loss, zd, yd, g.astype(facts.dtype))).astype(jnp.float64)
    return (cf, ag, ex, zr, yr, *reference.theory_inputs(zr, yr))


def fails(fn: Callable[..., Any], loss: Loss, mode: str, dtype: str, tolerance: Tolerance,
          z: np.ndarray, y: np.ndarray) -> bool:
    """Whether a batch disagrees by the cell's rule, judged alone (its own denominator)."""
    with jax.enable_x64(True):
        g = _variant.grad_output(loss, mode, z.shape[0], jnp.float64)
        d = jnp.asarray(_variant.denominator(loss, y), jnp.float64)
        cf, ag, ex, zr, yr, *inputs = (np.asarray(a) for a in _opinions(
            fn, loss, dtype, jnp.asarray(z, jnp.float64), jnp.asarray(y, jnp.float64), g, d))
    if raised(fn) or not kernel_time_left(fn):  # a batch the kernel cannot take (or not in
        return False  # the time left) does not stand for its disagreement
    judged = _rule.elementwise(cf, ag, ex, zr, yr, _dtypes.facts(dtype), tolerance.rtol,
                               tolerance.atol, reference=_variant.VariantReference(loss, g, d),
                               theory_inputs=tuple(inputs))
    return bool(np.any(np.isfinite(ex) & ~judged.agree & ~judged.agree_corrected))


def _rows(still, z, y, worst_row):
    """The fewest rows: the worst row alone; else with 1, 3, 7, 15 others (the first rows of the
    batch, adversarial ones first); the first that fails is then pruned row by row. Each
    candidate size is one shape to compile, so sizes are few."""
    rows = z.shape[0]
    others = [r for r in range(rows) if r != worst_row]
    keep = None
    for count in (0, 1, 3, 7, 15):
        if count >= rows:
            break
        trial = sorted([worst_row, *others[:count]])
        if still(z[trial], y[trial]):
            keep = trial
            break
    if keep is None:
        return z, y
    for row in list(keep):
        trial = [r for r in keep if r != row]
        if trial and still(z[trial], y[trial]):
            keep = trial
    return z[keep], y[keep]


def _classes(still, loss: Loss, z, y):
    """The smallest c: trailing classes that no kept row's target uses, dropped at once (not
    with class weights: they are per class)."""
    if loss.weight is not None or z.shape[1] <= 1:
        return z, y
    if loss.targets == "indices":
        with jax.enable_x64(True):
            targets = np.asarray(_variant.decode(loss, jnp.asarray(y)))
        used = [int(t) for t in targets if 0 <= t < z.shape[1]]
        if loss.ignore_index is not None and 0 <= loss.ignore_index < z.shape[1]:
            used.append(loss.ignore_index)
        smallest = max([*used, 0]) + 1
    else:
        nonzero = np.flatnonzero(np.any(y != 0, axis=0))
        smallest = int(nonzero.max()) + 1 if nonzero.size else 1
    smallest = max(smallest, 2) if z.shape[1] >= 2 else 1
    if smallest < z.shape[1] and still(z[:, :smallest], y[:, :smallest]):
        return z[:, :smallest], y[:, :smallest]
    return z, y


def _values(still, z, y):
    with np.errstate(invalid="ignore"):
        rounded = np.where(np.isfinite(z), np.round(z), z)
    if not np.array_equal(rounded, z, equal_nan=True) and still(rounded, y):
        z = rounded
    if z.size <= MAX_VALUES_SINGLY:
        for index in np.ndindex(z.shape):
            if z[index] != 0:
                trial = z.copy()
                trial[index] = 0.0
                if still(trial, y):
                    z = trial
    return z, y


@dataclass(frozen=True)
class TwoArguments:
    """A plain closed form ``fn(z, y)`` seen as a kernel ``(z, targets, grad_output)`` of the
    plain loss (its targets are the labels, its upstream gradient 1)."""

    fn: Callable[..., Any]

    def __call__(self, z: jax.Array, targets: jax.Array, grad_output: jax.Array) -> jax.Array:
        return self.fn(z, targets)


def plain_counterexample(fn: Callable[..., Any], closed_form: Callable[..., Any] | None,
                         dtype: str, tolerance: Tolerance, z64: np.ndarray, y: np.ndarray,
                         options: Options, c: int, scale: float, kind: str,
                         worst_row: int, kernel: Kernel | None = None) -> tuple[str | None, str]:
    """For the plain check, when no single row fails alone: the cell's batch shrunk (a closed
    form that mixes rows, e.g. a sum over the batch), or ``(None, why not)``; a kernel's
    snippet is written in its framework, called as the check calls it."""
    return counterexample(TwoArguments(fn), Loss(), "1", dtype, tolerance, z64, y, options, c,
                          scale, kind, worst_row, shown=closed_form, kernel=kernel)


def counterexample(fn: Callable[..., Any], loss: Loss, mode: str, dtype: str,
                   tolerance: Tolerance, z64: np.ndarray, y: np.ndarray, options: Options,
                   c: int, scale: float, kind: str, worst_row: int = 0,
                   shown: Callable[..., Any] | None = None,
                   rows: str = "the cell's rows",
                   kernel: Kernel | None = None) -> tuple[str | None, str]:
    """A shrunk failing batch as a runnable snippet, or ``(None, why not)``. ``shown`` is the
    plain closed form ``(z, y)`` a :class:`TwoArguments` wraps (``None``: σ − y); ``rows`` says
    whose rows ``z`` holds (a streamed cell's: one call's, its own batch)."""
    if _BUDGET["left"] <= 0 or MAX_CELLS <= 0:
        return None, (f"not shrunk: a check shrinks its first {MAX_CELLS} disagreeing cell(s) "
                      "only (each candidate batch compiles); theirs stand for the rest")
    _BUDGET["left"] -= 1
    facts = _dtypes.facts(dtype)
    z = np.asarray(z64).astype(facts.dtype).astype(np.float64)

    def still(zc, yc):
        return fails(fn, loss, mode, dtype, tolerance, zc, yc)

    if not still(z, y):
        return None, ("the cell's batch does not disagree when judged alone by the rule; the "
                      "disagreement shows only in the cell's statistics")
    z, y = _rows(still, z, y, worst_row)
    z, y = _classes(still, loss, z, y)
    z, y = _values(still, z, y)
    origin = (f"shrunk from the cell classes={c}, dtype={dtype}, scale={format_number(scale)}, "
              f"labels={kind}, seed={options.seed}: {z.shape[0]} of {rows}, "
              f"c = {z.shape[1]}")
    if isinstance(fn, TwoArguments) and kernel is not None and kernel.three_arguments:
        t = getattr(fn.fn, "sequence", None)  # shown [b, t, V] as the check showed it
        lead = (z.shape[0],) if t is None else as_sequences(z, t, 1).shape[:2]
        return kernel_snippet(kernel.fn, framework=kernel.framework, device=kernel.device,
                              dtype=dtype, z=z.reshape(*lead, -1).tolist(),
                              y=y.reshape(*lead, -1).tolist(), tolerance=tolerance,
                              origin=origin), ""
    if isinstance(fn, TwoArguments):
        return plain_snippet(shown, dtype, z, y, tolerance, origin), ""
    return snippet(fn, loss, mode, dtype, z, y, tolerance, origin), ""


def plain_snippet(closed_form: Callable[..., Any] | None, dtype: str, z: np.ndarray,
                  y: np.ndarray, tolerance: Tolerance, origin: str) -> str:
    """Runnable Python that shows a plain closed form off on a batch of several rows."""
    from ._snippet import function_lines

    lines, name = function_lines(closed_form)
    z_text = np.array2string(z, separator=", ", threshold=10**6).replace("inf", "jnp.inf")
    y_text = np.array2string(y, separator=", ", threshold=10**6)
    return "\n".join([
        f"# {origin}",
        "import jax",
        "import jax.numpy as jnp",
        *lines,
        "jax.config.update('jax_enable_x64', True)",
        "def loss(z, y):  # C = -sum(y * log_softmax(z)), with 0 * log 0 = 0",
        "    return -jnp.sum(jnp.where(y == 0, 0.0, y * jax.nn.log_softmax(z)))",
        f"z = jnp.asarray({z_text}, jnp.float64).astype(jnp.{dtype})",
        f"y = jnp.asarray({y_text}, jnp.float64).astype(jnp.{dtype})",
        f"closed_form = {name}(z, y)",
        "reference = jax.grad(loss)(z.astype(jnp.float64), y.astype(jnp.float64))",
        f"print(closed_form, reference, sep='\\n')  # rtol {tolerance.rtol}, atol {tolerance.atol}",
    ]) + "\n"


def snippet(fn: Callable[..., Any], loss: Loss, mode: str, dtype: str, z: np.ndarray,
            y: np.ndarray, tolerance: Tolerance, origin: str) -> str:
    """Runnable Python that shows the batch disagree."""
    from ._snippet import function_lines

    with jax.enable_x64(True):
        targets = np.asarray(_variant.decode(loss, jnp.asarray(y))).tolist()
        g = np.asarray(_variant.grad_output(loss, mode, z.shape[0], jnp.float64)).tolist()
    lines, name = function_lines(fn)
    args = ", ".join(f"{k}={v!r}" for k, v in (("label_smoothing", loss.label_smoothing),
                                                ("weight", loss.weight),
                                                ("ignore_index", loss.ignore_index),
                                                ("reduction", loss.reduction),
                                                ("z_loss", loss.z_loss),
                                                ("softcap", loss.softcap),
                                                ("temperature", loss.temperature),
                                                ("targets", loss.targets)))
    z_text = np.array2string(z, separator=", ", threshold=10**6).replace("inf", "jnp.inf")
    return "\n".join([
        f"# {origin}",
        "import jax",
        "import jax.numpy as jnp",
        "from derivation import Loss",
        "from verify._loss import gradient",
        *lines,
        "jax.config.update('jax_enable_x64', True)",
        f"loss = Loss({args})",
        f"z = jnp.asarray({z_text}, jnp.float64).astype(jnp.{dtype})",
        f"targets = jnp.asarray({targets!r})",
        f"grad_output = jnp.asarray({g!r}, jnp.{dtype})",
        "reference = gradient(loss, z.astype(jnp.float64), targets,",
        "                     grad_output.astype(jnp.float64))",
        *_as_seen(fn, z.shape[0]),
        f"closed_form = {name}(z, targets, grad_output)",
        f"print(closed_form, reference, sep='\\n')  # rtol {tolerance.rtol}, atol {tolerance.atol}",
    ]) + "\n"


def _as_seen(fn: Callable[..., Any], rows: int) -> list[str]:
    """The lines that shape a snippet's rows as the check showed them to ``fn``: ``[b, t, V]``
    for a kernel checked with a sequence axis (:func:`verify._kernel_bridge.as_sequences`),
    nothing for one shown rows."""
    from ._kernel_bridge import Bridge
    from ._kernel_plan import Sequenced

    t = fn.sequence if isinstance(fn, Bridge | Sequenced) else None
    if t is None:
        return []
    lead = (rows // t, t) if rows % t == 0 else (1, rows)
    return [
        f"lead = {lead}  # the kernel saw these rows as [b, t, V], as in the check",
        "z, reference = z.reshape(*lead, -1), reference.reshape(*lead, -1)",
        "targets = targets.reshape(*lead, *targets.shape[1:])",
        "grad_output = grad_output.reshape(lead) if grad_output.ndim else grad_output",
    ]
