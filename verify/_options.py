"""The grid's vocabulary, the tolerance table and argument validation — no JAX here.

The CLI validates its flags with these functions before anything imports JAX, so every error
message starts with the parameter's name, which is also the flag's name: ``dtypes: unknown dtype
'flaot32'; did you mean 'float32'? (accepted: float64, float32, bfloat16, float16)``.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._limits import check_grid

DTYPES: tuple[str, ...] = ("float64", "float32", "bfloat16", "float16")
"""The dtypes a cell can be evaluated in, widest first."""

LABEL_KINDS: tuple[str, ...] = ("onehot", "smoothed", "soft", "unnormalized")
"""How a cell's labels are drawn: a one-hot vector; one-hot smoothed with ε = 0.1; a draw from
the flat Dirichlet distribution; non-negative values whose sum is kept away from one."""

SMOOTHING = 0.1
"""ε of the ``smoothed`` labels, :math:`y = (1 - ε)\\,\\mathrm{onehot} + ε / c`."""

DEFAULT_CLASSES: tuple[int, ...] = (2, 10, 1000)
DEFAULT_SCALES: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
DEFAULT_SAMPLES = 256
DEFAULT_SEED = 0
MAX_SEED = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Tolerance:
    """An elementwise tolerance: ``|a - b| <= atol + rtol * |b|``."""

    rtol: float
    atol: float


TOLERANCES: Mapping[str, Tolerance] = MappingProxyType(
    {
        # torch.testing.assert_close's defaults (torch/testing/_comparison.py): CONTRACT.md.
        "float64": Tolerance(rtol=1e-7, atol=1e-7),
        "float32": Tolerance(rtol=1.3e-6, atol=1e-5),
        "bfloat16": Tolerance(rtol=1.6e-2, atol=1e-5),
        "float16": Tolerance(rtol=1e-3, atol=1e-5),
    }
)
"""Default tolerance per dtype, those of ``torch.testing.assert_close``."""


def _items(name: str, value: Any) -> list[Any]:
    """A scalar, a comma-separated string or an iterable, as a non-empty list of items."""
    if isinstance(value, (bytes, bytearray, Mapping)):  # iterating them gives codes or keys
        raise TypeError(f"{name}: expected a value, a comma-separated string or a sequence, got "
                        f"{value!r}")
    if hasattr(value, "__array__") and hasattr(value, "ndim"):  # NumPy or JAX: as numbers
        value = value.tolist()
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        items = [value]
    if not items:
        raise ValueError(f"{name}: expected at least one value, got none")
    return items


def _unique(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def choose_one(name: str, noun: str, item: Any, accepted: tuple[str, ...]) -> str:
    """``item`` when it is one of ``accepted``; else an error naming it, the closest accepted
    name and every accepted one."""
    if not isinstance(item, str):
        raise TypeError(
            f"{name}: expected {noun} names, got {item!r} (accepted: {', '.join(accepted)})"
        )
    if item not in accepted:
        close = [a for a in accepted if a.lower() == item.strip().lower()]  # FLOAT32, JAX
        close = close or difflib.get_close_matches(item, accepted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"{name}: unknown {noun} {item!r}{hint} (accepted: {', '.join(accepted)})"
        )
    return item


def _choose(name: str, noun: str, value: Any, accepted: tuple[str, ...]) -> tuple[str, ...]:
    return _unique(choose_one(name, noun, item, accepted) for item in _items(name, value))


def validate_dtypes(value: Any) -> tuple[str, ...]:
    """Dtype names, e.g. ``("float32", "bfloat16")`` or ``"float32,bfloat16"``."""
    return _choose("dtypes", "dtype", value, DTYPES)


def validate_labels(value: Any) -> tuple[str, ...]:
    """Label kind names, e.g. ``("onehot", "soft")`` or ``"onehot,soft"``."""
    return _choose("labels", "label kind", value, LABEL_KINDS)


def _integer(item: Any) -> int | None:
    """``item`` as an int when it is one (or a string of one); bools are not integers here."""
    if isinstance(item, bool):
        return None
    if isinstance(item, numbers.Integral):
        return int(item)
    if isinstance(item, str):
        try:
            return int(item.strip())
        except ValueError:
            return None
    return None


def _number(item: Any) -> float | None:
    """``item`` as a float when it is a real number (or a string of one); bools are not."""
    if isinstance(item, bool):
        return None
    try:
        if isinstance(item, numbers.Real):
            return float(item)
        if isinstance(item, str):
            return float(item.strip())
    except (ValueError, OverflowError):  # not a number; an int past float's range: refused
        return None
    return None


def validate_classes(value: Any) -> tuple[int, ...]:
    """Class counts c >= 1, e.g. ``(2, 10, 1000)``, ``10`` or ``"2,10"``."""
    chosen = []
    for item in _items("classes", value):
        number = _integer(item)
        if number is None or number < 1:
            raise ValueError(f"classes: expected integers >= 1, got {item!r}")
        chosen.append(number)
    return _unique(chosen)


def validate_scales(value: Any) -> tuple[float, ...]:
    """Logit scales, finite and > 0, e.g. ``(0.1, 1, 10, 100)`` or ``"0.1,1"``."""
    chosen = []
    for item in _items("scales", value):
        number = _number(item)
        if number is None or not math.isfinite(number) or number <= 0:
            raise ValueError(f"scales: expected finite numbers > 0, got {item!r}")
        chosen.append(number)
    return _unique(chosen)


def validate_samples(value: Any) -> int:
    """Rows drawn per cell, an integer >= 1."""
    number = _integer(value)
    if number is None or number < 1:
        raise ValueError(f"samples: expected an integer >= 1, got {value!r}")
    return number


def validate_seed(value: Any) -> int:
    """The seed of every draw (NumPy PCG64 generators seeded with it), in [0, 2**32 - 1]."""
    number = _integer(value)
    if number is None or not 0 <= number <= MAX_SEED:
        raise ValueError(f"seed: expected an integer in [0, {MAX_SEED}], got {value!r}")
    return number


def validate_tolerance(name: str, value: Any) -> float | None:
    """``rtol`` or ``atol``: ``None`` (the per-dtype table) or a finite number >= 0."""
    if value is None:
        return None
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return number + 0.0  # -0 is 0: the same check, the same bytes


def validate_closed_form(value: Any) -> Callable[..., Any] | None:
    """``None`` (σ(z) − y) or a callable ``(z, y) -> gradient``."""
    if value is not None and not callable(value):
        raise TypeError(
            f"closed_form: expected a callable (z, y) -> gradient or None, got {value!r}"
        )
    return value


def tolerances_for(
    dtypes: Iterable[str], rtol: float | None, atol: float | None
) -> dict[str, Tolerance]:
    """The tolerance used per dtype: the table's, with ``rtol``/``atol`` overriding when given."""
    used = {}
    for dtype in dtypes:
        default = TOLERANCES[dtype]
        used[dtype] = Tolerance(
            rtol=default.rtol if rtol is None else rtol,
            atol=default.atol if atol is None else atol,
        )
    return used


