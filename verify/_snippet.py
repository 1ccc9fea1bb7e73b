"""A counterexample as a runnable Python snippet (pure Python, no JAX)."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import math
import textwrap
from collections.abc import Callable, Sequence

from ._frameworks import name_of
from ._options import Tolerance

_LOSS = '''\
def loss(z, y):  # C = -sum(y * log_softmax(z)), with 0 * log 0 = 0
    return -jnp.sum(jnp.where(y == 0, 0.0, y * jax.nn.log_softmax(z)))
'''


def _literal(values: Sequence[float]) -> str:
    def one(value: float) -> str:
        if math.isinf(value):
            return "jnp.inf" if value > 0 else "-jnp.inf"
        if math.isnan(value):
            return "jnp.nan"
        return repr(float(value))

    return "[[" + ", ".join(one(value) for value in values) + "]]"


def _lambda_source(fn: Callable) -> str | None:
    """The text of a lambda, when its source line holds exactly one."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        try:
            tree = ast.parse(f"({source.strip().rstrip(',')})")
            source = f"({source.strip().rstrip(',')})"
        except SyntaxError:
            return None
    lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
    if len(lambdas) != 1:
        return None
    return ast.get_source_segment(source, lambdas[0])


def imported_as(fn: Callable) -> tuple[str, str] | None:
    """``(module, name)`` under which ``fn`` itself can be imported where it is not by its own
    ``__module__`` and ``__qualname__`` — a ``functools.partial`` or a callable object kept in a
    module (``f = partial(kernel, chunk=7)``, in any module imported) — or None."""
    import sys

    kernel = getattr(getattr(fn, "kernel", None), "fn", None)  # the kernel a bridge calls
    targets = (fn, kernel) if kernel is not None else (fn,)
    likely = [getattr(x, "__module__", None) for t in targets
              for x in (t, getattr(t, "func", None))]  # a partial's function's module first
    for module in dict.fromkeys([*likely, *list(sys.modules)]):
        found = sys.modules.get(module or "")
        if found is None or module == "__main__":
            continue
        for attribute, value in list(getattr(found, "__dict__", {}).items()):
            if any(value is t for t in targets) and attribute.isidentifier():
                return module, attribute
    return None


def function_lines(fn: Callable | None) -> tuple[list[str], str]:
    """Lines that make the closed form available, and the expression that names it."""
    if fn is None:
        return [], "(lambda z, y: jax.nn.softmax(z) - y)"
    if not inspect.isfunction(fn) and not inspect.isclass(fn):
        where = imported_as(fn)
        if where is not None:
            return [f"from {where[0]} import {where[1]}"], where[1]
    name = getattr(fn, "__name__", "")
    qualname = getattr(fn, "__qualname__", name)
    module = getattr(fn, "__module__", None)
    plain = name.isidentifier() and "<" not in qualname
    if plain and module not in (None, "__main__"):
        try:
            importable = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            importable = False
        if importable:
            head = qualname.split(".")[0]
            return [f"from {module} import {head}"], qualname
    if plain:
        try:
            source = textwrap.dedent(inspect.getsource(fn)).rstrip()
            return [source], name
        except (OSError, TypeError):
            pass
    if name == "<lambda>":
        text = _lambda_source(fn)
        if text is not None:
            return [f"closed_form_fn = {text}"], "closed_form_fn"
    return [f"closed_form_fn = ...  # {name_of(fn)}: define the closed form here"], "closed_form_fn"


def snippet(
    fn: Callable | None,
    *,
    dtype: str,
    z: Sequence[float],
    y: Sequence[float],
    tolerance: Tolerance,
    origin: str,
    sequence: bool = False,
) -> str:
    """The runnable counterexample.

    Args:
        fn: the user's closed form, or None for σ(z) − y.
        dtype: the cell's dtype.
        z: the logits, already representable in ``dtype``.
        y: the labels, already representable in ``dtype``.
        tolerance: the cell's tolerance.
        origin: a comment line saying where the case was shrunk from.
        sequence: the row is one position of one sequence, ``[1, 1, V]``, as the function saw
            it (a check with ``shape=(B, T, V)``); else ``[1, V]``.
    """
    setup, call = function_lines(fn)
    z_text, y_text = _literal(z), _literal(y)
    if sequence:
        z_text, y_text = f"[{z_text}]", f"[{y_text}]"
    lines = [
        f"# Falsifying example, {origin}",
        "import jax",
        "import jax.numpy as jnp",
        *setup,
        "",
        _LOSS,
        f"z = jnp.array({z_text}, dtype=jnp.{dtype})",
        f"y = jnp.array({y_text}, dtype=jnp.{dtype})",
        f"closed_form = {call}(z, y)",
        "autograd = jax.grad(loss)(z, y)",
        "with jax.enable_x64(True):",
        "    exact = jax.grad(loss)(z.astype(jnp.float64), y.astype(jnp.float64))",
        'print("closed form:", closed_form)',
        'print("jax.grad:   ", autograd)',
        'print("float64:    ", exact)',
        f"assert jnp.allclose(closed_form, autograd, rtol={tolerance.rtol!r}, "
        f'atol={tolerance.atol!r}), "the closed form disagrees with jax.grad"',
    ]
    return "\n".join(lines) + "\n"
