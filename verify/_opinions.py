r"""Stage 2, opinions: three opinions about the gradient at the same inputs, and autograd's check.

* the **closed form**, evaluated by a call of its own (:meth:`Programs.closed_form`: a JAX
  function is jitted once per dtype and shape) on the inputs rounded to the cell's dtype;
* **autograd**, ``jax.grad`` of the reference loss in the cell's dtype;
* the **exact** gradient, ``jax.grad`` of the reference loss in float64 at the same rounded
  inputs, checked itself against forward mode and central differences on a few rows.

Autograd, the exact gradient, the theory's inputs (and the size of the gradient's terms at
them) and the check come from one compiled program per (reference, dtypes, rows, classes),
:func:`_reference_program`, which also hands back the inputs rounded to each dtype. A user's
closed form never runs inside it: :func:`dispatch` calls it on those rounded inputs, and all the
judge needs of it is :attr:`Opinions.closed_form`, a float64 array ``[rows, classes]``. That is
the seam for closed forms that are not JAX (a PyTorch or NumPy function called outside of JIT):
replace that one call. This package's own closed form (σ − y, :data:`FUSED`) is computed inside
the reference program instead: the same operations on the same rounded inputs, the same bits,
and one program to compile a chunk shape rather than one per dtype more; and with it, fewer than
:data:`SHARED_CLASSES` classes are padded to that many, so that the small class counts of a grid
share one program. :func:`dispatch` starts a chunk's programs (JAX runs them asynchronously) and
:func:`collect` waits and hands everything over as float64 NumPy arrays (:class:`Opinions`),
which the judge reads without compiling anything.

Programs are compiled once per process (:class:`Programs`), ahead of use in background threads
when asked (XLA compiles with the GIL released, so a grid's compilations overlap each other and
the drawing), and loaded whole from the persistent cache where the CLI enabled it (``_cache``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import types
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from derivation import Loss

from . import _cache, _dtypes
from ._reference import Reference, plain

FORWARD_MODE_RTOL = 1e-9
"""How far (relative) a JVP may be from ⟨jax.grad, v⟩ in float64: both are exact up to a sum's
rounding, about :math:`c \\cdot 2^{-52}`."""

FINITE_DIFFERENCE_RTOL = 1e-6
"""How far (relative) a central difference may be from ⟨jax.grad, v⟩ in float64: its truncation
and cancellation errors are about 1e-9 here, a wrong autograd rule is off by O(1)."""

FINITE_DIFFERENCE_STEP = 1e-4

FINITE_DIFFERENCE_NOISE = 4.0
"""How many times its rounding noise a central difference may be off beyond
:data:`FINITE_DIFFERENCE_RTOL`. The noise is what rounding the two losses can be off by — the
logits rounded (:math:`\\epsilon \\sum_k |g_k z_k|`) and the losses themselves
(:math:`\\epsilon |C_\\pm|`) — over the step: at logits of 10⁶ about 10⁻⁶, a steep softmax,
not a wrong autograd rule."""

CHECKED_ROWS = 8
"""Rows per chunk whose float64 autograd is checked by forward mode and finite differences."""

TRACES = {"closed_form": 0, "reference": 0}
"""How often each program was traced (each trace compiles): once per dtype(s) and shape."""

_TRACING = threading.Lock()


def _traced(kind: str) -> None:
    with _TRACING:
        TRACES[kind] += 1


def loss(z: ArrayLike, y: ArrayLike) -> jax.Array:
    """The plain reference loss, the softmax cross-entropy summed over ``[rows, classes]``."""
    return plain().loss(z, y)


def autograd(z: ArrayLike, y: ArrayLike) -> jax.Array:
    """``jax.grad`` of the plain loss with respect to the logits, in the inputs' dtype."""
    return jax.grad(loss)(z, y)


def softmax_minus_labels(z: ArrayLike, y: ArrayLike) -> jax.Array:
    """The closed form σ(z) − y, the softmax computed stably (shifted by its maximum)."""
    return jax.nn.softmax(z, axis=-1) - y


