r"""Calling someone's own gradient kernel, in JAX, PyTorch or NumPy, watched for in-place writes.

A kernel is ``fn(logits, targets, grad_output) -> grad_logits``. :class:`Kernel` calls it once on
the inputs of a block of rows, in the cell's dtype, and hands back what the judge needs: the
gradient as a NumPy array on the host, in the dtype the function returned it in, and the inputs
it changed in place (:class:`Write`), if any.

What each framework receives:

* ``torch``: tensors on ``device`` (``"cpu"`` or ``"cuda"``); ``logits`` (and probability
  ``targets``, and ``grad_output``) in the cell's dtype — ``torch.bfloat16`` and
  ``torch.float16`` included —, index ``targets`` as ``torch.int64``, as
  ``F.cross_entropy`` takes them. No tensor requires grad, and no ``torch.no_grad()`` is in force,
  so a function may run autograd inside.
* ``numpy``: writable ``np.ndarray``; NumPy has float16 but no bfloat16 of its own, so bfloat16
  cells pass arrays of ``ml_dtypes.bfloat16`` (the NumPy dtype JAX itself uses, ``jnp.bfloat16``):
  NumPy's ufuncs and reductions run on them, and ``.astype(np.float32)`` is the usual first
  line of a bfloat16 kernel.
* ``jax``: ``jax.Array``, the function compiled with ``jax.jit`` once per shape and dtype.

Copies, and where DLPack cannot spare one. Every torch and NumPy input is copied exactly once:
the function gets a buffer of its own, and the untouched original is the snapshot that the
inputs are compared with after the call, bit for bit (so NaN payloads and the sign of zero
count). Into torch the copy is made from a zero-copy DLPack view (``torch.from_dlpack``) of the
NumPy array, by ``clone()`` on the CPU or ``to("cuda")`` — the one transfer a GPU needs. NumPy's
DLPack has no bfloat16 (``np.from_dlpack`` of a bfloat16 tensor raises "Unsupported dtype in
DLTensor"), so bfloat16 crosses as its bits: an ``int16`` view, bitcast on the other side, still
without a copy. The gradient comes back the same way: ``Tensor.numpy()`` (a view) on the CPU, one
``.cpu()`` from CUDA. JAX arrays are immutable, so a JAX function's inputs need neither copy nor
snapshot: they are passed as they are.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._kernel_options import validate_device, validate_framework

INPUTS: tuple[str, ...] = ("logits", "targets", "grad_output")
"""The kernel's arguments, in order."""

def _bfloat16() -> np.dtype:
    import ml_dtypes  # a dependency of JAX; the NumPy dtype JAX's bfloat16 arrays have

    return np.dtype(ml_dtypes.bfloat16)


