"""What each dtype can represent: its epsilon, its range, and the spacing of its numbers (ULPs)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import ml_dtypes
import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True, slots=True)
class DtypeFacts:
    """The numbers of one floating-point dtype that the check needs.

    Attributes:
        name: ``"float32"``, ...
        dtype: the NumPy dtype (``ml_dtypes.bfloat16`` for bfloat16), which JAX accepts too.
        eps: the distance from 1 to the next larger number, :math:`2^{-p}`.
        tiny: the smallest normal number; below it a dtype has no relative precision left (and
            XLA on CPU flushes float32 and bfloat16 values there to zero).
        max: the largest finite number; a finite float64 input beyond it overflows on the cast.
    """

    name: str
    dtype: np.dtype
    eps: float
    tiny: float
    max: float

    def far_gap(self, classes: int) -> float:
        r"""How far the adversarial row's top logit stands above the rest of its row.

        :math:`\log c + 1.5 \log(1/\mathrm{eps})`: the other classes' softmax, summed, lies far
        below the dtype's resolution of 1, so the softmax saturates (float32: 23.9 + log c),
        while the logit stays far inside the dtype's range.
        """
        return round(math.log(classes) + 1.5 * math.log(1 / self.eps), 1)


@cache
def facts(name: str) -> DtypeFacts:
    """The :class:`DtypeFacts` of a dtype named in :data:`verify.DTYPES`."""
    dtype = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)
    info = ml_dtypes.finfo(dtype)
    eps = float(info.eps)
    return DtypeFacts(
        name=name,
        dtype=dtype,
        eps=eps,
        tiny=float(info.smallest_normal),
        max=float(info.max),
    )


def ulp(x: ArrayLike, eps: float, tiny: float) -> np.ndarray:
    r"""The spacing of a dtype's numbers at ``x``, evaluated in float64.

    .. math::
        \mathrm{ulp}(x) = \mathrm{eps} \cdot 2^{\lfloor \log_2 |x| \rfloor}
        \quad (|x| \ge \mathrm{tiny}), \qquad \mathrm{eps} \cdot \mathrm{tiny} \text{ below}.

    Args:
        x: float64 values, e.g. the exact gradient.
        eps: the dtype's epsilon.
        tiny: the dtype's smallest normal number.

    Returns:
        An array shaped like ``x``: for float32 at 1.0, :math:`2^{-23}`; at 0, :math:`2^{-149}`
        (for float64 at 0, :math:`2^{-1022}` rather than the subnormal :math:`2^{-1074}`).
    """
    shape = np.shape(x)
    x = np.abs(np.atleast_1d(np.asarray(x, np.float64)))
    # 2**floor(log2|x|): the bits of |x| with the mantissa cleared (exact, and cheaper than frexp).
    bits = x.view(np.int64) & 0x7FF0000000000000
    spacing = bits.view(np.float64)
    spacing *= eps
    # Below tiny the spacing is eps * tiny; for float64 that is subnormal, which XLA on CPU
    # flushes to zero, so it is held at float64's smallest normal number.
    if float(np.min(x, initial=np.inf)) < tiny:
        spacing[x < tiny] = max(eps * tiny, float(np.finfo(np.float64).tiny))
    return spacing.reshape(shape)
