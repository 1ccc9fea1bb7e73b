"""The README's formulas, examples and numbers are the package's own: checked, not retyped."""

import re
import shlex
from pathlib import Path

import pytest
import sympy as sp

import derivation
import verify
from verify._cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_the_formulas_are_the_derivations_results():
    derived = derivation.derive()  # not at import: every worker of a parallel run imports this
    grad, hess = r"\frac{\partial C}{\partial z_k}", r"\frac{\partial^2 C}{\partial z_j \partial z_k}"
    any_labels = derived.routes[1].steps[-2].expr
    assert f"$${grad} = {derivation.latex(any_labels)}$$" in README
    assert f"$${grad} = {derivation.latex(derived.result)}$$" in README
    assert f"$${hess} = {derivation.latex(derived.hessian.steps[-2].expr)}$$" in README


def test_the_test_command_is_what_ci_runs():
    command = "python -m pytest -q -n 2"
    assert f"pip install -e '.[test]' && {command}" in README
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command


def console_blocks():
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.S):
        first, *shown = (line.rstrip() for line in block.rstrip("\n").split("\n"))
        assert first.startswith("$ softmax-ce ")
        yield shlex.split(first[len("$ softmax-ce "):]), shown


@pytest.mark.parametrize("argv, shown", list(console_blocks()), ids=lambda v: " ".join(v)
                         if isinstance(v, list) and v and isinstance(v[0], str) and
                         v[0].startswith(("derive", "verify", "report")) else "")
def test_console_examples_are_real_output(argv, shown, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # report writes its folder here
    code = main(argv)
    out = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    position = 0
    for line in shown:
        if line == "...":
            continue
        assert line in out[position:], f"README line not in the output (in order): {line!r}"
        position = out.index(line, position) + 1


def test_there_is_an_example_of_each_command():
    assert [argv[0] for argv, _ in console_blocks()] == ["derive", "verify", "report"]


def test_the_check_chain_example_gives_what_the_readme_says():
    x = sp.Symbol("x", positive=True)
    c = derivation.check_chain([sp.log(x**2), 2 * sp.log(x), 3 * sp.log(x)])
    assert (c.holds, c.failed_step, c.counterexample) == (False, 2, {"x": 2.485382})
    assert "c.holds, c.failed_step, c.counterexample      # False, 2, {'x': 2.485382}" in README


def test_the_tolerances_stated_are_the_table():
    sentence = README[README.index("The default tolerances are"):].split(".\n")[0]
    stated = {dtype: (float(rtol), float(atol)) for dtype, rtol, atol in
              re.findall(r"(\w+)\s+rtol ([\d.e-]+) atol ([\d.e-]+)", sentence)}
    assert stated == {d: (t.rtol, t.atol) for d, t in verify.TOLERANCES.items()}


def test_the_default_grid_has_the_number_of_cells_stated():
    from verify import _options

    cells = (len(_options.DEFAULT_CLASSES) * len(verify.DTYPES) * len(_options.DEFAULT_SCALES)
             * len(verify.LABEL_KINDS))
    assert f"runs the whole default grid ({cells} cells)" in README


def test_the_default_grid_stated_is_the_default():
    from verify import _options

    assert _options.DEFAULT_CLASSES == (2, 10, 1000)
    assert _options.DEFAULT_SCALES == (0.1, 1.0, 10.0, 100.0)
    assert "(four dtypes, c = 2, 10,\n1000, four label kinds, logit scales 0.1 to 100)" in README
    assert len(verify.DTYPES) == len(verify.LABEL_KINDS) == 4
