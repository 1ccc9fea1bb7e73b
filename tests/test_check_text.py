"""check_text on the reference as it is, on its transcription in examples/, and on each
directive, verdict kind, hint and suggestion."""

import json
from pathlib import Path

import pytest

import derivation
from derivation import _text_check
from verify._cli import main

ROOT = Path(__file__).parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "000_383b7a561c191c02.txt"
EXAMPLES = ROOT / "examples" / "derivations"


@pytest.fixture(scope="module")
def reference():
    return derivation.check_text(REFERENCE.read_text(encoding="utf-8"), source="reference.txt")


def chain_ending_at(result, tag):
    """The steps of the aligned block whose last row carries ``tag``."""
    last = next(s for s in result.steps if s.text.rstrip().endswith(tag))
    return [s for s in result.steps if s.line == last.line]


def test_reference_chain_3_holds_line_by_line(reference):
    steps = chain_ending_at(reference, "(3)")
    assert len(steps) == 4
    assert [s.status for s in steps] == ["holds"] * 4
    assert steps[0].text.startswith(r"\frac{\partial C_0}{\partial \hat{y}_p}")


def test_reference_chain_4_holds_or_holds_if_n_is_not_p(reference):
    steps = chain_ending_at(reference, "(4)")
    assert len(steps) == 3
    first, *rest = steps
    assert first.status == "fails" and first.holds_if == ("n \\neq p",)
    assert first.counterexample["n"] == first.counterexample["p"]
    assert [s.status for s in rest] == ["holds", "holds"]


def test_reference_substitution_fails_and_says_why(reference):
    (step,) = [s for s in reference.steps if s.text.startswith(r"C_0 = -\log(e^{\hat{y}_p}")]
    assert step.status == "fails" and step.counterexample
    assert step.hint.startswith(r"$\hat{y}$ names the softmax output in (1) and its input in (2)")


def test_reference_suggests_one_hot_for_minus_log_y_hat_p(reference):
    (step,) = [s for s in reference.steps if s.text.strip() == r"&= -\log \hat{y}_p \quad (1)"]
    assert step.status == "fails" and step.holds_if == ("y_i = \\delta_{ip}",)


def test_reference_reads_the_ellipsis_sum_and_leaves_the_unclear_one_unchecked(reference):
    first, second = reference.steps[:2]
    assert first.text.startswith("C_0 &= -[y_1") and first.status == "holds"
    assert second.status == "unchecked" and "do not follow one pattern" in second.detail
    assert second.detail.startswith("reference.txt:38:")
    assert not reference.holds and reference.first_failure is second


def test_reference_prose_math_defines_nothing_and_claims_nothing(reference):
    lines = {s.line for s in reference.steps}
    assert lines == {38, 44, 48, 52}  # $y_p = 1$ (line 36) is no step, and redefines nothing


def run(*args, capsys):
    code = main(list(map(str, args)))
    return code, capsys.readouterr()


def test_the_transcribed_course_holds_end_to_end(capsys):
    code, out = run("check", EXAMPLES / "course.md", "--format", "json", capsys=capsys)
    doc = json.loads(out.out)
    assert code == 0 and doc["holds"] and doc["summary"]["fails"] == 0
    assert doc["summary"] == {"steps": 11, "holds": 11, "fails": 0, "unchecked": 0}


def test_the_planted_error_is_found_at_its_step(capsys):
    code, out = run("check", EXAMPLES / "course-planted-error.md", "--format", "json",
                    capsys=capsys)
    doc = json.loads(out.out)
    failing = [s for s in doc["steps"] if s["status"] != "holds"]
    assert code == 1 and [(s["index"], s["line"]) for s in failing] == [(7, 32)]
    assert failing[0]["hint"] == "sign: this line is the negative of the previous one"


@pytest.mark.parametrize("path", sorted(set(EXAMPLES.glob("*.md")) - {
    EXAMPLES / "course.md", EXAMPLES / "course-planted-error.md"}), ids=lambda p: p.stem)
