"""How long ``softmax-ce check`` takes: the reference derivation, and a 100-step document.

Prints a table of wall-clock seconds (the median of ``--repeat`` runs), each also as a multiple
of ``python -c "import sympy"`` measured in the same run (compare ratios, not seconds: machines
are shared):
- import sympy: a fresh interpreter that imports SymPy and exits (the baseline);
- check reference, process: ``python -m verify._cli check <reference>``, a fresh interpreter
  reading, checking and reporting shared/reference/000_383b7a561c191c02.txt (target < 10×);
- check reference, in process: ``derivation.check_text`` on it, SymPy already imported;
- 100 steps, in process: the transcribed course derivation, nine times under other names, and one
  more line: 100 steps, every one checked (target < 60 s).

    python benchmarks/bench_check.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import derivation

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "000_383b7a561c191c02.txt"
COURSE = ROOT / "examples" / "derivations" / "course.md"
NAMES = "abdfghqrs"


def hundred_steps() -> str:
    """The course derivation nine times, each copy under its own names, and one more step."""
    course = COURSE.read_text(encoding="utf-8")
    copies = [course.replace(r"\hat{y}", rf"\hat{{{letter}}}").replace("C_0", f"C_{{{n + 1}}}")
              for n, letter in enumerate(NAMES)]
    return "\n\n".join(copies) + "\n\n$$(x+1)^2 = x^2 + 2x + 1$$\n"


def median_seconds(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    def import_sympy() -> int:
        return subprocess.run([sys.executable, "-c", "import sympy"], check=True).returncode

    def check_process() -> int:
        return subprocess.run([sys.executable, "-m", "verify._cli", "check", str(REFERENCE)],
                              capture_output=True, cwd=ROOT).returncode

    reference = REFERENCE.read_text(encoding="utf-8")
    document = hundred_steps()
    rows = []
    base, _ = median_seconds(import_sympy, args.repeat)
    rows.append(("import sympy (python -c)", base, "baseline"))
    seconds, code = median_seconds(check_process, args.repeat)
    assert code == 1, "the reference as it is has failing steps: exit 1"
    rows.append(("check reference, process", seconds, "< 10× import sympy"))
    seconds, result = median_seconds(lambda: derivation.check_text(reference), args.repeat)
    rows.append((f"check reference, in process ({len(result.steps)} steps)", seconds, ""))
    seconds, result = median_seconds(lambda: derivation.check_text(document), 1)
    assert len(result.steps) == 100 and result.holds, result.first_failure
    rows.append(("100 steps, in process (all hold)", seconds, "< 60 s"))

    print(f"{'what':<44} | {'seconds':>8} | {'× import sympy':>14} | target")
    print("-" * 90)
    for what, s, target in rows:
        print(f"{what:<44} | {s:8.2f} | {s / base:13.1f}× | {target}")


if __name__ == "__main__":
    main()
