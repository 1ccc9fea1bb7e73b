"""How a check runs someone's own function: as what it is compiled or called, on which shape.

:func:`plan` turns ``(closed_form, framework, device, shape)`` into a :class:`Plan`: the function
the opinions stage evaluates as ``fn(z, y)`` on ``[rows, classes]`` chunks — a JAX function
traced as it is, or reshaped; a torch or NumPy kernel through a host callback
(:mod:`._kernel_bridge`) —, and the layout of the logits the function sees.

With ``shape=(B, T, V)`` the cell's rows are the B·T positions, sequence by sequence (the 4
adversarial rows are the first positions of sequence 0), and the function sees logits
``[b, t, V]`` (:func:`windows`): the whole batch where it fits a chunk, else whole sequences, at
least two a call, else windows of ``t`` positions of two sequences at once — so that a kernel
wrong only across sequences or positions is seen in every call. Each call gathers its rows from
the batch; every call has the same shape (the last ones moved back, their repeated rows not
counted again). Probability targets are shaped like the logits.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._frameworks import Kernel, Write, name_of
from ._inputs import ADVERSARIAL_ROWS
from ._kernel_bridge import PLAIN_GRAD_OUTPUT, Bridge, as_sequences, bridge


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
    """Gives a wrapper its function's names: reports and snippets name the user's function."""
    name = name_of(fn)
    object.__setattr__(wrapper, "__name__", name)
    object.__setattr__(wrapper, "__qualname__", getattr(fn, "__qualname__", name))
    object.__setattr__(wrapper, "__module__", getattr(fn, "__module__", None) or "")


@dataclass(frozen=True)
class Traced:
    """A JAX function as ``(z, y) -> gradient`` on ``[rows, classes]``: a three-argument one
    at ``grad_output`` :data:`PLAIN_GRAD_OUTPUT`, divided by it, and logits seen as
    ``[b, t, V]`` where a sequence is given. Hashed by its fields, so that checks of the same
    function share their compiled programs."""

    fn: Callable[..., Any]
    three_arguments: bool
    sequence: int | None

    def __post_init__(self) -> None:
        _named_as(self, self.fn)

    def cache_name(self) -> str | None:
        """Its name in the on-disk program cache when it wraps a function of this package (σ − y
        seen as sequences), with its own fields; None for a user's function (kept by JAX's
        cache alone)."""
        from ._opinions import ours

        fn = self.fn
        if not (isinstance(fn, types.FunctionType) and ours(fn)):
            return None
        return f"Traced({fn.__module__}.{fn.__qualname__}, {self.three_arguments}, {self.sequence})"

    def __call__(self, z: jax.Array, y: jax.Array) -> jax.Array:
        z3, y3 = as_sequences(z, self.sequence, 1), as_sequences(y, self.sequence, 1)
        if self.three_arguments:
            out = jnp.asarray(self.fn(z3, y3, jnp.full((), PLAIN_GRAD_OUTPUT, z.dtype)))
            if jnp.issubdtype(out.dtype, jnp.floating):
                out = out / jnp.asarray(PLAIN_GRAD_OUTPUT, out.dtype)
        else:
            out = jnp.asarray(self.fn(z3, y3))
        return out.reshape(z.shape) if out.size == z.size else out


@dataclass(frozen=True)
class Plan:
    """What the opinions stage evaluates, and for whom.

    Attributes:
        fn: ``(z, y) -> gradient`` on ``[rows, classes]``, as the stage compiles it.
        kernel: the torch or NumPy (or three-argument JAX) kernel, or None.
        layout: the logits' shape, or None for the grid's ``[rows, classes]``.
        windows: how a shape's rows are cut into calls (the kernel is shown ``[b, t, V]``), or
            None without a shape.
    """

    fn: Callable[..., Any]
    kernel: Kernel | None
    layout: Layout | None
    windows: Windows | None = None

    def taken(self) -> tuple[dict[str, tuple[Write, ...]], dict[str, str]]:
        """Per dtype, since last asked: the inputs a bridged kernel wrote into, and what it
        raised, in words (nothing for a JAX function, whose arrays are immutable and whose
        errors come at its trace). Past its probe, what a kernel raises on a batch is that
        batch's finding, a ``disagree`` cell.

        Raises:
            TypeError, ValueError: a gradient of the wrong shape or dtype, the kernel's fault
                whatever the batch.
        """
        if not isinstance(self.fn, Bridge):
            return {}, {}
        writes, errors = self.fn.take()
        for error in errors.values():
            if error.__cause__ is None:  # not raised by the kernel: its output was wrong
                raise error
        return writes, {dtype: f"{error}".removeprefix("closed_form: ") + " (on this batch)"
                        for dtype, error in errors.items()}

    @property
    def bridged(self) -> bool:
        return isinstance(self.fn, Bridge)


def plan(
    closed_form: Callable[..., Any] | None,
    default: Callable[..., Any],
    framework: str,
    device: str,
    shape: tuple[int, ...] | None,
    max_elements: int,
) -> Plan:
    """The :class:`Plan` of a check.

    Args:
        closed_form: the user's function, or None.
        default: the function for None (σ(z) − y, traceable and hashable).
        framework, device: validated by :class:`Kernel`.
        shape: a validated shape, or None.
        max_elements: the logits of one call of the kernel, at most (:func:`windows`).
    """
    where = None if shape is None else layout(shape)
    cut = None if where is None else windows(where, max_elements)
    sequence = None if cut is None else cut.view
    if closed_form is None:
        from ._kernel_options import validate_device, validate_framework

        framework = validate_framework(framework)  # an unknown name is said so, as with one
        validate_device(device, framework)
        if framework != "jax":
            raise ValueError(
                f"framework: {framework!r} needs a closed form written in it; None is "
                "σ(z) − y in JAX"
            )
        fn = default if sequence is None else Traced(default, False, sequence)
        return Plan(fn, None, where, cut)
    kernel = Kernel(closed_form, framework, device)
    if kernel.framework == "jax":
        closed_form = hashable(closed_form)
        if not kernel.three_arguments and sequence is None:
            return Plan(closed_form, None, where, cut)
        return Plan(Traced(closed_form, kernel.three_arguments, sequence), kernel, where, cut)
    return Plan(bridge(kernel, sequence), kernel, where, cut)


def hashable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, or, where it cannot be hashed (a callable object with ``__eq__`` and no
    ``__hash__``), a stand-in hashed by identity: programs are compiled per function."""
    try:
        hash(fn)
    except TypeError:
        return _Unhashable(fn)
    return fn