def test_every_other_example_holds_unless_it_has_a_planted_error(path, capsys):
    code, out = run("check", path, capsys=capsys)
    assert code == (1 if "planted" in path.stem else 0), out.out


def test_the_reference_through_the_cli_exits_1(capsys):
    code, out = run("check", REFERENCE, capsys=capsys)
    assert code == 1 and "✗" in out.out and "holds if y_i = \\delta_{ip}" in out.out


@pytest.mark.parametrize("args, message", [
    (["check", "no-such-file.md"], "error: FILE: 'no-such-file.md' does not exist"),
    (["check", "{prose}"], "prose.md: no mathematics found"),
    (["check", "{binary}"], "is not UTF-8 text"),
    (["check", "{course}", "--format", "jsno"], "did you mean 'json'?"),
    (["check", "{course}", "--assume", "n \\in p"], "error: given: could not read"),
    (["check", "{definitions}"], "definitions.md: no step to check"),
])
def test_unusable_input_exits_2_with_one_error_line(tmp_path, capsys, args, message):
    prose, binary = tmp_path / "prose.md", tmp_path / "binary.md"
    prose.write_text("Just words, no math.\n")
    binary.write_bytes(b"$$x = \xff$$")
    definitions = tmp_path / "definitions.md"
    definitions.write_text("Let $f(x) = x^2$ and $$g = 3$$\n")
    paths = {"prose": prose, "binary": binary, "course": EXAMPLES / "course.md",
             "definitions": definitions}
    code, out = run(*[a.format(**paths) for a in args], capsys=capsys)
    assert code == 2 and out.out == ""
    assert out.err.count("\n") == 1 and message in out.err


def test_out_file_and_markdown(tmp_path, capsys):
    target = tmp_path / "report.md"
    code, out = run("check", EXAMPLES / "course.md", "--format", "markdown", "--out", target,
                    capsys=capsys)
    assert code == 0 and out.out == ""
    assert target.read_text().startswith("# Check of `") and "| 11 |" in target.read_text()


def test_stdin(monkeypatch, capsys):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"$$(a+b)^2 = a^2 + 2ab + b^2$$")))
    code, out = run("check", "-", capsys=capsys)
    assert code == 0 and "<stdin>" in out.out


# ---- directives ------------------------------------------------------------------------

CASES = r"""
$$D = \sigma_k - \delta_{kp}$$

assume: k = p

$$D = \sigma_p - 1$$

assume: k \neq p

$$D = \sigma_k$$

assume:

$$D = \sigma_k$$
"""


def test_assume_holds_until_the_next_assume_and_an_empty_one_ends_it():
    r = derivation.check_text(CASES)
    assert [s.status for s in r.steps] == ["holds", "holds", "fails"]
    assert [s.assumptions for s in r.steps] == [("k = p",), ("k \\neq p",), ()]
    assert r.steps[2].holds_if == ("k \\neq p",)


@pytest.mark.parametrize("directive", [
    "given: y_i = \\delta_{ip}", "% given: y_i = \\delta_{ip}",
    "<!-- given: y_i = \\delta_{ip} -->", "   given: y_i = \\delta_{ip}",
    "        % given: y_i = \\delta_{ip}",
])
def test_given_in_every_form_holds_to_the_end(directive):
    text = f"{directive}\n\n$$L = -\\sum_{{i=1}}^{{c}} y_i \\log s_i = -\\log s_p$$\n"
    assert derivation.check_text(text).holds
    assert not derivation.check_text(text.replace(directive, "")).holds


@pytest.mark.parametrize("code", [
    "```\ngiven: y_i = \\delta_{ip}\n```", "~~~latex\n% given: y_i = \\delta_{ip}\n~~~",
    "    given: y_i = \\delta_{ip}", "\tgiven: y_i = \\delta_{ip}",
    "## Setup\n    given: y_i = \\delta_{ip}",  # no paragraph goes on under a heading
    "1. The step:\n\n        given: y_i = \\delta_{ip}",  # code inside a list item
    "    \\documentclass{article}\n    given: y_i = \\delta_{ip}",  # LaTeX shown as code
])
def test_a_directive_in_code_is_not_in_force(code):
    """Code (fenced, or indented four spaces as Markdown's code is) is not the text: its math
    is not read, and neither is a directive in it."""
    text = f"{code}\n\n$$L = -\\sum_{{i=1}}^{{c}} y_i \\log s_i = -\\log s_p$$\n"
    step, = derivation.check_text(text).steps
    assert step.status == "fails" and step.assumptions == ()