@dataclass(frozen=True, slots=True)
class Write:
    """An input that the function changed in place.

    Attributes:
        input: its name, one of :data:`INPUTS`.
        shape: its shape in that call (a chunk of rows, padded, may be more than a cell's).
        changed: elements whose bits changed (all of them when the shape changed).
        elements: elements it holds.
        index: the first changed element's index (``()`` for a scalar or a changed shape).
    """

    input: str
    shape: tuple[int, ...]
    changed: int
    elements: int
    index: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "shape": list(self.shape),
            "changed": self.changed,
            "elements": self.elements,
            "index": list(self.index),
        }


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a kernel.

    Attributes:
        gradient: the gradient on the host, in the dtype returned (the logits'), shaped like
            them; ``None`` when the function wrote into its inputs and returned no usable array.
        writes: the inputs it changed in place, in :data:`INPUTS` order; empty when none.
    """

    gradient: np.ndarray | None
    writes: tuple[Write, ...]


def describe_writes(writes: tuple[Write, ...]) -> str:
    """The explanation of a cell whose kernel writes into its inputs, e.g. ``"writes into its
    input logits [2, 3, 5] in place (30 of 30 elements changed, the first at (0, 0, 0)):
    whatever it returns, what the caller passed is overwritten"``."""
    parts = []
    for write in writes:
        where = f", the first at {write.index}" if write.index else ""
        parts.append(
            f"{write.input} {list(write.shape)} ({write.changed} of {write.elements} elements "
            f"changed{where})"
        )
    return (
        f"writes into its input {' and '.join(parts)} in place: whatever it returns, what the "
        "caller passed is overwritten"
    )


def with_writes(verdict: str, explanation: str, writes: tuple[Write, ...]) -> tuple[str, str]:
    """A cell's verdict and explanation once its kernel's writes into its inputs are known.

    A kernel that writes into its inputs is reported as such whatever it returns: the cell's
    verdict is ``disagree``, its explanation the write. An ``undefined`` cell stays
    ``undefined`` — its inputs overflow on the cast, undefined for autograd too, so no verdict
    is given — but its explanation still says what the kernel wrote (as its ``writes`` do).
    """
    if not writes:
        return verdict, explanation
    if verdict == "undefined":
        return verdict, f"{explanation}; and the kernel {describe_writes(writes)}"
    return "disagree", describe_writes(writes)


def takes_grad_output(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes ``(logits, targets, grad_output)``; ``False`` for a JAX ``(z, y)``.

    A function whose signature cannot be read is taken to take three arguments.
    """
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    required = [p for p in positional if p.default is p.empty]
    return not (len(required) <= 2 and len(positional) == 2)


def name_of(fn: Callable[..., Any]) -> str:
    """The function's name, as reports print it: its ``__name__``, else its ``repr`` without
    memory addresses (``functools.partial(<function f>, k=1.0)``, ``<mod.Kernel object>``), so
    that a report is the same bytes from one run to the next."""
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else re.sub(r" at 0x[0-9a-fA-F]+", "", repr(fn))


def _contiguous(array: np.ndarray) -> np.ndarray:
    """The array itself when C-contiguous, else a C-contiguous copy (scalars stay 0-d)."""
    return array if array.flags.c_contiguous else np.array(array, order="C")


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's bits, as unsigned integers of its item size (NaN == NaN, -0 != 0)."""
    return _contiguous(array).view(f"u{array.dtype.itemsize}")


def _write(name: str, before: np.ndarray, after: np.ndarray) -> Write | None:
    if before.shape != after.shape or before.dtype != after.dtype:
        return Write(name, before.shape, before.size, before.size, ())
    differ = _bits(before) != _bits(after)
    changed = int(np.count_nonzero(differ))
    if not changed:
        return None
    first = np.unravel_index(int(np.argmax(differ.reshape(-1))), before.shape)
    return Write(name, before.shape, changed, before.size, tuple(int(i) for i in first))


@dataclass(frozen=True, eq=False)
class Kernel:
    """A user's gradient function, ready to be called on a block of rows.

    Attributes:
        fn: ``(logits, targets, grad_output) -> grad_logits``, or a JAX ``(z, y) -> grad``.
        framework: ``"jax"``, ``"torch"`` or ``"numpy"``.
        device: ``"cpu"``, or ``"cuda"`` for torch.
        name: the function's name, as reports print it.
        three_arguments: whether ``fn`` takes ``grad_output`` (see :func:`takes_grad_output`).
    """

    fn: Callable[..., Any]
    framework: str = "jax"
    device: str = "cpu"
    name: str = field(init=False)
    three_arguments: bool = field(init=False)
    _compiled: Callable[..., Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(
                f"closed_form: expected a callable (logits, targets, grad_output) -> "
                f"grad_logits, got {self.fn!r}"
            )
        framework = validate_framework(self.framework)
        object.__setattr__(self, "device", validate_device(self.device, framework))
        object.__setattr__(self, "name", name_of(self.fn))
        three = takes_grad_output(self.fn)
        if not three and framework != "jax":
            raise ValueError(
                f"closed_form: a {framework} function takes (logits, targets, grad_output); "
                f"{self.name} takes two arguments (only a JAX (z, y) may, for the plain loss)"
            )
        object.__setattr__(self, "three_arguments", three)
        compiled = self.fn
        if framework == "jax":
            import jax

            compiled = jax.jit(self.fn)
        object.__setattr__(self, "_compiled", compiled)

    def __call__(self, logits: Any, targets: Any, grad_output: Any) -> Call:
        """Calls the function on copies of the inputs and compares the inputs after.

        Args:
            logits: ``[..., vocabulary]``, in the cell's dtype (NumPy or JAX array).
            targets: indices ``[...]`` (int64) or probabilities shaped like ``logits``.
            grad_output: the upstream gradient: a scalar, or one value per position.

        Returns:
            The :class:`Call`.

        Raises:
            ValueError: the function raised, or returned an array of the wrong shape, or a
                torch gradient on another device than its logits'.
            TypeError: it returned something that is not an array of the framework, an integer,
                boolean or complex array, or an array in a dtype other than the logits'.
        """
        originals = tuple(np.asarray(value) for value in (logits, targets, grad_output))
        given = [self._give(value) for value in originals]
        arguments = given if self.three_arguments else given[:2]
        try:
            out = self._compiled(*arguments)
        except (Exception, SystemExit) as error:  # the user's code: a bad closed form (even
            raise ValueError(  # sys.exit), where only Ctrl-C stops the check
                f"closed_form: {self.name} raised {type(error).__name__}: {error} on "
                f"{self._describe(originals)}"
            ) from error
        writes = tuple(
            write
            for name, before, after in zip(INPUTS, originals, given, strict=True)
            if self.framework != "jax" and (write := _write(name, before, self._back(after)))
        )
        try:
            gradient = self._gradient(out, originals[0])
        except (TypeError, ValueError):
            if writes:  # the write is the finding, whatever came back
                return Call(None, writes)
            raise
        return Call(gradient, writes)

    def _describe(self, originals: tuple[np.ndarray, ...]) -> str:
        shapes = ", ".join(
            f"{name} {self._dtype_name(a.dtype)}{list(a.shape)}"
            for name, a in zip(INPUTS, originals, strict=True)
        )
        return f"{self.framework} inputs ({shapes}) on {self.device}"

    def _dtype_name(self, dtype: np.dtype) -> str:
        return f"torch.{dtype.name}" if self.framework == "torch" else dtype.name

    def _give(self, array: np.ndarray) -> Any:
        """The function's own copy of an input (a JAX input is passed as it is)."""
        if self.framework == "numpy":
            return np.array(array, copy=True)
        if self.framework == "jax":
            import jax.numpy as jnp

            return jnp.asarray(array)
        import torch

        if array.dtype == _bfloat16():
            view = torch.from_dlpack(_contiguous(array).view(np.int16))
            view = view.view(torch.bfloat16)
        else:
            view = torch.from_dlpack(_contiguous(array))
        return view.clone() if self.device == "cpu" else view.to(self.device)

    def _back(self, value: Any) -> np.ndarray:
        """A torch or NumPy array on the host, as a NumPy array (a view where it can be)."""
        if self.framework == "numpy":
            return np.asarray(value)
        import torch

        tensor = value.detach()
        if tensor.device.type != "cpu":  # an input given on CUDA (a gradient: checked first)
            tensor = tensor.cpu()
        tensor = tensor.resolve_conj().resolve_neg()
        if tensor.dtype == torch.bfloat16:
            return tensor.view(torch.int16).numpy().view(_bfloat16())
        return tensor.numpy()

    def _gradient(self, out: Any, logits: np.ndarray) -> np.ndarray:
        expected = self._dtype_name(logits.dtype)
        kind = {"torch": "torch.Tensor", "numpy": "np.ndarray", "jax": "jax.Array"}[self.framework]
        if self.framework == "torch":
            import torch

            ok = isinstance(out, torch.Tensor)
        elif self.framework == "numpy":
            ok = isinstance(out, np.ndarray)
        else:
            import jax

            ok = isinstance(out, jax.Array)
        if not ok:
            raise TypeError(
                f"closed_form: {self.name} returned {type(out).__name__}; expected a {kind} of "
                f"shape {list(logits.shape)} in {expected}, the gradient with respect to the logits"
            )
        if tuple(out.shape) != logits.shape:
            raise ValueError(
                f"closed_form: {self.name} returned shape {list(out.shape)}; expected "
                f"{list(logits.shape)}, the logits' shape"
            )
        if self.framework == "torch" and out.device.type != self.device:
            raise ValueError(
                f"closed_form: {self.name} returned its gradient on {out.device}; expected it on "
                f"{self.device}, where its logits were given (return grad.to(logits.device))"
            )
        gradient = self._back(out) if self.framework != "jax" else np.asarray(out)
        got = self._dtype_name(gradient.dtype)
        if not np.issubdtype(gradient.dtype, np.floating) and gradient.dtype != _bfloat16():
            raise TypeError(
                f"closed_form: {self.name} returned a {got} array; expected floating point "
                f"{expected}, the logits' dtype"
            )
        if gradient.dtype != logits.dtype:
            cast = {"torch": "grad.to(logits.dtype)", "numpy": "grad.astype(logits.dtype)",
                    "jax": "grad.astype(logits.dtype)"}[self.framework]  # fmt: skip
            raise TypeError(
                f"closed_form: {self.name} returned {got} for {expected} logits; a gradient is "
                f"in its logits' dtype (as autograd stores it): return {cast}"
            )
        return gradient