@dataclass(frozen=True)
class Opinions:
    """The opinions on one chunk of rows in one dtype: float64 NumPy arrays ``[rows, classes]``
    unless said otherwise.

    Attributes:
        closed_form: the closed form, in the dtype, widened.
        autograd: ``jax.grad`` in the dtype, widened.
        exact: float64 ``jax.grad`` at the rounded inputs.
        checked_ok: ``[checked rows]``, the checked rows whose rounded logits are finite (or
            masked with -inf): their check counts.
        sigma, label, label_sum: the theory's inputs (:attr:`Reference.theory_inputs`);
            ``label_sum`` is ``[rows, 1]``.
        size: the size of the gradient's terms at them (:attr:`Reference.gradient_size`).
        forward, central, along: per checked row (the chunk's first ones), the directional
            derivative along ``direction`` by forward mode, by central differences, and from
            ``exact``.
        noise: per checked row, the rounding noise of the central difference
            (:data:`FINITE_DIFFERENCE_NOISE`).
        direction: ``[checked rows, classes]``, unit directions, zero at masked classes.
    """

    closed_form: np.ndarray
    autograd: np.ndarray
    exact: np.ndarray
    checked_ok: np.ndarray
    sigma: np.ndarray
    label: np.ndarray
    label_sum: np.ndarray
    size: np.ndarray
    forward: np.ndarray
    central: np.ndarray
    along: np.ndarray
    direction: np.ndarray
    noise: np.ndarray


def autograd_check(
    reference: Reference, z: jax.Array, y: jax.Array, gradient: jax.Array, direction: jax.Array,
    size: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    r"""The directional derivative of the loss along a unit direction per row, three ways.

    Along :math:`v` (``direction`` made zero at masked classes and normalised), from
    ``gradient`` as :math:`\langle \nabla C, v \rangle`, by ``jax.jvp`` and by
    :math:`(C(z + hv) - C(z - hv)) / 2h`.

    Args:
        reference: the loss.
        z: float64 logits ``[rows, classes]``.
        y: float64 labels ``[rows, classes]``.
        gradient: ``jax.grad`` at ``(z, y)``, float64.
        direction: ``[rows, classes]``, any nonzero rows.
        size: ``[rows, classes]``, the size of the gradient's terms (``Reference.gradient_size``):
            with the gradient, how much a rounded logit moves the loss.

    Returns:
        ``(forward, central, along, v, noise)``: three ``[rows]``, the unit directions, and the
        central difference's rounding noise ``[rows]`` (:data:`FINITE_DIFFERENCE_NOISE`).
    """
    v = jnp.where(jnp.isfinite(z), direction.astype(z.dtype), 0.0)
    v = v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-300)
    along = jnp.sum(gradient * v, axis=-1)
    _, forward = jax.jvp(lambda x: reference.row_losses(x, y), (z,), (v,))
    # a loss of z/T is as smooth in z as a loss of z is over T: so is the step
    h = getattr(reference, "finite_difference_step", FINITE_DIFFERENCE_STEP)
    plus, minus = reference.row_losses(z + h * v, y), reference.row_losses(z - h * v, y)
    central = (plus - minus) / (2 * h)
    # a loss near 0 made of large terms (lse − z_y at a far-above logit) rounds as its terms
    weight = jnp.abs(gradient) + jnp.abs(size)
    moved = jnp.where(jnp.isfinite(z), weight * (jnp.abs(z) + h * jnp.abs(v)), 0.0)
    rounding = jnp.sum(moved, axis=-1) + jnp.abs(plus) + jnp.abs(minus)
    noise = jnp.finfo(z.dtype).eps * rounding / (2 * h)
    return forward, central, along, v, noise


