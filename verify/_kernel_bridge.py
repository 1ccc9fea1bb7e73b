"""A torch or NumPy kernel as a closed form the measuring stage can compile: a host callback.

The measuring stage compiles one program per (closed form, dtype, chunk shape) and calls the
closed form inside it as ``fn(z, y)`` or ``fn(z, targets, grad_output)``. :class:`Bridge` is such
a ``fn`` for a :class:`Kernel` that is not JAX: ``jax.pure_callback`` hands the chunk's inputs
(in the cell's dtype, as NumPy arrays) to the host, where the kernel runs as itself — torch
eagerly, on CPU or CUDA — with ``grad_output`` 2 where none is given (the plain loss is a sum,
its upstream gradient 1: the kernel's gradient is halved, see
:data:`PLAIN_GRAD_OUTPUT`), and its gradient goes back into the program.
Batched by ``vmap`` (the shrinker judges candidates that way) the callback runs once per
candidate, in order.

What a callback cannot return travels beside it: per dtype, the first call of the kernel that
wrote into its inputs and the first error it raised (:meth:`Bridge.take`, read after each
chunk). Until then that dtype's calls give NaN, never a made-up gradient.

The callback's arrays are JAX's; the kernel gets a copy of its own (:class:`Kernel`), and the
callback's arrays are the snapshot it is compared with.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._frameworks import Kernel, Write

PLAIN_GRAD_OUTPUT = 2.0
"""The upstream gradient a kernel is called with for the plain loss, whose own is 1 (a sum): its
gradient is then divided by 2, which is exact in binary floating point, so that a kernel that
ignores ``grad_output`` (or squares it, or divides by it) is found, and one that uses it
is judged on the very values it gives at 1."""


PROBE_ROWS = 2
"""Rows of the call that tries a kernel on each (dtype, classes) before anything is measured."""


class Bridge:
    """``(z, y) -> gradient`` for the measuring stage, calling a torch or NumPy kernel.

    Hashed by identity, and made once per (function, framework, device, sequence) by
    :func:`bridge`, so that a second check of the same kernel reuses the programs compiled for
    the first.
    """

    def __init__(self, kernel: Kernel, sequence: int | None = None) -> None:
        self.kernel = kernel
        self.sequence = sequence
        self.__name__ = kernel.name
        # The user's names: reports name the function by them and snippets import it.
        self.__module__ = getattr(kernel.fn, "__module__", None) or ""
        self.__qualname__ = getattr(kernel.fn, "__qualname__", kernel.name)
        self._writes: dict[str, tuple[Write, ...]] = {}
        self._errors: dict[str, Exception] = {}  # per dtype name, the first
        self.seconds = 0.0
        """The time its kernel's calls took, all told (the shrinker's budget is of this)."""
        self.limit: float | None = None
        """While shrinking, the :attr:`seconds` past which the kernel is not called again (its
        calls then give NaN, and the shrinker stops): a batch of candidates is many calls."""

    def __call__(
        self, z: jax.Array, targets: jax.Array, grad_output: jax.Array | None = None
    ) -> jax.Array:
        """The kernel's gradient at ``(z, targets, grad_output)`` (if None: at grad_output
        :data:`PLAIN_GRAD_OUTPUT`, divided by it).

        The callback runs in a thread where 64-bit types are off (``jax.enable_x64`` holds for
        the calling thread only), where float64 and int64 would be cast to 32 bits on the way
        in and out: 8-byte arrays cross as their bits, pairs of uint32.
        """
        plain = grad_output is None
        if plain:
            grad_output = jnp.full((), PLAIN_GRAD_OUTPUT, z.dtype)
        args = (z, targets, grad_output)
        kinds = tuple(np.dtype(a.dtype) for a in args)
        sent = [_bits(a) if a.dtype.itemsize == 8 else a for a in args]
        wide = z.dtype.itemsize == 8
        out = jax.ShapeDtypeStruct((*z.shape, 2) if wide else z.shape,
                                   jnp.uint32 if wide else z.dtype)  # fmt: skip
        host = functools.partial(self._host, kinds=kinds, plain=plain)
        result = jax.pure_callback(host, out, *sent, vmap_method="sequential")
        return jax.lax.bitcast_convert_type(result, z.dtype) if wide else result

    def _host(self, *sent: np.ndarray, kinds: tuple[np.dtype, ...], plain: bool) -> np.ndarray:
        z, targets, grad_output = (
            np.ascontiguousarray(a).view(kind)[..., 0] if kind.itemsize == 8 else np.asarray(a)
            for a, kind in zip(sent, kinds, strict=True)
        )
        gradient = self._gradient(z, targets, grad_output)
        if plain:  # the gradient at grad_output 1, exactly (see PLAIN_GRAD_OUTPUT)
            gradient = gradient / np.asarray(PLAIN_GRAD_OUTPUT, gradient.dtype)
        if z.dtype.itemsize == 8:
            return np.ascontiguousarray(gradient)[..., None].view(np.uint32)
        return gradient

    def _gradient(self, z: np.ndarray, targets: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
        failed = np.full(z.shape, np.nan, z.dtype)
        if z.dtype.name in self._errors or (self.limit is not None and self.seconds >= self.limit):
            return failed
        per_row = 1 if targets.ndim == z.ndim else 0
        started = time.perf_counter()
        try:
            call = self.kernel(
                as_sequences(z, self.sequence, 1),
                as_sequences(targets, self.sequence, per_row),
                as_sequences(grad_output, self.sequence, 0),
            )
        except (TypeError, ValueError) as error:
            self._errors.setdefault(z.dtype.name, error)
            return failed
        finally:
            self.seconds += time.perf_counter() - started
        if call.writes:
            self._writes.setdefault(z.dtype.name, call.writes)
        return failed if call.gradient is None else call.gradient.reshape(z.shape)

    def take(self) -> tuple[dict[str, tuple[Write, ...]], dict[str, Exception]]:
        """Per dtype name, the writes of the first call that wrote since the last take, and the
        first error the kernel raised (after which the dtype's calls gave NaN)."""
        writes, self._writes = self._writes, {}
        errors, self._errors = self._errors, {}
        return writes, errors


def bridged(fn: Any) -> Bridge | None:
    """The :class:`Bridge` behind ``fn`` (itself, or this package's wrapper of one, with
    ``fn``), or None."""
    for _ in range(3):  # a user's callable may have an ``fn`` of its own: never looped on
        if isinstance(fn, Bridge) or not hasattr(fn, "fn"):
            break
        fn = fn.fn
    return fn if isinstance(fn, Bridge) else None


def raised(fn: Any) -> bool:
    """Whether the bridged kernel behind ``fn`` raised since the last take — taking it: a
    shrinker's candidates that a kernel cannot take are not evaluated, like a JAX closed form's
    that do not trace."""
    bridge = bridged(fn)
    return bridge is not None and bool(bridge.take()[1])


def _bits(a: jax.Array) -> jax.Array:
    """An 8-byte array as its bits, ``[..., 2]`` uint32."""
    return jax.lax.bitcast_convert_type(a, jnp.uint32)


@functools.lru_cache(maxsize=64)
def _bridge(fn: Callable[..., Any], framework: str, device: str, sequence: int | None) -> Bridge:
    return Bridge(Kernel(fn, framework, device), sequence)


def bridge(kernel: Kernel, sequence: int | None = None) -> Bridge:
    """The :class:`Bridge` of a torch or NumPy kernel (the same one for the same function and
    sequence length), showing it logits ``[b, sequence, V]`` when a sequence is given."""
    try:
        return _bridge(kernel.fn, kernel.framework, kernel.device, sequence)
    except TypeError:  # an unhashable callable
        return Bridge(kernel, sequence)


def as_sequences(a: Any, sequence: int | None, per_row: int) -> Any:
    """A ``[n, ...]`` array of rows as ``[n // T, T, ...]`` (or ``[1, n, ...]`` when ``n`` is not
    a multiple of ``T``); ``per_row`` is its number of axes per row (0 for ``[n]``). A scalar,
    or no sequence, passes as it is."""
    if sequence is None or a.ndim != per_row + 1:
        return a
    n = a.shape[0]
    lead = (n // sequence, sequence) if n % sequence == 0 else (1, n)
    return a.reshape(*lead, *a.shape[1:])


def probe(bridged: Bridge, dtypes: Iterable[str], classes: Iterable[int]) -> None:
    """Calls the bridged kernel once on every (dtype, classes), on :data:`PROBE_ROWS` rows of
    zero logits and uniform labels (shaped as the bridge shows them), so that a kernel that
    raises or returns something unusable is one error before anything is measured.

    Raises:
        TypeError, ValueError: from :class:`Kernel`, naming the dtype and shape.
    """
    for dtype, c in itertools.product(dtypes, classes):
        numpy_dtype = jnp.dtype(dtype)
        z = np.zeros((PROBE_ROWS, c), numpy_dtype)
        y = np.full((PROBE_ROWS, c), 1 / c).astype(numpy_dtype)
        t = bridged.sequence
        bridged.kernel(as_sequences(z, t, 1), as_sequences(y, t, 1),
                       np.full((), PLAIN_GRAD_OUTPUT, numpy_dtype))  # as the check calls it
