"""The softmax-ce command line: every command's default run, every format, exit codes 0/1/2,
and bad input — one line on stderr, exit 2, nothing written."""

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import derivation
from verify._cli import app, main

runner = CliRunner()
SMALL = ["--classes", "3", "--dtypes", "float32", "--scales", "1", "--labels", "onehot,soft",
         "--samples", "8", "--quiet"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- derive -----------------------------------------------------------------------------------

def test_derive_default_is_any_number_of_classes_as_text():
    result = runner.invoke(app, ["derive"])
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "Gradient of softmax cross-entropy: any number of classes c, one-hot labels")
    assert "Result: ∂C/∂z_k = sigma[k] - y[k] — holds" in result.stdout


@pytest.mark.parametrize("fmt, method", [("text", "to_text"), ("markdown", "to_markdown"),
                                         ("latex", "to_latex"), ("json", "to_json")])
def test_derive_formats_are_the_renderings(fmt, method):
    result = runner.invoke(app, ["derive", "--classes", "2", "--labels", "soft", "--format", fmt])
    assert result.exit_code == 0
    expected = getattr(derivation.derive(classes=2, labels="soft"), method)()
    assert result.stdout == expected if expected.endswith("\n") else expected + "\n"


def test_derive_out_writes_the_file_and_nothing_to_stdout(tmp_path):
    target = tmp_path / "d.json"
    result = runner.invoke(app, ["derive", "--classes", "3", "--format", "json", "--out",
                                 str(target)])
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(target.read_text())["schema"] == "softmax-ce.derivation/1"
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]  # no temporary file left behind


def test_derive_exits_1_when_a_route_fails(capsys, monkeypatch):
    from derivation._symbols import k, y

    real = derivation.derive

    def broken(classes=None, labels="onehot", **keywords):
        d = real(classes, labels, **keywords)
        return type(d)(d.classes, d.labels, d.routes, d.hessian, d.result + y[k])

    monkeypatch.setattr(derivation, "derive", broken)
    code, out, _ = run(capsys, "derive", "--classes", "2")
    assert code == 1
    assert "DOES NOT HOLD" in out


# --- verify -----------------------------------------------------------------------------------

def test_verify_small_grid_text():
    result = runner.invoke(app, ["verify", *SMALL])
    assert result.exit_code == 0, result.output
    assert "float32" in result.stdout and "agree" in result.stdout


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_verify_formats(fmt, capsys):
    code, out, err = run(capsys, "verify", *SMALL, "--format", fmt)
    assert code == 0 and err == ""
    if fmt == "json":
        doc = json.loads(out)
        assert doc["schema"] == "softmax-ce.verify/1" and doc["ok"] is True
        assert len(doc["cells"]) == 2
    elif fmt == "markdown":
        assert out.lstrip().startswith(("#", "|"))