@dataclass(frozen=True, slots=True)
class Options:
    """Every argument of :func:`verify.check`, validated."""

    closed_form: Callable[..., Any] | None
    classes: tuple[int, ...]
    dtypes: tuple[str, ...]
    scales: tuple[float, ...]
    labels: tuple[str, ...]
    samples: int
    seed: int
    rtol: float | None
    atol: float | None


def validate(
    closed_form: Any = None,
    *,
    classes: Any = DEFAULT_CLASSES,
    dtypes: Any = DTYPES,
    scales: Any = DEFAULT_SCALES,
    labels: Any = LABEL_KINDS,
    samples: Any = DEFAULT_SAMPLES,
    seed: Any = DEFAULT_SEED,
    rtol: Any = None,
    atol: Any = None,
    drawn_whole: bool = True,
    variant: bool = False,
) -> Options:
    """Validates every argument of :func:`verify.check` before anything is computed.

    ``drawn_whole`` False (a ``shape``: its rows are streamed) leaves out the memory estimate
    of drawing every row at once; ``variant`` estimates a loss variant's, whose cells are one
    batch each.

    Raises:
        ValueError: a value out of range or an unknown name, or a grid larger than the memory
            available (:func:`verify._limits.check_grid`); the message starts with the
            parameter's name, e.g. ``samples: expected an integer >= 1, got -3``.
        TypeError: ``closed_form`` is not callable, or a name is not a string.
    """
    options = Options(
        closed_form=validate_closed_form(closed_form),
        classes=validate_classes(classes),
        dtypes=validate_dtypes(dtypes),
        scales=validate_scales(scales),
        labels=validate_labels(labels),
        samples=validate_samples(samples),
        seed=validate_seed(seed),
        rtol=validate_tolerance("rtol", rtol),
        atol=validate_tolerance("atol", atol),
    )
    if drawn_whole:
        check_grid(options.classes, options.samples, options.dtypes, variant=variant)
    return options