@pytest.mark.parametrize("item", ["1. The loss:", "- The loss:"])
def test_a_directive_indented_under_a_list_item_is_in_force(item):
    """Four spaces under a list item go on with the item (Markdown's rule), not into code."""
    text = (f"{item}\n\n    given: y_i = \\delta_{{ip}}\n\n"
            "    $$L = -\\sum_{i=1}^{c} y_i \\log s_i = -\\log s_p$$\n")
    assert derivation.check_text(text).holds


@pytest.mark.parametrize("row", [
    "\\delta_{ik} = 1 \\quad \\text{for all but } i = k",
    "(x - 1) y = 0 \\quad \\text{if not } x = 1",
])
def test_a_condition_whose_words_change_it_is_not_read(row):
    """Only 'if', 'for', 'when' (and 'all') may stand in the braces: 'if not x = 1' read as
    'x = 1' made a false line hold."""
    step, = derivation.check_text(f"$${row}$$").steps
    assert step.status == "unchecked" and "could not be read" in step.detail


def test_the_command_lines_assume_is_a_given_for_the_whole_text():
    text = "$$G = s_k \\sum_{i=1}^{c} y_i - y_k = s_k - y_k$$"
    assert not derivation.check_text(text).holds
    assert derivation.check_text(text, assume=["\\sum_{i=1}^{c} y_i = 1"]).holds


def test_a_relation_with_a_bracket_left_open_is_refused_not_dropped(tmp_path, capsys):
    """--assume '{' (a bracket never closed) was dropped without a word: the text held."""
    for relation in ("{", "\\frac{", "x > 0, {"):
        result = derivation.check_text("$$x = x$$", assume=[relation])
        assert not result.holds
        assert "could not read" in result.steps[0].detail and "expected '}'" in \
            result.steps[0].detail
    notes = tmp_path / "notes.md"
    notes.write_text("$$x = x$$")
    assert main(["check", str(notes), "--assume", "{"]) == 2
    assert capsys.readouterr().err.startswith("error: given: could not read '{' (--assume): ")


def test_inequality_directive_draws_points_that_satisfy_it():
    text = "given: T > 0\n\n$$\\sqrt{T^2} = T$$"
    assert derivation.check_text(text).holds
    assert not derivation.check_text(text.replace("given: T > 0", "")).holds


def test_a_directive_that_cannot_be_used_is_an_unchecked_step():
    r = derivation.check_text("assume: x \\in S\n\n$$a = a$$")
    assert r.steps[0].status == "unchecked" and "could not read" in r.steps[0].detail


# ---- verdict kinds, hints ---------------------------------------------------------------

@pytest.mark.parametrize("text, status, check", [
    ("$$(x+1)^2 = x^2 + 2x + 1$$", "holds", "symbolic"),
    ("$$\\sin^2 x + \\cos^2 x = 1$$", "holds", "numeric"),
    ("$$(x+1)^2 = x^2 + 1$$", "fails", None),
    ("$$x = f(x)$$", "unchecked", None),
    ("$$a_1 + \\dots + b = c$$", "unchecked", None),
])
def test_each_verdict_kind(text, status, check):
    (step,) = derivation.check_text(text).steps
    assert (step.status, step.check) == (status, check), step.detail


# The alarm may land in a garbage-collector callback, where Python prints and ignores it; the
# budget raises again on leaving its block (tested below), so the step is still unchecked.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_over_the_time_budget_is_unchecked(monkeypatch):
    monkeypatch.setattr(_text_check, "STEP_SECONDS", 1e-4)
    (step,) = derivation.check_text("$$(x+1)^{40} = (1+x)^{40}$$").steps
    assert step.status == "unchecked" and "over the time budget" in step.detail