class _Unhashable:
    """A stand-in, hashed by identity, for a callable that cannot be hashed."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        _named_as(self, fn)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def windows(layout: Layout, max_elements: int) -> Windows:
    """The calls of a layout's rows, each at most ``max_elements`` logits (at least one row):
    the whole batch where it fits; else whole sequences, at least two a call, where two fit;
    else windows of ``t`` positions of two sequences at once, ``[2, t, V]``, so that every call
    holds two sequences and, where a call holds four rows, two positions of each — a kernel
    that is wrong only across sequences or positions is wrong in every call (one sequence
    alone, ``B = 1``: windows of it). Without a sequence axis: calls of rows."""
    per_call = max(max_elements // layout.vocabulary, 1)
    if layout.sequence is None:
        return Windows(layout, min(layout.rows, per_call), 1)
    t = layout.sequence
    batch = layout.rows // t
    if t <= per_call // 2 or (batch == 1 and t <= per_call):
        return Windows(layout, min(batch, per_call // t), t)
    b = min(batch, 2, per_call)
    return Windows(layout, b, min(t, per_call // b))


@dataclass(frozen=True, slots=True)
class Call:
    """One call of the kernel: rows of a layout gathered as ``[b, t, V]``.

    Attributes:
        index: ``[b·t]``, the layout's rows the call holds, sequence by sequence.
        counted: ``[b·t]``, the rows this call counts: a window moved back to end at the last
            sequence or position holds rows that an earlier call already counted.
        first: the first row the call counts (it seeds what is drawn per call).
        sequences, positions: the sequences and positions it holds, as ranges.
    """

    index: np.ndarray
    counted: np.ndarray
    first: int
    sequences: range
    positions: range

    def words(self, sequence: bool) -> str:
        """Which rows the call holds, e.g. ``sequences 0–1, positions 4–5``."""
        s, p = self.sequences, self.positions
        if not sequence:
            return f"rows {s[0]}–{s[-1]}"
        return f"sequences {s[0]}–{s[-1]}, positions {p[0]}–{p[-1]}"


@dataclass(frozen=True, slots=True)
class Windows:
    """A layout's rows cut into calls of ``b`` sequences by ``t`` positions (``b`` rows, ``t``
    1, without a sequence axis), every call the same shape: the last group of sequences and
    the last window of positions are moved back to end at the batch's end (what they repeat is
    not counted again, :attr:`Call.counted`).

    Attributes:
        layout: the logits' shape.
        sequences: ``b``, sequences a call.
        positions: ``t``, positions a call.
    """

    layout: Layout
    sequences: int
    positions: int

    @property
    def rows(self) -> int:
        """Rows a call."""
        return self.sequences * self.positions

    @property
    def view(self) -> int | None:
        """The sequence length the kernel is shown: ``t`` (None without a sequence axis)."""
        return None if self.layout.sequence is None else self.positions

    @property
    def streams(self) -> bool:
        """Whether the batch takes more than one call."""
        return self.rows < self.layout.rows

    @property
    def count(self) -> int:
        """Calls of the batch."""
        batch, length = self._axes()
        return -(-batch // self.sequences) * -(-length // self.positions)

    def _axes(self) -> tuple[int, int]:
        t = self.layout.sequence or 1
        return self.layout.rows // t, t

    def calls(self) -> Iterator[Call]:
        """Every call, sequences group by group and, within a group, window by window."""
        batch, length = self._axes()
        for group in range(0, batch, self.sequences):
            for window in range(0, length, self.positions):
                yield self._call(group, window)

    def holding(self, row: int) -> Call:
        """The call that counts ``row``."""
        batch, length = self._axes()
        s, p = divmod(row, length)
        return self._call(s // self.sequences * self.sequences,
                          p // self.positions * self.positions)  # fmt: skip

    def _call(self, group: int, window: int) -> Call:
        batch, length = self._axes()
        s0 = min(group, batch - self.sequences)
        p0 = min(window, length - self.positions)
        s = np.arange(s0, s0 + self.sequences)
        p = np.arange(p0, p0 + self.positions)
        counted = (s >= group)[:, None] & (p >= window)[None, :]
        return Call((s[:, None] * length + p[None, :]).ravel(), counted.ravel(),
                    group * length + window, range(s0, s0 + self.sequences),
                    range(p0, p0 + self.positions))  # fmt: skip


@dataclass(frozen=True)
class Sequenced:
    """A three-argument JAX kernel shown logits ``[b, t, V]`` (and targets, and a per-row
    ``grad_output``, alike) while the pipeline holds ``[rows, V]``; hashed by its fields."""

    fn: Callable[..., Any]
    sequence: int

    def __post_init__(self) -> None:
        _named_as(self, self.fn)

    def __call__(self, z: jax.Array, targets: jax.Array, grad_output: jax.Array) -> jax.Array:
        t = self.sequence
        per_row = 1 if targets.ndim == z.ndim else 0
        out = self.fn(as_sequences(z, t, 1), as_sequences(targets, t, per_row),
                      as_sequences(grad_output, t, 0))  # fmt: skip
        return jnp.asarray(out).reshape(z.shape)


def variant_function(how: Plan, closed_form: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """What a loss variant's check calls as ``fn(z, targets, grad_output)``: the bridge of a
    torch or NumPy kernel, or the JAX function (shown sequences where a shape has them)."""
    if how.bridged:
        return how.fn
    if closed_form is None:
        return None
    closed_form = hashable(closed_form)
    if how.windows is None or how.windows.view is None:
        return closed_form
    return Sequenced(closed_form, how.windows.view)


_TORCH_CALL = (
    "import torch  # a torch kernel: its inputs cross by DLPack, its gradient comes back widened\n"
    "closed_form = jnp.asarray({name}(*(torch.from_dlpack(a).clone() for a in (z, targets, "
    "grad_output))).double().numpy()).astype(z.dtype)"
)


def finish_variant_cells(
    cells: list[Any], how: Plan, options: Any, loss: Any, framework: str
) -> list[Any]:
    """A variant batch's cells, as a kernel's check reports them: a cell whose kernel wrote into
    its inputs disagrees (whatever it returned), the worst element is named by batch and
    position where the logits have a sequence axis, the reproduce line carries ``--shape`` and
    ``--framework``, and a torch kernel's snippet hands it torch tensors."""
    import dataclasses

    from . import _explain
    from ._frameworks import with_writes

    writes, raised = how.taken()  # it passed the probe (_variant_check): a batch's finding
    device = how.kernel.device if how.kernel is not None else "cpu"
    out = []
    for cell in cells:
        changes: dict[str, Any] = {}
        if cell.dtype in raised:
            changes |= {"verdict": "disagree", "explanation": raised[cell.dtype],
                        "counterexample": None}
        written = writes.get(cell.dtype, ())
        if written:  # reported whatever the verdict (an undefined cell stays undefined)
            verdict, explanation = with_writes(changes.get("verdict", cell.verdict),
                                               changes.get("explanation", cell.explanation),
                                               written)  # fmt: skip
            changes |= {"verdict": verdict, "explanation": explanation, "writes": written}
            if verdict == "disagree":
                changes["counterexample"] = None
        if how.layout is not None:
            kind = cell.labels if loss.targets == "probabilities" else None
            line = _explain.reproduce(options, cell.classes, cell.dtype, cell.scale, kind,
                                      how.layout, framework, device)  # fmt: skip
            changes["reproduce"] = " ".join([line, *loss.flags()])
            where = how.layout.position(cell.worst.row) if cell.worst is not None else None
            if where is not None:
                changes["worst"] = dataclasses.replace(cell.worst, batch=where[0],
                                                       position=where[1])  # fmt: skip
        elif framework != "jax":
            changes["reproduce"] = f"{cell.reproduce} --framework {framework}" + (
                f" --device {device}" if device != "cpu" else "")
        snippet = changes.get("counterexample", cell.counterexample)
        if snippet is not None and how.bridged and how.kernel.framework == "torch":
            from ._snippet import function_lines

            _, name = function_lines(how.fn)  # as the snippet names it
            call = f"closed_form = {name}(z, targets, grad_output)"
            if call in snippet:
                changes["counterexample"] = snippet.replace(call, _TORCH_CALL.format(name=name))
        out.append(dataclasses.replace(cell, **changes) if changes else cell)
    return out
