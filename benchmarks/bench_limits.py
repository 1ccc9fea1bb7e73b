"""The memory estimate of ``verify`` (``verify._limits.verify_bytes``) against the measured peak.

Each grid runs in a fresh process; its peak resident memory (``VmHWM``, Linux) is the
measurement.
The baseline is a one-cell grid (c = 2, one sample) measured in the same run: it is the
runtime's own share. Prints a table; exits 1 if some estimate is below its measurement (the
estimate must bound the peak).

    python benchmarks/bench_limits.py [--sizes 2x1,32768x124,65536x508,262144x252,4194304x1]
    python benchmarks/bench_limits.py --variant [--dtypes bfloat16] [--sizes 262144x12,262144x60]

``--variant`` measures a loss variant's grid (label smoothing 0.1, a mean, probability targets,
soft labels), whose cells are one batch each, against its own estimate
(``verify_bytes(..., variant=True)``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from verify import _limits

MEASURE = """
import verify
verify.check(classes={c}, dtypes="float64,float32,bfloat16,float16", scales=1,
             labels="onehot,soft,unnormalized", samples={samples})
with open("/proc/self/status") as status:  # VmHWM: the peak since exec (Linux)
    print(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")))
"""

MEASURE_VARIANT = """
import verify
verify.check(classes={c}, dtypes={dtypes!r}, scales=1, labels="soft", samples={samples},
             loss=verify.Loss(label_smoothing=0.1, reduction="mean"))
with open("/proc/self/status") as status:  # VmHWM: the peak since exec (Linux)
    print(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")))
"""


def peak(c: int, samples: int, dtypes: str | None = None) -> int:
    """The peak of the plain grid, or of a variant's with ``dtypes`` given."""
    code = (MEASURE.format(c=c, samples=samples) if dtypes is None
            else MEASURE_VARIANT.format(c=c, samples=samples, dtypes=dtypes))  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return int(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--variant", action="store_true")
    parser.add_argument("--dtypes", default="bfloat16", help="with --variant")
    args = parser.parse_args()
    if args.sizes is None:
        args.sizes = ("262144x12,262144x60" if args.variant
                      else "2x1,32768x124,65536x508,262144x252,4194304x1")
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    mib = 2**20
    print(f"{'classes':>9} | {'samples':>7} | {'rows×c':>11} | {'estimate MiB':>12} | "
          f"{'peak MiB':>8} | {'estimate/peak':>13}")
    print("-" * 76)
    ok = True
    for c, samples in sizes:
        dtypes = args.dtypes.split(",") if args.variant else ()
        estimate = _limits.verify_bytes(samples + _limits.ADVERSARIAL_ROWS, [c], dtypes,
                                        variant=args.variant)
        measured = peak(c, samples, args.dtypes if args.variant else None)
        ok &= estimate >= measured
        print(f"{c:>9,} | {samples:>7,} | {(samples + 4) * c:>11,} | {estimate / mib:>12.0f} | "
              f"{measured / mib:>8.0f} | {estimate / measured:>13.2f}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