@pytest.mark.parametrize("wrong, hint", [
    ("1 - x^2", "sign: this line is the negative of the previous one"),
    ("2x^2 - 2", "constant factor: this line is 2 times the previous one"),
    ("x^2 - 1 + x", "missing term: this line differs from the previous one by $x$"),
])
def test_hints(wrong, hint):
    (step,) = derivation.check_text(f"$$(x-1)(x+1) = {wrong}$$").steps
    assert step.status == "fails" and step.hint == hint


def test_a_step_after_a_failure_is_checked_from_what_was_written():
    r = derivation.check_text(r"$$\begin{aligned} A &= (x+1)^2 \\ &= x^2 + 1 \\ &= 1 + x^2"
                              r"\end{aligned}$$")
    assert [s.status for s in r.steps] == ["fails", "holds"]  # A = (x+1)^2 defines A


def test_derivatives_as_left_sides_and_inside_expressions():
    text = r"""
$$L = x^3 + \log x$$
$$\frac{dL}{dx} = 3x^2 + \frac{1}{x}$$
$$\frac{\partial}{\partial x}(x^2) + 1 = 2x + 1$$
$$\frac{\partial L}{\partial x} = 3x^2$$
"""
    r = derivation.check_text(text)
    assert [s.status for s in r.steps] == ["holds", "holds", "fails"]


def test_json_is_deterministic_and_follows_the_schema(reference):
    again = derivation.check_text(REFERENCE.read_text(encoding="utf-8"), source="reference.txt")
    assert reference.to_json() == again.to_json()
    doc = json.loads(reference.to_json())
    assert doc["schema"] == "softmax-ce.check/1" and doc["holds"] is False
    assert set(doc["steps"][0]) == {"index", "line", "text", "status", "check", "assumptions",
                                    "counterexample", "hint", "holds_if", "detail"}
    assert doc["summary"] == {"steps": 11, "holds": 7, "fails": 3, "unchecked": 1}


def test_text_report_marks_every_step(reference):
    text = reference.to_text()
    assert text.count("✓ step") == 7 and text.count("✗ step") == 3 and text.count("? step") == 1
    assert "reference.txt:44" in text


def test_check_text_refuses_what_is_not_text():
    with pytest.raises(TypeError, match="text: expected a string, got bytes"):
        derivation.check_text(b"$x$")
    with pytest.raises(derivation.NoMath, match="no mathematics found"):
        derivation.check_text("prose only")


