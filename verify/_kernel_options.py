"""The vocabulary of "your own kernel": frameworks, devices and shapes — no JAX, no torch here.

The CLI validates ``--framework``, ``--device`` and ``--shape`` with these functions before it
imports anything heavy, so every message starts with the parameter's name, which is also the
flag's: ``framework: unknown framework 'pytorch'; did you mean 'torch'? (accepted: jax, torch,
numpy)``.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

from ._options import _integer, choose_one

FRAMEWORKS: tuple[str, ...] = ("jax", "torch", "numpy")
"""The frameworks a closed form can be written in."""

DEVICES: tuple[str, ...] = ("cpu", "cuda")
"""Where a torch closed form runs; JAX (CPU build) and NumPy functions run on the CPU."""

MAX_VOCABULARY = 2**20
"""The largest vocabulary (last axis of ``shape``): 4 times the 262,144 of today's largest
tokenizers, and one float64 row of it (8 MiB) still far inside any memory budget."""


def validate_framework(value: Any) -> str:
    """``"jax"``, ``"torch"`` or ``"numpy"``; torch must be importable for ``"torch"``."""
    framework = choose_one("framework", "framework", value, FRAMEWORKS)
    if framework == "torch" and importlib.util.find_spec("torch") is None:
        raise ValueError(
            "framework: 'torch' needs PyTorch, which is not installed (pip install torch), "
            "or choose jax or numpy"
        )
    return framework


def validate_device(value: Any, framework: str) -> str:
    """``"cpu"``, or ``"cuda"`` for a torch function when ``torch.cuda.is_available()``.

    Args:
        value: the device asked for.
        framework: the validated framework.
    """
    device = choose_one("device", "device", value, DEVICES)
    if device == "cuda":
        if framework != "torch":
            raise ValueError(
                f"device: 'cuda' runs torch functions only; a {framework} function runs on "
                "'cpu' (accepted here: cpu)"
            )
        import torch  # only here: a CUDA check needs torch itself

        if not torch.cuda.is_available():
            raise ValueError(
                "device: 'cuda' asked for, but torch.cuda.is_available() is False on this "
                "machine (accepted here: cpu)"
            )
    return device


MAX_SHAPE_LOGITS = 2**36
"""The most logits a ``shape`` may hold (16 × 8,192 × 262,144 = 2^35 fits): the plain loss
streams any batch in flat memory, but each dtype's check of it takes time in proportion, and
NumPy cannot index past 2^63 bytes."""


def validate_shape(value: Any) -> tuple[int, ...] | None:
    """``None``, or the logits' shape: ``(batch, sequence, vocabulary)`` or ``(rows,
    vocabulary)``, as a tuple or as text ``"B,T,V"``; each size >= 1, the vocabulary at most
    :data:`MAX_VOCABULARY`.
    """
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    try:
        sizes = [_integer(item) for item in items]
    except TypeError:
        sizes = [None]
    if len(sizes) not in (2, 3) or any(size is None or size < 1 for size in sizes):
        raise ValueError(
            f"shape: expected B,T,V (batch, sequence, vocabulary) or R,V (rows, vocabulary), "
            f"integers >= 1, got {value!r}"
        )
    if sizes[-1] > MAX_VOCABULARY:  # type: ignore[operator]
        raise ValueError(
            f"shape: the vocabulary {sizes[-1]} is above the largest accepted, {MAX_VOCABULARY}"
        )
    logits = math.prod(sizes)  # type: ignore[arg-type]
    if logits > MAX_SHAPE_LOGITS:
        raise ValueError(f"shape: {value!r} is {logits:,} logits, above the largest accepted, "
                         f"{MAX_SHAPE_LOGITS:,} (2^36)")
    return tuple(sizes)  # type: ignore[arg-type]


def kernel_options(
    framework: Any, device: Any, closed_form: str | None, shape: str | None
) -> dict[str, Any]:
    """The CLI's ``--framework``, ``--device`` and ``--shape``, validated, as keyword arguments
    of :func:`verify.check`; a framework other than JAX needs ``--closed-form``."""
    chosen = validate_framework(framework)
    if chosen != "jax" and closed_form is None:
        raise ValueError(
            f"framework: {chosen!r} needs --closed-form MODULE:FUNCTION, a function written in "
            "it (the default closed form, softmax(z) - y, is JAX)"
        )
    return {"framework": chosen, "device": validate_device(device, chosen),
            "shape": validate_shape(shape)}  # fmt: skip


def check_shape_memory(shape: tuple[int, ...] | None, variant: bool, dtypes: Any) -> None:
    """Refuses a shape whose cells cannot fit in memory. The plain loss streams its rows,
    whatever the batch; so does a loss variant whose ``B·T × V`` exceed a chunk, each call a
    batch of its own (``verify._variant_stream``): its memory is one call's, flat in the batch
    (:func:`verify._limits.streamed_variant_bytes`).

    Raises:
        ValueError: ``shape: ...``, with what the cell needs and what the machine has.
    """
    if shape is None or not variant:
        return
    from . import _limits  # no JAX there either

    rows = 1
    for size in shape[:-1]:
        rows *= size
    _limits.check_streamed(rows, shape[-1], tuple(dtypes or ()))