def _reference_program(
    reference: Reference,
    dtypes: tuple[str, ...],
    fused: Callable[..., Any] | None,
    z64: jax.Array,
    y64: jax.Array,
    direction: jax.Array,
) -> list[dict[str, jax.Array]]:
    """For each dtype: autograd, the exact gradient, the theory's inputs and the gradient's size at
    them, and the autograd check; and the rounded inputs in the dtype, for the closed form,
    or, given one of this package's closed forms as ``fused`` (:data:`FUSED`), the closed
    form at them."""
    _traced("reference")
    f64 = jnp.float64
    grad = jax.grad(reference.loss)
    checked = direction.shape[0]
    out = []
    for index, name in enumerate(dtypes):
        dtype = _dtypes.facts(name).dtype
        z, y = z64[index].astype(dtype), y64.astype(dtype)
        zr, yr = z.astype(f64), y.astype(f64)
        exact = grad(zr, yr)
        sigma, label, label_sum = reference.theory_inputs(zr, yr)
        # Elementwise, in the program's pass over the data rather than a NumPy pass of its own.
        # (XLA flushes subnormal results to zero: a size below the smallest normal number is
        # measured in units of that number either way, and adds nothing to a normal one.)
        size = jnp.broadcast_to(reference.gradient_size(sigma, label, label_sum), zr.shape)
        forward, central, along, v, noise = autograd_check(
            reference, zr[:checked], yr[:checked], exact[:checked], direction, size[:checked]
        )
        rounded = {"z": z, "y": y} if fused is None else {
            "closed_form": jnp.asarray(fused(z, y)).astype(f64)}
        out.append({
            **rounded, "autograd": grad(z, y).astype(f64), "exact": exact,
            "checked_ok": jnp.all(jnp.isfinite(zr[:checked]) | (zr[:checked] < 0), axis=-1),
            "sigma": sigma, "label": label, "label_sum": label_sum, "size": size,
            "forward": forward, "central": central, "along": along, "direction": v,
            "noise": noise,
        })  # fmt: skip
    return out


def _closed_form_program(fn: Callable[..., Any], rows: int, z: jax.Array,
                         y: jax.Array) -> jax.Array:
    """The closed form on the chunk's first ``rows`` rows — a chunk padded to a shared shape
    repeats its last row, which a closed form that works in tiles of rows must not see: its
    ragged tail would be hidden — and their last row's gradient repeated as the padding's."""
    _traced("closed_form")
    if rows >= z.shape[0]:
        return jnp.asarray(fn(z, y)).astype(jnp.float64)
    own = jnp.asarray(fn(z[:rows], y[:rows])).astype(jnp.float64)
    padding = jnp.broadcast_to(own[-1:], (z.shape[0] - rows, *own.shape[1:]))
    return jnp.concatenate([own, padding])


FUSED = frozenset({softmax_minus_labels})
"""This package's closed forms: each is computed inside the reference program (one program a
chunk shape, not one more per dtype), where the same operations give the same bits as its own
call."""

SHARED_CLASSES = 16
"""With a closed form of :data:`FUSED`, fewer classes than this share one program of this many:
the inputs are padded with classes masked as the adversarial row masks them (logit −∞, label
0), which add exact zeros to every sum over classes, and the padding is cut off before judging
(:func:`collect`)."""


def program_classes(closed_form: Callable[..., Any] | None, classes: int) -> int:
    """The class count of the program that computes ``classes`` classes."""
    return SHARED_CLASSES if closed_form in FUSED and classes < SHARED_CLASSES else classes


_JITTED = {
    "reference": jax.jit(_reference_program, static_argnums=(0, 1, 2)),
    "closed_form": jax.jit(_closed_form_program, static_argnums=(0, 1)),
}
"""The programs :class:`Programs` compiles, by kind: each a jitted function whose static
arguments come first (a loss variant's are added by :func:`register`)."""


def register(kind: str, jitted: Any) -> None:
    """Adds a kind of program (``jitted``: static arguments first) for :meth:`Programs.compiled`."""
    _JITTED[kind] = jitted


def ours(thing: Any) -> bool:
    """Whether a function or class is this package's (lambdified or exec'd functions have no
    module: None)."""
    return (getattr(thing, "__module__", None) or "").split(".")[0] == __name__.split(".")[0]


def _saved_key(kind: str, static: tuple[Any, ...],
               shapes: tuple[jax.ShapeDtypeStruct, ...]) -> tuple[Any, ...] | None:
    """A key for a program of this package, computed without tracing it, or None for programs
    that hold a user's function (only JAX's own cache, keyed by what they trace to, keeps
    those)."""
    head = static[0]
    if isinstance(head, Reference):
        if not head.cacheable:
            return None
        name = head.name
    elif isinstance(head, Loss):  # a loss variant: its parameters are all of it
        name = repr(head)
    elif ours(type(head)) and callable(getattr(type(head), "cache_name", None)):
        name = head.cache_name()  # an object of this package: None when it holds a user's
        if name is None:
            return None
    elif isinstance(head, types.FunctionType) and ours(head):
        name = f"{head.__module__}.{head.__qualname__}"  # a function of this package
    else:
        return None  # a user's function, or a wrapper holding one (a kernel's bridge)
    rest = tuple(f"{item.__module__}.{item.__qualname__}" if item in FUSED else item
                 for item in static[1:])
    return (kind, name, rest, tuple((s.shape, str(s.dtype)) for s in shapes))