def test_check_never_imports_jax_is_deterministic_and_ships_its_grammar():
    import os
    import subprocess
    import sys
    from importlib import resources

    probe = ("import sys; from verify._cli import main; "
             "code = main(['check', sys.argv[1], '--format', 'json']); "
             "print(code, 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(REFERENCE)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "7"}).stdout
    *report, flags = out.splitlines()
    assert flags == "1 False"
    # the same bytes in another process, under another hash seed
    here = derivation.check_text(REFERENCE.read_text(encoding="utf-8"), source=str(REFERENCE))
    assert "\n".join(report) + "\n" == here.to_json()
    assert resources.files("derivation").joinpath("latex.lark").is_file()
    assert '"*.lark"' in (ROOT / "pyproject.toml").read_text()


def test_inline_prose_math_redefines_nothing():
    text = r"""
$L = -\sum_{i=1}^{c} y_i \log s_i$ is the loss. As $y_p = 1$ and $i = j$ here, and $L = 0$ too:

$$L = -\sum_{i=1}^{c} y_i \log s_i$$
"""
    (step,) = derivation.check_text(text).steps
    assert step.status == "holds" and step.line == 4


@pytest.mark.parametrize("text, suggestion", [
    (r"$$G = s_k \sum_{i=1}^{c} y_i - y_k = s_k - y_k$$", r"\sum_{i=1}^{c} y_i = 1"),
    (r"$$\sqrt{T^2} = T$$", "T > 0"),
    (r"$$\delta_{kq} s_k = s_q$$", "k = q"),
])
def test_the_catalogue_suggests_what_makes_a_step_hold(text, suggestion):
    (step,) = derivation.check_text(text).steps
    assert step.status == "fails" and suggestion in step.holds_if


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_budget_holds_even_when_the_code_it_interrupts_swallows_the_alarm():
    import time

    from derivation._budget import OverBudget, budget

    with pytest.raises(OverBudget, match="over the time budget of 0.01 s"):
        with budget(0.01):
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                try:
                    sum(range(1000))
                except BaseException:  # noqa: BLE001 - what careless code does
                    pass


def test_lecture_note_habits():
    text = r"""
$$L = -\log \frac{e^{z_y}}{\sum_j e^{z_j}} = -z_y + \log \sum_j e^{z_j}$$

$$\frac{\partial L}{\partial z_k} = -\delta_{ky} + \frac{e^{z_k}}{\sum_j e^{z_j}}$$

\[ \frac{\partial}{\partial z_k} \log \left( \sum_{j=1}^{C} \exp(z_j) \right)
   = \frac{\exp(z_k)}{\sum_{j=1}^{C} \exp(z_j)} \]

$$\frac{\partial M}{\partial x} = 2x$$
"""
    r = derivation.check_text(text)
    assert [s.status for s in r.steps] == ["holds", "holds", "holds", "unchecked"]
    assert r.steps[0].text == r"= -z_y + \log \sum_j e^{z_j}"
    assert r.steps[3].detail.startswith("M has no definition before this line")


@pytest.mark.parametrize("text", [
    r"$$\sin(\pi / 2) = 1$$",
    r"$$\mathcal{L} = \ell^2$$ $$\frac{\partial \mathcal{L}}{\partial \ell} = 2 \ell$$",
    r"$$\exp\left(\log x^2\right) = x \cdot x$$",
    r"$$\frac12 + \dfrac{1}{2} = 1$$",
    r"$$\sum\limits_{i=1}^{3} i = 6, \quad \prod_{i=1}^{3} i = 6$$",
])
def test_more_notation_holds(text):
    r = derivation.check_text(text)
    assert r.holds, r.first_failure


@pytest.mark.parametrize("claimed, hint", [
    ("-3x^2", "sign: this line is the negative of the derivative"),
    ("6x^2", "constant factor: this line is 2 times the derivative"),
    ("3x^2 + 1", "missing term: this line differs from the derivative by $1$"),
])
def test_a_wrong_derivative_gets_a_hint_too(claimed, hint):
    (step,) = derivation.check_text(f"$$L = x^3$$ $$\\frac{{dL}}{{dx}} = {claimed}$$").steps
    assert step.status == "fails" and step.hint == hint


def test_a_difference_that_is_exactly_a_nonzero_number_fails_however_small():
    """1 and 1 + 10^{-41} agree to the numeric check's 40 digits: the difference is an exact
    rational, so no tolerance may hide it; a difference that is exactly 0 still holds."""
    wrong = derivation.check_text("$$f = 1$$\n\n$$f = 1 + 10^{-41}$$")
    assert [s.status for s in wrong.steps] == ["fails"]
    assert wrong.steps[0].detail.endswith("differ by exactly 1/" + "1" + "0" * 41)
    right = derivation.check_text("$$x = 2$$\n\n$$x = 2 + 0.5 - 1/2$$")
    assert right.holds, right.to_text()
    tower = derivation.check_text("$$e^{e^{e^{e^{1000}}}} = e^{e^{e^{e^{1000}}}} + 1$$")
    assert tower.steps[0].detail == ("does not hold: this line and the previous one differ by "
                                     "exactly 1")  # too large to evaluate: it was unchecked


def test_an_equation_in_inline_math_is_said_to_be_unchecked():
    """A wrong derivative stated in prose ($…$) is no step, but the report says it was not
    checked (the text passed with nothing said); naming ($i = j$) and definitions are not
    listed, and the JSON keeps its schema."""
    text = ("Recall $\\sigma(x) = \\frac{1}{1+e^{-x}}$; its derivative is "
            "$\\frac{d\\sigma}{dx} = \\sigma(x)(1+\\sigma(x))$ when $i = j$.\n\n"
            "$$\\sigma(-x) = 1 - \\sigma(x)$$\n\nand $2 + 2 = 5$.\n")
    checked = derivation.check_text(text, source="n.md")
    assert checked.holds and checked.inline == (1, 5)
    assert checked.to_text().splitlines()[2] == (
        "not checked: the equations in inline math ($…$) on lines 1, 5 (prose states, it does "
        "not derive: write a step in display math, $$…$$, to have it checked)")
    assert "inline" not in json.loads(checked.to_json())
    assert derivation.check_text("$$f = x$$\n\nwhen $i = j$ and $y_p = 1$.").inline == ()


def test_words_after_an_equation_are_read_for_what_they_say():
    """'with x = 0' (a value at a point) gave x that value for the rest of the text, so a later
    wrong step held; 'where i = k' was a definition of i; 'since R' hid a wrong step as
    unchecked; 'and h = 2' was dropped; rows of a gather were joined; p = σ(z) was read as
    the softmax where σ may be the sigmoid."""
    def statuses(text):
        return [s.status for s in derivation.check_text(text).steps]

    point = ("$$f = x^3$$\n\n$$\\frac{d f}{d x} = 3x^2 \\quad \\text{with } x = 0$$\n\n"
             "$$g = x^2 + 1$$\n\n$$g = 1$$\n")
    assert statuses(point) == ["unchecked", "fails"]
    cases = ("$$p_i = \\frac{e^{z_i}}{\\sum_{j=1}^{c} e^{z_j}}$$\n\n"
             "$$\\frac{\\partial p_i}{\\partial z_k} = p_k(1 - p_k) \\quad \\text{where } i = k$$"
             "\n\n$$\\frac{\\partial p_i}{\\partial z_k} = -p_i p_k \\quad \\text{with } i \\neq k$$")
    assert statuses(cases) == ["holds", "holds"]
    reasons = ("$$f = x^2$$\n\n$$\\frac{df}{dx} = 3x \\quad \\text{since } x = x$$\n\n"
               "$$g = x + 1 \\quad \\text{and} \\quad h = 2$$\n\n$$g = x + 1 \\quad \\text{i.e.}"
               "\\quad g = 5$$\n")
    assert statuses(reasons) == ["fails", "holds", "fails"]
    gather = "\\begin{gather*}\ng = x + 1 \\\\\n-g \\\\\n= -x - 1\n\\end{gather*}\n"
    assert "fails" not in statuses(gather)
    sigmoid = ("$p = \\sigma(z)$, entrywise, and\n\n$$L = -\\sum_{i=1}^{K} y_i \\log p_i$$\n\n"
               "given: \\sum_{i=1}^{K} y_i = 1\n\n$$\\frac{\\partial L}{\\partial z_k} = "
               "p_k - y_k$$\n")
    assert statuses(sigmoid) != ["holds"]


def test_a_derivative_at_a_point_is_taken_before_the_point_is_put_in():
    """'d/dx x^3 = 0 for x = 1' held: x = 1 was put into x^3 first, whose derivative is 0; the
    true 'd/dx x^3 = 3 for x = 1' failed. And 'with x = 2e' (a constant, e Euler's number)
    gave x that value for the rest of the text."""
    def statuses(text):
        return [s.status for s in derivation.check_text(text).steps]

    assert statuses("$$\\frac{d}{dx} x^3 = 0 \\quad \\text{for } x = 1$$") == ["fails"]
    assert statuses("$$\\frac{d}{dx} x^3 = 3 \\quad \\text{for } x = 1$$\n\n"
                    "$$\\frac{d}{dx}\\frac{1}{1+e^{-x}} = \\frac14 \\quad \\text{because } x = 0$$"
                    ) == ["holds", "holds"]
    assert statuses("$$x^2 = 4 e^{2} \\quad \\text{with } x = 2 e$$\n\n"
                    "$$(x + 1)^2 = 4e^2 + 4e + 1$$") == ["unchecked", "fails"]
