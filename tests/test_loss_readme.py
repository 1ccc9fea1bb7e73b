"""The README's "Loss variants" section: its examples are re-run, its formula and numbers are the
package's own."""

import re
import shlex
from pathlib import Path

import derivation
from derivation import Loss
from verify._cli import main
from verify._optimum import optimum

README = (Path(__file__).parent.parent / "README.md").read_text()
SECTION = README[README.index("## Loss variants"):].split("\n## ", 1)[0]


def test_the_shell_examples_are_real_output(capsys):
    blocks = re.findall(r"```sh\n(.*?)```", SECTION, flags=re.S)
    assert blocks
    for block in blocks:
        first, *shown = block.rstrip("\n").split("\n")
        assert first.startswith("$ softmax-ce ")
        code = main(shlex.split(first[len("$ softmax-ce "):]))
        out = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
        assert code == 0
        position = 0
        for line in shown:
            if line != "...":
                assert line in out[position:], f"not in the output (in order): {line!r}"
                position = out.index(line, position) + 1


def test_the_weighted_formula_is_the_derivations():
    d = derivation.derive(loss=Loss(weight=(1.0, 2.0, 3.0), targets="indices", reduction="mean"))
    assert f"$$\\frac{{\\partial L}}{{\\partial z_k}} = {derivation.latex(d.result)}$$" in SECTION


def test_the_optimum_shift_stated_is_measured():
    found = optimum(Loss(0.1, (1.0, 2.0, 3.0), targets="indices"), 0, 3)
    stated = f"σ* = (28/33, 2/33, 3/33) ≈ ({found[0]:.4f}, {found[1]:.4f}, {found[2]:.4f})"
    assert stated in SECTION
    assert f"probability {14 / 15 - found[0]:.4f} below" in SECTION