def _compile(kind: str, static: tuple[Any, ...], shapes: tuple[jax.ShapeDtypeStruct, ...]) -> Any:
    """A program compiled, or loaded whole from the persistent cache (``_cache``)."""
    def compile_() -> Any:
        with jax.enable_x64(True):
            return _JITTED[kind].lower(*static, *shapes).compile()

    return _cache.load_or_compile(_saved_key(kind, static, shapes), compile_)


class Programs:
    """The compiled programs of this process, each compiled once, ahead in background threads on
    request.

    :meth:`prepare` starts the compilations of a chunk shape; the matching call waits for them.
    Without :meth:`prepare` a program is compiled at its first call.
    """

    def __init__(self) -> None:
        self._futures: dict[Hashable, Future[Any]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _get(self, key: Hashable, kind: str, static: tuple[Any, ...], shapes: tuple[Any, ...],
             ahead: bool) -> Future[Any]:
        future = self._futures.get(key)
        if future is None:
            if ahead:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(os.cpu_count() or 1, "softmax-ce-compile")
                future = self._pool.submit(_compile, kind, static, shapes)
            else:
                future = Future()
                try:
                    future.set_result(_compile(kind, static, shapes))
                except Exception as error:  # noqa: BLE001 - handed to whoever waits
                    future.set_exception(error)
            self._futures[key] = future
        return future

    def _reference(self, reference: Reference, dtypes: tuple[str, ...], rows: int, classes: int,
                   checked: int, ahead: bool, fused: Callable[..., Any] | None = None
                   ) -> Future[Any]:
        f64 = jnp.float64
        shapes = (
            jax.ShapeDtypeStruct((len(dtypes), rows, classes), f64),
            jax.ShapeDtypeStruct((rows, classes), f64),
            jax.ShapeDtypeStruct((checked, classes), f64),
        )
        key = ("reference", reference, dtypes, fused, rows, classes, checked)
        return self._get(key, "reference", (reference, dtypes, fused), shapes, ahead)

    def _closed_form(self, fn: Callable[..., Any], dtype: str, rows: int, classes: int,
                     ahead: bool, own: int | None = None) -> Future[Any]:
        spec = jax.ShapeDtypeStruct((rows, classes), _dtypes.facts(dtype).dtype)
        own = rows if own is None else own
        key = ("closed_form", fn, dtype, rows, classes, own)
        return self._get(key, "closed_form", (fn, own), (spec, spec), ahead)

    def prepare(self, reference: Reference, closed_form: Callable[..., Any] | None,
                dtypes: tuple[str, ...], rows: int, classes: int, own: int | None = None
                ) -> None:
        """Starts compiling the programs of a chunk shape ``[rows, classes]`` (``own`` of its
        rows the cell's, the rest padding)."""
        fused = closed_form if closed_form in FUSED else None
        self._reference(reference, dtypes, rows, program_classes(fused, classes),
                        min(CHECKED_ROWS, rows), True, fused)
        if closed_form is not None and fused is None:
            for dtype in dtypes:
                self._closed_form(closed_form, dtype, rows, classes, True, own)

    def reference(self, reference: Reference, dtypes: tuple[str, ...], z64: np.ndarray,
                  y64: np.ndarray, direction: np.ndarray,
                  fused: Callable[..., Any] | None = None) -> list[dict[str, jax.Array]]:
        """Runs :func:`_reference_program` on ``z64 [dtypes, rows, classes]``."""
        _, rows, classes = z64.shape
        program = self._reference(reference, dtypes, rows, classes, direction.shape[0], False,
                                  fused)
        return program.result()(z64, y64, direction)

    def compiled(self, kind: str, static: tuple[Any, ...], args: tuple[ArrayLike, ...]) -> Any:
        """The program of ``kind`` (:func:`register`) for ``static`` and arguments shaped as
        ``args`` (which it then takes, in order), compiled or loaded once per process."""
        shapes = tuple(jax.ShapeDtypeStruct(np.shape(a), a.dtype) for a in args)
        key = (kind, *static, tuple((s.shape, s.dtype) for s in shapes))
        return self._get(key, kind, static, shapes, False).result()

    def closed_form(self, fn: Callable[..., Any], dtype: str, z: jax.Array,
                    y: jax.Array, own: int | None = None) -> jax.Array:
        """The closed form at ``(z, y)`` in their dtype, widened to float64; called on the
        first ``own`` rows alone when the rest are padding (:func:`_closed_form_program`)."""
        program = self._closed_form(fn, dtype, *z.shape, False, own)
        return program.result()(z, y)


def rows_of(o: Opinions, rows: slice) -> Opinions:
    """The opinions on some rows of a chunk (views); the autograd check stays the chunk's."""
    per_row = ("closed_form", "autograd", "exact", "sigma", "label", "label_sum", "size")
    return dataclasses.replace(o, **{name: getattr(o, name)[rows] for name in per_row})


PROGRAMS = Programs()
"""The process's programs."""


Pending = list[dict[str, jax.Array]]
"""Opinions under way: JAX computes asynchronously, so the caller can judge the chunk before
while these run."""


def dispatch(
    programs: Programs,
    reference: Reference,
    closed_form: Callable[..., Any],
    dtypes: tuple[str, ...],
    z64: np.ndarray,
    y64: np.ndarray,
    direction: np.ndarray,
    own: int | None = None,
) -> Pending:
    """Starts computing the opinions on one chunk, for each dtype; :func:`collect` waits.

    Args:
        programs: where the compiled programs are kept.
        reference: the loss and its theory.
        closed_form: a JAX-traceable ``(z, y) -> gradient``.
        dtypes: the dtypes, in the order of ``z64``'s first axis.
        z64: float64 logits ``[dtypes, rows, classes]`` (the far-above row depends on the dtype).
        y64: float64 labels ``[rows, classes]``.
        direction: ``[checked rows, classes]``, the autograd check's random directions.
        own: how many of the rows are the cell's (the rest pad the chunk to a shared shape):
            a user's closed form sees those alone.
    """
    if closed_form in FUSED:  # computed beside the others, few classes padded to a shared count
        classes = z64.shape[-1]
        pad = program_classes(closed_form, classes) - classes
        if pad:
            z64 = np.concatenate([z64, np.full((*z64.shape[:-1], pad), -np.inf)], axis=-1)
            y64 = np.concatenate([y64, np.zeros((y64.shape[0], pad))], axis=-1)
            direction = np.concatenate([direction, np.zeros((direction.shape[0], pad))], axis=-1)
        return programs.reference(reference, dtypes, z64, y64, direction, closed_form)
    outputs = programs.reference(reference, dtypes, z64, y64, direction)
    for dtype, out in zip(dtypes, outputs, strict=True):
        out["closed_form"] = programs.closed_form(closed_form, dtype, out.pop("z"), out.pop("y"),
                                                  own)
    return outputs


def collect(dtypes: tuple[str, ...], pending: Pending,
            classes: int | None = None) -> dict[str, Opinions]:
    """The opinions of :func:`dispatch`, for each dtype, as NumPy arrays (waiting for them);
    with ``classes``, the first ``classes`` classes of each (views: a padded program's
    padding cut off)."""
    def cut(value: jax.Array) -> np.ndarray:
        array = np.asarray(value)
        wide = classes is not None and array.ndim == 2 and array.shape[1] > classes
        return array[:, :classes] if wide else array

    return {
        dtype: Opinions(**{name: cut(value) for name, value in out.items()})
        for dtype, out in zip(dtypes, pending, strict=True)
    }


@partial(jax.jit, static_argnames=("closed_form",))
def rows_alone(closed_form: Callable[..., Any], z: jax.Array, y: jax.Array) -> jax.Array:
    """The closed form on each row of ``[n, classes]`` alone, as a ``[1, classes]`` batch (so
    that a closed form that mixes rows sees one row), widened to float64."""
    one = lambda z_row, y_row: jnp.asarray(closed_form(z_row[None], y_row[None]))[0]  # noqa: E731
    return jax.vmap(one)(z, y).astype(jnp.float64)