def test_verify_json_is_byte_identical_for_the_same_seed(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        assert main(["verify", *SMALL, "--format", "json", "--out", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_verify_plot_writes_a_png(tmp_path, capsys):
    picture = tmp_path / "map.png"
    code, _, _ = run(capsys, "verify", *SMALL, "--plot", str(picture))
    assert code == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verify_a_wrong_closed_form_exits_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "mygrad.py").write_text(textwrap.dedent("""
        import jax
        def flipped(z, y):
            return y - jax.nn.softmax(z, axis=-1)
    """))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "verify", *SMALL, "--closed-form", "mygrad:flipped",
                       "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and doc["summary"]["disagree"] == 2


def test_verify_default_grid_in_a_real_subprocess(tmp_path, default_grid):
    """The bare command, as a user types it: the default grid holds for softmax(z) - y, with
    the same bytes as ``verify.check()`` in this process (whose programs the subprocess loads
    from the session's cache; a cold start is timed in benchmarks/, not here)."""
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "verify._cli", "verify", "--format", "json",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    doc = json.loads(out.read_text())
    assert doc["ok"] is True
    assert len(doc["cells"]) == 3 * 4 * 4 * 4
    assert out.read_text() == default_grid.to_json()


# --- report -----------------------------------------------------------------------------------

def test_report_writes_markdown_and_png(tmp_path, capsys, monkeypatch):
    import verify

    real = verify.check
    monkeypatch.setattr(verify, "check", lambda closed_form=None, progress=None: real(
        closed_form, classes=(3,), dtypes=("float32", "bfloat16"), scales=(1.0, 10.0),
        labels=("onehot", "unnormalized"), samples=8, progress=progress))
    folder = tmp_path / "out"
    code, out, _ = run(capsys, "report", "--out", str(folder), "--quiet")
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["agreement.png", "report.md"]
    text = (folder / "report.md").read_text()
    assert "![max ULP error per cell](agreement.png)" in text
    assert "any number of classes c" in text and "c = 3 classes" in text
    assert out.strip() == str(folder / "report.md")


# --- bad input --------------------------------------------------------------------------------

BAD = [
    (["derive", "--classes", "0"], r"--classes: expected an integer >= 1 .*got '0'"),
    (["derive", "--classes", "-3"], r"--classes: expected an integer >= 1 .*got '-3'"),
    (["derive", "--classes", "x"], r"--classes: expected an integer >= 1 .*got 'x'"),
    (["derive", "--labels", "smoth"], r"--labels: unknown label kind 'smoth'"),
    (["derive", "--format", "jsn"], r"--format: unknown format 'jsn'; did you mean 'json'\?"),
    (["verify", "--classes", "0"], r"--classes: expected integers >= 1, got '0'"),
    (["verify", "--classes", "-3"], r"--classes: expected integers >= 1, got '-3'"),
    (["verify", "--classes", "x"], r"--classes: expected integers >= 1, got 'x'"),
    (["verify", "--labels", "hot"], r"--labels: unknown label kind 'hot'"),
    (["verify", "--dtypes", "flaot32"],
     r"--dtypes: unknown dtype 'flaot32'; did you mean 'float32'\? \(accepted: float64, float32, "
     r"bfloat16, float16\)"),
    (["verify", "--format", "latex"], r"--format: unknown format 'latex' \(accepted: text, "),
    (["verify", "--scales", "nan"], r"--scales: expected finite numbers > 0, got 'nan'"),
    (["verify", "--scales", "-1"], r"--scales: expected finite numbers > 0, got '-1'"),
    (["verify", "--samples", "-5"], r"--samples: expected an integer >= 1, got '-5'"),
    (["verify", "--rtol", "-1"], r"--rtol: expected a finite number >= 0, got '-1'"),
    (["verify", "--atol", "x"], r"--atol: expected a finite number >= 0, got 'x'"),
    (["verify", "--plot", "map.jpg"], r"--plot: expected a .png file"),
    (["verify", "--closed-form", "nosuchmodule_xyz:f"], r"--closed-form: cannot import"),
    (["verify", "--closed-form", "json:nothing"], r"--closed-form: 'json' has no function"),
    (["verify", "--closed-form", "json"], r"--closed-form: expected module:function"),
    (["verify", "--bogus"], r"No such option: --bogus"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, message, capsys, tmp_path,
                                                            monkeypatch):
    import re

    monkeypatch.chdir(tmp_path)
    target = tmp_path / "out.txt"
    code, out, err = run(capsys, *argv, "--out", str(target)) if "--bogus" not in argv else run(
        capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["derive", "verify"])
def test_unwritable_out_is_refused_before_any_work(command, capsys, tmp_path):
    target = tmp_path / "missing" / "x.txt"
    code, out, err = run(capsys, command, "--out", str(target))
    assert code == 2 and out == ""
    assert err == (f"error: --out: cannot write '{target}': directory '{target.parent}' does "
                   f"not exist\n")
    assert not target.parent.exists()


def test_out_that_is_a_directory_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "derive", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_bad_input_in_a_real_subprocess_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "verify._cli", "verify", "--dtypes", "flaot32"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("error: --dtypes: unknown dtype 'flaot32'; did you mean 'float32'? "
                           "(accepted: float64, float32, bfloat16, float16)\n")


def test_bare_command_shows_help_and_exits_0(capsys):
    code, out, err = run(capsys)
    assert code == 0 and "derive" in out and "verify" in out and err == ""


def test_output_files_get_the_permissions_of_a_plain_write(tmp_path, capsys):
    import os

    target = tmp_path / "d.txt"
    old = os.umask(0o022)
    try:
        assert main(["derive", "--classes", "2", "--out", str(target)]) == 0
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("body, message", [
    ("return jnp.zeros((z.shape[0], 1))", r"expected an array of shape \(rows, c\) = \(\d+, 3\), "
                                          r"got \(\d+, 1\)"),
    ("raise RuntimeError('boom')", r"raised RuntimeError: boom"),
    ("return (z > 0).astype(jnp.int32)", r"g returns int32 on float32 inputs; expected a real "
                                         r"floating-point gradient"),
    ("return z > 0", r"g returns bool on float32 inputs"),
])
def test_a_bad_closed_form_is_one_error_line(body, message, tmp_path, monkeypatch, capsys):
    import re

    module = f"badgrad_{abs(hash(body))}"  # a module name of its own: imports are cached
    (tmp_path / f"{module}.py").write_text(f"import jax.numpy as jnp\ndef g(z, y):\n    {body}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "verify", *SMALL, "--closed-form", f"{module}:g")
    assert code == 2 and out == ""
    assert err.startswith("error: --closed-form: ") and err.count("\n") == 1
    assert re.search(message, err), err


def test_a_closed_form_that_breaks_at_smaller_c_still_shrinks(tmp_path, monkeypatch, capsys):
    (tmp_path / "tengrad.py").write_text(textwrap.dedent("""
        import jax, jax.numpy as jnp
        def g(z, y):  # written for c = 10 only, and wrong
            return y - jax.nn.softmax(z, axis=-1) + 0 * jnp.ones(10)
    """))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "verify", "--classes", "10", "--dtypes", "float32", "--scales",
                       "1", "--labels", "onehot", "--samples", "8", "--closed-form", "tengrad:g",
                       "--format", "json", "--quiet")
    assert code == 1
    cell = json.loads(out)["cells"][0]
    assert cell["verdict"] == "disagree" and "tengrad" in cell["counterexample"]


def test_progress_bar_appears_on_a_terminal_after_about_a_second(capsys, monkeypatch):
    import sys

    from verify import _cli

    clock = iter([0.0, 0.5, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2])
    monkeypatch.setattr(_cli.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with _cli.progress_bar(False, "cells") as update:
        update(1, 4)  # at 0.5 s: nothing yet
        assert capsys.readouterr().err == ""
        update(2, 4)  # at 1.5 s: the bar starts
    assert "cells" in capsys.readouterr().err
    with _cli.progress_bar(True, "cells") as update:  # --quiet
        update(1, 4)
        update(4, 4)
    assert capsys.readouterr().err == ""


def test_a_non_callable_attribute_is_called_not_callable(tmp_path, monkeypatch, capsys):
    (tmp_path / "notafunction.py").write_text("gradient = 3.0\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "verify", *SMALL, "--closed-form", "notafunction:gradient")
    assert code == 2 and out == ""
    assert err == ("error: --closed-form: 'notafunction:gradient' is not callable (it is a "
                   "float); expected a function (z, y) -> gradient\n")


@pytest.mark.parametrize("body, message", [
    ("return jax.nn.softmax(z, axis=-1) - y if z.sum() > 0 else y",
     r"uses Python control flow \(if, while, and/or, int\(\), bool\(\)\) on a traced value; use "
     r"jnp.where\(condition, a, b\) instead$"),
    ("return jnp.zeros_like(z) + int(z[0, 0])", r"on a traced value; use jnp.where"),
    ("import numpy; return numpy.asarray(z) - y", r"passes a traced value to NumPy; use jax.numpy"),
])
def test_jax_tracing_errors_are_one_line_saying_what_to_do(body, message, tmp_path, monkeypatch,
                                                          capsys):
    import re

    module = f"traced_{abs(hash(body))}"
    (tmp_path / f"{module}.py").write_text(
        f"import jax, jax.numpy as jnp\ndef g(z, y):\n    {body}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "verify", *SMALL, "--closed-form", f"{module}:g")
    assert code == 2 and out == ""
    assert err.startswith(f"error: --closed-form: {module}:g ") and err.count("\n") == 1
    assert re.search(message, err.rstrip("\n")), err


def test_every_reproduce_line_gives_back_its_cell_byte_for_byte(tmp_path, monkeypatch, capsys):
    """Every option that shaped a cell is in its reproduce line: run in-process, each line gives
    the same cell, JSON byte for byte — the closed form, tolerances, samples and seed included."""
    import shlex

    (tmp_path / "signflip.py").write_text(textwrap.dedent("""
        import jax
        def bug_sign(z, y):
            return y - jax.nn.softmax(z, axis=-1)
    """))
    monkeypatch.chdir(tmp_path)
    grid = ["--classes", "3", "--dtypes", "float32,bfloat16", "--scales", "0.3", "--labels",
            "onehot,unnormalized", "--samples", "5", "--seed", "7", "--rtol", "0.002",
            "--atol", "3e-06", "--closed-form", "signflip:bug_sign", "--quiet"]
    code, out, _ = run(capsys, "verify", *grid, "--format", "json")
    assert code == 1
    cells = json.loads(out)["cells"]
    assert len(cells) == 4 and {c["verdict"] for c in cells} == {"disagree"}
    for cell in cells:
        argv = shlex.split(cell["reproduce"])
        assert argv[:2] == ["softmax-ce", "verify"] and "--closed-form" in argv
        code, again, _ = run(capsys, *argv[1:], "--quiet", "--format", "json")
        assert code == 1
        (alone,) = json.loads(again)["cells"]
        assert json.dumps(alone) == json.dumps(cell)


def test_a_closed_form_that_cannot_be_imported_gets_a_reproduce_line_that_fails_loudly(capsys):
    """A lambda cannot be named on a command line: its reproduce line names it anyway, and
    running that line is an error — never a silent check of σ − y instead."""
    import re
    import shlex

    import verify

    report = verify.check(lambda z, y: y - z, classes=2, dtypes="float32", scales=1.0,
                          labels="onehot", samples=1)
    line = report.cells[0].reproduce
    assert re.search(r" --closed-form '(tests\.)?test_cli:test_a_closed_form_that_cannot_be_"
                     r"imported_gets_a_reproduce_line_that_fails_loudly\.<locals>\.<lambda>'$",
                     line), line
    code, out, err = run(capsys, *shlex.split(line)[1:])
    assert code == 2 and out == "" and "--closed-form" in err and "has no function" in err


def test_a_static_method_is_reproduced_by_its_dotted_name(tmp_path, monkeypatch, capsys):
    (tmp_path / "grads.py").write_text(textwrap.dedent("""
        import jax
        class Grads:
            @staticmethod
            def plain(z, y):
                return jax.nn.softmax(z, axis=-1) - y
    """))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "verify", *SMALL, "--closed-form", "grads:Grads.plain",
                       "--format", "json")
    assert code == 0
    assert all(c["reproduce"].endswith(" --closed-form grads:Grads.plain")
               for c in json.loads(out)["cells"])


def test_the_api_says_to_use_jnp_where_in_one_line():
    import jax

    import verify

    def branchy(z, y):
        return jax.nn.softmax(z, axis=-1) - y if z.sum() > 0 else y

    with pytest.raises(ValueError) as caught:
        verify.check(branchy, classes=2, dtypes="float32", scales=1.0, labels="onehot", samples=1)
    assert str(caught.value) == ("closed_form: branchy uses Python control flow (if, while, "
                                 "and/or, bool()) on a traced value; use jnp.where(condition, a, "
                                 "b) instead")


def test_check_of_an_empty_file_name_says_it_names_no_file(capsys):
    """`check ""` said "'' is a directory" (the empty path is the current directory)."""
    code, out, err = run(capsys, "check", "")
    assert (code, out) == (2, "")
    assert err == ("error: FILE: '' names no file (a Markdown or LaTeX file, or - for standard "
                   "input)\n")
