"""How a check runs someone's own function: as what it is compiled or called, on which shape.

:func:`plan` turns ``(closed_form, framework, device, shape)`` into a :class:`Plan`: the function
the opinions stage evaluates as ``fn(z, y)`` on ``[rows, classes]`` chunks — a JAX function
traced as it is, or reshaped; a torch or NumPy kernel through a host callback
(:mod:`._kernel_bridge`) —, and the layout of the logits the function sees.

With ``shape=(B, T, V)`` the cell's rows are the B·T positions, sequence by sequence (the 4
adversarial rows are the first positions of sequence 0), and the function sees logits
``[b, T, V]``: chunks of rows are whole sequences where ``T·V`` fits a chunk (the last chunk moved
back, or padded, by whole sequences), else windows of ``t`` positions of one sequence, ``t``
dividing ``T``, seen as ``[1, t, V]``. Probability targets are shaped like the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from ._frameworks import Kernel, Write
from ._inputs import ADVERSARIAL_ROWS
from ._kernel_bridge import Bridge, as_sequences, bridge


@dataclass(frozen=True, slots=True)
class Layout:
    """The logits' shape: ``(batch, sequence, vocabulary)``, or ``sequence`` None for rows."""

    rows: int
    vocabulary: int
    sequence: int | None

    def position(self, row: int) -> tuple[int, int] | None:
        """``(batch, position)`` of a row, or None without a sequence axis."""
        return None if self.sequence is None else divmod(row, self.sequence)

    def flag(self) -> str:
        """The ``--shape`` value that gives this layout."""
        if self.sequence is None:
            return f"{self.rows},{self.vocabulary}"
        return f"{self.rows // self.sequence},{self.sequence},{self.vocabulary}"


def layout(shape: tuple[int, ...]) -> Layout:
    """The :class:`Layout` of a validated ``shape``, which must hold at least 5 rows."""
    rows = shape[0] * shape[1] if len(shape) == 3 else shape[0]
    if rows <= ADVERSARIAL_ROWS:
        raise ValueError(
            f"shape: {','.join(map(str, shape))} holds {rows} rows"
            f"{' (batch × sequence)' if len(shape) == 3 else ''}; at least "
            f"{ADVERSARIAL_ROWS + 1}, as the first {ADVERSARIAL_ROWS} are adversarial"
        )
    return Layout(rows=rows, vocabulary=shape[-1], sequence=shape[1] if len(shape) == 3 else None)


def _named_as(wrapper: Any, fn: Callable[..., Any]) -> None:
    """Gives a wrapper its function's names: reports and snippets name the user's function, and
    the program cache keeps no program of a user's function under this package's name."""
    name = getattr(fn, "__name__", repr(fn))
    object.__setattr__(wrapper, "__name__", name)
    object.__setattr__(wrapper, "__qualname__", getattr(fn, "__qualname__", name))
    object.__setattr__(wrapper, "__module__", getattr(fn, "__module__", None) or "")


@dataclass(frozen=True)
class Traced:
    """A JAX function as ``(z, y) -> gradient`` on ``[rows, classes]``: a three-argument one
    with ``grad_output`` 1, and logits seen as ``[b, T, V]`` where a sequence is given. Hashed
    by its fields, so that checks of the same function share their compiled programs."""

    fn: Callable[..., Any]
    three_arguments: bool
    sequence: int | None

    def __post_init__(self) -> None:
        _named_as(self, self.fn)

    def __call__(self, z: jax.Array, y: jax.Array) -> jax.Array:
        z3, y3 = as_sequences(z, self.sequence, 1), as_sequences(y, self.sequence, 1)
        if self.three_arguments:
            out = self.fn(z3, y3, jnp.ones((), z.dtype))
        else:
            out = self.fn(z3, y3)
        out = jnp.asarray(out)
        return out.reshape(z.shape) if out.size == z.size else out


@dataclass(frozen=True)
class Plan:
    """What the opinions stage evaluates, and for whom.

    Attributes:
        fn: ``(z, y) -> gradient`` on ``[rows, classes]``, as the stage compiles it.
        kernel: the torch or NumPy (or three-argument JAX) kernel, or None.
        layout: the logits' shape, or None for the grid's ``[rows, classes]``.
    """

    fn: Callable[..., Any]
    kernel: Kernel | None
    layout: Layout | None

    def writes(self) -> dict[str, tuple[Write, ...]]:
        """The inputs a bridged kernel wrote into since last asked, per dtype (raising the
        first error it had); nothing for a JAX function, whose arrays are immutable."""
        return self.fn.take() if isinstance(self.fn, Bridge) else {}

    @property
    def bridged(self) -> bool:
        return isinstance(self.fn, Bridge)


def plan(
    closed_form: Callable[..., Any] | None,
    default: Callable[..., Any],
    framework: str,
    device: str,
    shape: tuple[int, ...] | None,
) -> Plan:
    """The :class:`Plan` of a check.

    Args:
        closed_form: the user's function, or None.
        default: the function for None (σ(z) − y, traceable and hashable).
        framework, device: validated by :class:`Kernel`.
        shape: a validated shape, or None.
    """
    where = None if shape is None else layout(shape)
    sequence = None if where is None else where.sequence
    if closed_form is None:
        if framework != "jax":
            raise ValueError(
                f"framework: {framework!r} needs a closed form written in it; None is "
                "σ(z) − y in JAX"
            )
        fn = default if sequence is None else Traced(default, False, sequence)
        return Plan(fn, None, where)
    kernel = Kernel(closed_form, framework, device)
    if kernel.framework == "jax":
        try:
            hash(closed_form)
        except TypeError:
            closed_form = _Unhashable(closed_form)
        if not kernel.three_arguments and sequence is None:
            return Plan(closed_form, None, where)
        return Plan(Traced(closed_form, kernel.three_arguments, sequence), kernel, where)
    return Plan(bridge(kernel, sequence), kernel, where)


class _Unhashable:
    """A stand-in, hashed by identity, for a callable that cannot be hashed."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        _named_as(self, fn)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def aligned_chunking(layout: Layout, max_elements: int, block_elements: int) -> tuple[int, int]:
    """Rows per chunk and per judging block for a layout with a sequence axis: whole
    sequences per chunk where ``T·V`` fits ``max_elements``, else the largest divisor of ``T``
    that does (at least one row); blocks divide chunks and hold at most ``block_elements``."""
    assert layout.sequence is not None
    per_chunk = max(max_elements // layout.vocabulary, 1)
    t = layout.sequence
    if t <= per_chunk:
        size = t * max(1, min(per_chunk // t, -(-layout.rows // t)))
    else:
        size = max(d for d in range(1, per_chunk + 1) if t % d == 0)
    block = max((d for d in range(1, size + 1)
                 if size % d == 0 and d * layout.vocabulary <= block_elements), default=1)  # fmt: skip
    return size, block
