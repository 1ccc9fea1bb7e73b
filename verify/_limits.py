r"""Sizes refused before any work: the memory a verify grid needs, and the class counts a
derivation can write out in minutes (no JAX here: the CLI checks both before importing it).

**Memory.** ``verify`` draws the inputs of one class count and label kind (``rows × c``
float32 noise and float64 labels), and measures them in chunks of about :data:`CHUNK_ELEMENTS`
elements (one row when a row is longer), the opinions of every dtype of a chunk in flight at
once, one chunk judged while the next is computed. So the peak is

.. math::

    \text{bytes} \approx B + b_{\text{draws}}\cdot\text{rows}\cdot c_{\max}
        + b_{\text{chunk}}\cdot d\cdot\min\big(\max(c_{\max}, 2^{20}),\,
            \max(\text{rows}, 128)\cdot c_{\max}\big)

with ``rows = samples + 4``, :math:`c_{\max}` the largest class count of the grid and d the
number of its dtypes. The constants are upper bounds of the peak resident memory measured on CPU
(``VmHWM``; ``benchmarks/bench_limits.py`` prints the table, a test checks the bound in a
subprocess): scales and label kinds add less than a dtype does, and are inside them.

**Derivations.** ``derive --classes N`` writes the sums out over N classes and checks every
step; its time grows about as :math:`N^{2.4}` (``benchmarks/bench_derivation.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

ADVERSARIAL_ROWS = 4
"""Rows every cell adds to ``samples`` (``verify._inputs.ADVERSARIAL_ROWS``)."""

CHUNK_ELEMENTS = 2**20
"""Elements measured at a time (``verify._check.MAX_CHUNK_ELEMENTS``)."""

BASE_BYTES = 512 * 2**20
"""The runtime (Python, JAX, XLA, compiled programs): measured 360 MiB for a one-cell grid."""

DRAW_BYTES = 48
"""Bytes per ``rows × c`` element of the draws and what is kept of them per element: measured
32–41 for one dtype and label kind."""

CHUNK_BYTES = 320
"""Bytes per element of the chunks in flight, per dtype: measured up to 280 (four dtypes, three
label kinds, 2²⁰-element chunks) and 145 (one row of 2²² classes)."""

VARIANT_BYTES = 128
"""Bytes per element of a loss variant's batch, per dtype: a variant's cell is one batch, its
reference program holding every row at once (no chunks). Peaks measured (``VmHWM``, label
smoothing 0.1 with a mean; ``benchmarks/bench_limits.py --variant``) were 1,064 MiB for
16 × 262,144 logits and 2,843–2,861 MiB for 64 × 262,144 in bfloat16, 3,726 MiB for the latter
in bfloat16 and float32, and 5,307 MiB for 256 × 65,536 in the four dtypes (an earlier build
measured 1,020, 2,594, 3,501 and 5,166). With :data:`DRAW_BYTES` this bounds each of them, by
1.14, 1.16, 1.44 and 1.78."""

VARIANT_PIPELINED_ELEMENTS = 2**18
"""A variant batch of at most this many logits waits to be judged until the next batch (of any
size) is started (``verify._variant_check``: NumPy judges one while JAX computes the other), so
two batches and their draws are in memory at once where one of them is this small."""

ALL_DTYPES = 4
"""Dtypes assumed when none are named (``verify.DTYPES`` has four)."""

MAX_DERIVE_CLASSES = 1024
"""The largest ``derive --classes``: measured 20 s at 512 classes, 45 s at 768, 118 s at
1024 (2 shared cores), growing about as c^2.4 — about 10 minutes at 2048."""


def _count(dtypes: Iterable[str] | int) -> int:
    if isinstance(dtypes, int):
        return max(dtypes, 1)
    return len(set(dtypes)) or ALL_DTYPES


MIN_CHUNK_ROWS = 128
"""Rows a small chunk is padded to, at most (``verify._check`` pads to 64 or 128)."""


def verify_bytes(rows: int, classes: Iterable[int], dtypes: Iterable[str] | int = (),
                 variant: bool = False) -> int:
    """An upper bound of the peak memory of ``verify.check`` on a grid.

    Args:
        rows: rows per cell, ``samples + 4``.
        classes: the grid's class counts (the largest one decides).
        dtypes: the grid's dtypes (or how many); none named counts as all four.
        variant: a loss variant's grid, each cell one batch (:data:`VARIANT_BYTES`), not
            chunks, and a small batch waiting to be judged beside it
            (:data:`VARIANT_PIPELINED_ELEMENTS`).

    Returns:
        Bytes, as an integer; it grows with ``rows``, the largest class count and the dtypes.

    Example:
        >>> verify_bytes(260, [2, 10, 1000], ["float32"]) // 2**20
        603
    """
    largest = max(classes)
    if variant:  # a cell's batch, and a small one waiting beside it
        batches = rows * largest + min(rows * largest, VARIANT_PIPELINED_ELEMENTS)
        return BASE_BYTES + (DRAW_BYTES + VARIANT_BYTES * _count(dtypes)) * batches
    chunk = min(max(largest, CHUNK_ELEMENTS), max(rows, MIN_CHUNK_ROWS) * largest)
    return BASE_BYTES + DRAW_BYTES * rows * largest + CHUNK_BYTES * _count(dtypes) * chunk


STREAM_BLOCKS = 4
"""Blocks of draws a streamed cell holds at once (``verify._stream.HELD_BLOCKS``: a call of two
sequences' windows may straddle two blocks in each)."""

STREAM_BLOCK_ELEMENTS = 2**20
"""Elements of one block of streamed draws (``verify._stream.BLOCK_ELEMENTS``)."""

STREAM_ROW_BYTES = 16
"""Bytes per row that a streamed variant cell keeps for all its rows: which are ignored (1)
and the per-row upstream gradient (8)."""


def streamed_variant_bytes(rows: int, classes: int, dtypes: Iterable[str] | int = ()) -> int:
    """An upper bound of the peak memory of a loss variant's cell with a shape, ``rows`` =
    B·T positions of ``classes`` = V: one batch of at most :data:`CHUNK_ELEMENTS` elements (or
    one row, when a row is longer) in flight, called and judged as a grid of that many rows
    would be, the stream's blocks of draws, and :data:`STREAM_ROW_BYTES` per row — flat in the
    batch but for those few bytes (``verify._variant_stream``).

    Example:
        >>> streamed_variant_bytes(512, 262_144, ["bfloat16"]) // 2**20
        1072
    """
    call = min(rows, max(1, CHUNK_ELEMENTS // classes))
    blocks = STREAM_BLOCKS * DRAW_BYTES * max(STREAM_BLOCK_ELEMENTS, classes)
    return verify_bytes(call, [classes], dtypes) + blocks + STREAM_ROW_BYTES * rows


def check_streamed(rows: int, classes: int, dtypes: Iterable[str] = (),
                   available: int | None = None) -> None:
    """Refuses a variant's shape whose streamed cell would not fit in memory (a machine with
    less than about 2 GB free, or a batch of billions of positions).

    Raises:
        ValueError: ``shape: ...``, with what the cell needs and what the machine has.
    """
    memory = available_bytes() if available is None else available
    needed = streamed_variant_bytes(rows, classes, tuple(dtypes))
    if memory is None or needed <= memory:
        return
    counted = tuple(dict.fromkeys(dtypes))
    fix = ("check fewer dtypes at once" if len(counted) > 1 else
           "lower the shape's batch or sequence, or free memory")
    raise ValueError(
        f"shape: {rows:,} positions × {classes:,} classes with a loss variant, streamed one call "
        f"of at most {max(CHUNK_ELEMENTS, classes):,} elements at a time, needs about "
        f"{size(needed)} of memory; {size(memory)} is available: {fix}"
    )


def _largest(fits: Callable[[int], bool], upper: int) -> int:
    """The largest n in [0, upper] with ``fits(n)`` (``fits`` turns false once, and stays)."""
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def largest_classes(samples: int, memory: int, dtypes: Iterable[str] | int = (),
                    variant: bool = False) -> int:
    """The largest class count whose grid, at ``samples`` rows per cell and with these dtypes,
    fits in ``memory`` bytes (0 if none does)."""
    rows = samples + ADVERSARIAL_ROWS
    return _largest(lambda c: c == 0 or verify_bytes(rows, [c], dtypes, variant) <= memory,
                    max(memory // (DRAW_BYTES * rows), 0))


def largest_samples(classes: int, memory: int, dtypes: Iterable[str] | int = (),
                    variant: bool = False) -> int:
    """The largest ``samples`` whose grid with ``classes`` classes and these dtypes fits in
    ``memory`` bytes (0 if none does)."""
    return _largest(
        lambda s: s == 0 or verify_bytes(s + ADVERSARIAL_ROWS, [classes], dtypes,
                                         variant) <= memory,
        max(memory // (DRAW_BYTES * classes), 0))


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """What the process's cgroup still allows (v2, then v1), or None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            if limit_text == "max":
                return None
            limit, usage = int(limit_text), int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit >= 2**60:  # v1's "no limit" is a huge number
            return None
        return max(limit - usage, 0)
    return None


def available_bytes() -> int | None:
    """Memory this process can still take: ``MemAvailable`` of ``/proc/meminfo`` (free memory
    plus what the kernel can reclaim), within the cgroup's limit when there is one; elsewhere
    ``os.sysconf`` free pages; ``None`` when the platform says nothing."""
    found = _meminfo_available()
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = None
    room = _cgroup_room()
    if room is not None:
        found = room if found is None else min(found, room)
    return found


def size(n: float) -> str:
    """Bytes for people: ``1.5 GB`` (powers of 1000, as memory is sold and shown by ``free -h``
    in SI mode)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def check_grid(classes: Iterable[int], samples: int, dtypes: Iterable[str] = (),
               available: int | None = None, variant: bool = False) -> None:
    """Refuses, before any work, a grid whose memory estimate exceeds what is available.

    Args:
        classes: the grid's class counts.
        samples: rows drawn per cell.
        dtypes: the grid's dtypes.
        available: bytes available; by default :func:`available_bytes` (no check when unknown).
        variant: a loss variant's grid (:func:`verify_bytes`).

    Raises:
        ValueError: ``classes: ...`` or ``samples: ...`` (whichever is the larger factor), with
            what the grid needs, what the machine has, and what to lower to.
    """
    counts, dtypes = tuple(classes), tuple(dtypes)
    memory = available_bytes() if available is None else available
    needed = verify_bytes(samples + ADVERSARIAL_ROWS, counts, dtypes, variant)
    if memory is None or needed <= memory:
        return
    largest = max(counts)
    name = "classes" if largest >= samples else "samples"
    shown = f"classes {largest:,} with samples {samples:,}"
    fixes = []
    if (c := largest_classes(samples, memory, dtypes, variant)) >= 1:
        fixes.append(f"classes to at most {c:,}")
    if (s := largest_samples(largest, memory, dtypes, variant)) >= 1:
        fixes.append(f"samples to at most {s:,}")
    fix = "lower " + (" or ".join(fixes) if fixes else "the grid (not even one row fits)")
    if not fixes and memory < BASE_BYTES:
        fix = f"that is less than the runtime alone takes (about {size(BASE_BYTES)}): free memory"
    raise ValueError(
        f"{name}: {shown} needs about {size(needed)} of memory ({samples + ADVERSARIAL_ROWS:,} "
        f"rows × {largest:,} classes); {size(memory)} is available: {fix}"
    )


def check_derive_classes(classes: int | None) -> None:
    """Refuses a class count whose written-out derivation cannot finish in minutes.

    Raises:
        ValueError: ``classes: ...``, naming the limit and the symbolic alternative.
    """
    if classes is not None and classes > MAX_DERIVE_CLASSES:
        raise ValueError(
            f"classes: {classes:,} is above {MAX_DERIVE_CLASSES:,}, the most a derivation "
            "written out class by class finishes in minutes (1,024 takes about 2 minutes and the "
            "time grows about as c^2.4); leave out --classes to derive for a symbolic number of "
            "classes c, which covers every c"
        )
