"""How long it takes to verify every partial derivative for an explicit number of classes c.

Prints a table, c → seconds, for:
- naive: SymPy ``diff`` + ``simplify`` of (∂C/∂z_k − (σ_k Σy − y_k)) for every k, on the loss
  written out in c symbols (the baseline; only up to c = 32, it grows like c^2.7);
- route: the log-sum-exp route of ``derivation`` at that c, every step checked symbolically and
  numerically (40 digits) at every partial;
- derive: ``derivation.derive(classes=c)``: all three routes and the Hessian.
The baseline is measured in the same run: compare the ratio, not the seconds (shared machines).

    python benchmarks/bench_derivation.py [--max-naive 32] [--sizes 2,4,...]
"""

from __future__ import annotations

import argparse
import time

import sympy as sp

import derivation
from derivation._routes import log_sum_exp_route


def naive(c: int) -> bool:
    z = sp.symbols(f"z1:{c + 1}", real=True)
    y = sp.symbols(f"y1:{c + 1}", real=True)
    total = sum(sp.exp(v) for v in z)
    loss = -sum(yi * sp.log(sp.exp(zi) / total) for yi, zi in zip(y, z))
    ok = True
    for k in range(c):
        claimed = sp.exp(z[k]) / total * sum(y) - y[k]
        ok &= sp.simplify(sp.diff(loss, z[k]) - claimed) == 0
    return ok


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,8,16,32,64,128,256,512")
    parser.add_argument("--max-naive", type=int, default=32)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    seconds, d = timed(derivation.derive, None, "onehot")
    print(f"symbolic c, derive() with all routes, the Hessian and every check: {seconds:.2f} s "
          f"(holds: {d.holds})\n")
    print(f"{'c':>5} | {'naive s':>9} | {'route s':>8} | {'derive s':>9} | {'naive/route':>11}")
    print("-" * 56)
    for c in sizes:
        t_naive = None
        if c <= args.max_naive:
            t_naive, ok = timed(naive, c)
            assert ok, f"the naive check failed at c = {c}"
        t_route, route = timed(log_sum_exp_route, c, "soft")
        t_derive, d = timed(derivation.derive, c, "onehot")
        assert route.holds and d.holds, f"the derivation does not hold at c = {c}"
        naive_s = f"{t_naive:9.2f}" if t_naive is not None else f"{'—':>9}"
        ratio = f"{t_naive / t_route:10.0f}×" if t_naive is not None else f"{'—':>11}"
        print(f"{c:>5} | {naive_s} | {t_route:8.2f} | {t_derive:9.2f} | {ratio}", flush=True)


if __name__ == "__main__":
    main()
