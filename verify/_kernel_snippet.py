"""A kernel's counterexample as a runnable snippet in its own framework (pure Python, no JAX).

A torch kernel's snippet needs torch alone: the reference is autograd of the plain loss,
−Σ targets · log_softmax(logits) over the last axis, in the dtype and in float64, and the kernel
is held to the float64 one (PyTorch's own autograd in a half dtype can be farther from it than
``jax.grad``, which the check compares with: held to it, the snippet of a kernel that is
PyTorch's autograd passed); the kernel is called at ``grad_output`` 2 and divided by it, as the
check calls it. A
NumPy kernel's snippet takes its reference from ``jax.grad``, as the JAX snippet does. Both call
the kernel on copies and say which input it wrote into, before comparing gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._kernel_bridge import PLAIN_GRAD_OUTPUT
from ._options import Tolerance
from ._snippet import function_lines

_TORCH_REFERENCE = '''\
def reference(logits, targets, grad_output):  # autograd of C = -sum(targets * log_softmax(logits))
    leaf = logits.detach().clone().requires_grad_(True)  # classes on the last axis, 0 * log 0 = 0
    terms = targets * torch.log_softmax(leaf, dim=-1)
    loss = -torch.where(targets == 0, torch.zeros_like(terms), terms).sum()
    return torch.autograd.grad(loss, leaf, grad_output)[0]
'''

_JAX_REFERENCE = '''\
def loss(z, y):  # C = -sum(y * log_softmax(z)), with 0 * log 0 = 0
    return -jnp.sum(jnp.where(y == 0, 0.0, y * jax.nn.log_softmax(z)))
'''


_GRAD_OUTPUT_COMMENT = (
    f"# C's upstream gradient is 1; the kernel is called at {PLAIN_GRAD_OUTPUT!r} and divided by "
    "it (exact), so that one that ignores grad_output shows")


def _rows(values: Sequence[Any]) -> str:
    """One row ``[[…]]``, or nested rows (a batch, or ``[b, t, V]``) as nested lists."""
    def one(value: float) -> str:
        if value != value:
            return "float('nan')"
        if value in (float("inf"), float("-inf")):
            return f"float('{value}')"
        return repr(float(value))

    def nested(item: object) -> str:
        if isinstance(item, Sequence):
            return "[" + ", ".join(nested(x) for x in item) + "]"
        return one(item)

    return nested(values if values and isinstance(values[0], Sequence) else [values])


def kernel_snippet(
    fn: Callable,
    *,
    framework: str,
    device: str,
    dtype: str,
    z: Sequence[float],
    y: Sequence[float],
    tolerance: Tolerance,
    origin: str,
    sequence: bool = False,
) -> str:
    """The runnable counterexample of a kernel on one row.

    Args:
        fn: the kernel ``(logits, targets, grad_output) -> grad_logits``.
        framework: ``"torch"``, ``"numpy"`` or ``"jax"``.
        device: where a torch kernel runs.
        dtype: the cell's dtype.
        z: the logits, already representable in ``dtype``: one row, or a batch of rows.
        y: the probability targets, already representable in ``dtype``, shaped as ``z``.
        tolerance: the cell's tolerance.
        origin: what the comment line says the case comes from.
        sequence: the row is one position of one sequence, ``[1, 1, V]``, as the kernel saw it.
    """
    setup, call = function_lines(fn)
    z_text, y_text = _rows(z), _rows(y)
    if sequence:
        z_text, y_text = f"[{z_text}]", f"[{y_text}]"
    if framework == "torch":
        where = "" if device == "cpu" else f", device={device!r}"
        lines = [
            f"# Falsifying example, {origin}",
            "import torch",
            "import torch.nn.functional as F",
            *setup,
            "",
            _TORCH_REFERENCE,
            f"logits = torch.tensor({z_text}, dtype=torch.{dtype}{where})",
            f"targets = torch.tensor({y_text}, dtype=torch.{dtype}{where})",
            _GRAD_OUTPUT_COMMENT,
            f"grad_output = torch.tensor({PLAIN_GRAD_OUTPUT!r}, dtype=torch.{dtype}{where})",
            "given = (logits.clone(), targets.clone(), grad_output.clone())",
            f"kernel = {call}(*given) / grad_output",
            'for name, before, after in zip(("logits", "targets", "grad_output"),',
            "                               (logits, targets, grad_output), given):",
            '    assert torch.equal(before, after), f"the kernel wrote into its {name}"',
            "autograd = reference(logits, targets, torch.ones_like(grad_output))",
            "exact = reference(logits.double(), targets.double(), "
            "torch.ones_like(grad_output.double()))",
            'print("kernel:  ", kernel)',
            'print("autograd:", autograd)',
            'print("float64: ", exact)',
            "# held to the float64 gradient: PyTorch's autograd in a half dtype may be off it",
            f"torch.testing.assert_close(kernel.double(), exact, rtol={tolerance.rtol!r}, "
            f"atol={tolerance.atol!r})",
        ]
    elif framework == "jax":
        lines = [
            f"# Falsifying example, {origin}",
            "import jax",
            "import jax.numpy as jnp",
            *setup,
            "",
            _JAX_REFERENCE,
            f"logits = jnp.array({z_text}, dtype=jnp.{dtype})",
            f"targets = jnp.array({y_text}, dtype=jnp.{dtype})",
            _GRAD_OUTPUT_COMMENT,
            f"grad_output = jnp.array({PLAIN_GRAD_OUTPUT!r}, dtype=jnp.{dtype})",
            f"kernel = {call}(logits, targets, grad_output) / grad_output",
            "autograd = jax.grad(loss)(logits, targets)",
            "with jax.enable_x64(True):",
            "    exact = jax.grad(loss)(logits.astype(jnp.float64), targets.astype(jnp.float64))",
            'print("kernel:  ", kernel)',
            'print("jax.grad:", autograd)',
            'print("float64: ", exact)',
            f"assert jnp.allclose(kernel, autograd, rtol={tolerance.rtol!r}, "
            f'atol={tolerance.atol!r}), "the kernel disagrees with jax.grad"',
        ]
    else:
        np_dtype = f"jnp.{dtype}" if dtype == "bfloat16" else f"np.{dtype}"
        lines = [
            f"# Falsifying example, {origin}",
            "import jax",
            "import jax.numpy as jnp",
            "import numpy as np",
            *setup,
            "",
            _JAX_REFERENCE,
            f"logits = np.array({z_text}, dtype={np_dtype})",
            f"targets = np.array({y_text}, dtype={np_dtype})",
            _GRAD_OUTPUT_COMMENT,
            f"grad_output = np.array({PLAIN_GRAD_OUTPUT!r}, dtype={np_dtype})",
            "given = (logits.copy(), targets.copy(), grad_output.copy())",
            f"kernel = {call}(*given) / grad_output",
            'for name, before, after in zip(("logits", "targets", "grad_output"),',
            "                               (logits, targets, grad_output), given):",
            '    assert np.array_equal(before, after, equal_nan=True), '
            'f"the kernel wrote into its {name}"',
            "autograd = np.asarray(jax.grad(loss)(jnp.asarray(logits), jnp.asarray(targets)))",
            "with jax.enable_x64(True):",
            "    exact = jax.grad(loss)(jnp.asarray(logits, jnp.float64), "
            "jnp.asarray(targets, jnp.float64))",
            'print("kernel:  ", kernel)',
            'print("jax.grad:", autograd)',
            'print("float64: ", exact)',
            "np.testing.assert_allclose(kernel.astype(np.float64), autograd.astype(np.float64), "
            f"rtol={tolerance.rtol!r}, atol={tolerance.atol!r})",
        ]
    return "\n".join(lines) + "\n"
