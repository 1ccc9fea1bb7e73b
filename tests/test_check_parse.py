"""Reading LaTeX: where the math is (extract), what each row is (parse), and that no text, however
hostile, escapes as an exception or reaches anything but the grammar."""

import time

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import derivation
from derivation._text_extract import Row, extract
from derivation._text_parse import IMPLICIT_BOUND, parse_row

x, a, b = sp.symbols("x a b")
i, c = sp.symbols("i c")
Y = sp.IndexedBase("y")


def read(latex: str):
    parsed = parse_row(Row(1, 1, latex, True, 1))
    assert parsed.relation is not None, parsed.error
    return parsed.relation


def value(latex: str) -> sp.Basic:
    relation = read(latex)
    assert not relation.rest
    return relation.first


def test_where_the_math_is():
    text = "\n".join([
        "Prose with $a = 1$ (2) inline and a price of $5 or",
        "",
        "$6 in the next paragraph.",
        "$$b = 2$$",
        r"\[ c = 3 \]",
        r"\begin{equation} d = 4 \tag{7} \end{equation}",
        r"\begin{align*} e &= 5 \\ &= 6 \end{align*}",
        r"\begin{gather} f = 7 \end{gather}",
        "```", "$$not = math$$", "```",
        "% $$g = 8$$",
    ])
    rows = extract(text).rows
    assert [(r.line, r.text, r.display) for r in rows] == [
        (1, "a = 1", False), (4, "b = 2", True), (5, "c = 3", True),
        (6, r"d = 4 \tag{7}", True), (7, "e &= 5", True), (7, "&= 6", True),
        (8, "f = 7", True)]
    assert rows[0].tag == "(2)"
    assert read(rows[3].text).tag == "(7)"


def test_rows_of_an_aligned_block_keep_their_lines():
    rows = extract("$$\\begin{aligned}\nA &= 1 \\\\\n  &= 2\n\\end{aligned}$$").rows
    assert [(r.line, r.column, r.text) for r in rows] == [(2, 1, "A &= 1"), (3, 3, "&= 2")]


@pytest.mark.parametrize("latex, expected", [
    ("a * b", a * b), (r"a \cdot b", a * b), (r"a \times b", a * b), ("a b", a * b),
    (r"\frac{a}{b}", a / b), (r"\dfrac{a}{b}", a / b), (r"\left[ a + b \right]^2", (a + b) ** 2),
    (r"\left( a \right)", a), (r"\sqrt{x}", sp.sqrt(x)), (r"\log x", sp.log(x)),
    (r"\ln(x)", sp.log(x)), (r"\exp(x)", sp.exp(x)), ("e^{x}", sp.Symbol("e") ** x),
    (r"\sum_{i=1}^{c} y_i", sp.Sum(Y[i], (i, 1, c))), (r"\sum_i y_i", sp.Sum(Y[i], (i, 1, IMPLICIT_BOUND))),
    (r"\prod_{i=1}^{3} y_i", sp.Product(Y[i], (i, 1, 3))),
    (r"\delta_{ij}", sp.KroneckerDelta(i, sp.Symbol("j"))),
    (r"\hat{y}_i", sp.IndexedBase(r"\hat{y}")[i]), (r"\sigma_j", sp.IndexedBase("sigma")[sp.Symbol("j")]),
    ("z_{k}", sp.IndexedBase("z")[sp.Symbol("k")]), ("C_0", sp.IndexedBase("C")[0]),
    (r"\alpha x", sp.Symbol("alpha") * x), (r"x \text{ for all } ", x),
    (r"\mathbb{1}[i = j]", sp.KroneckerDelta(i, sp.Symbol("j"))),
    (r"\mathbf{1}\{i = j\}", sp.KroneckerDelta(i, sp.Symbol("j"))),
    (r"\mathbb 1_{i=j}", sp.KroneckerDelta(i, sp.Symbol("j"))),
    (r"\mathds{1}(i \neq j) x", (1 - sp.KroneckerDelta(i, sp.Symbol("j"))) * x),
    (r"y_1 + y_2 + \dots + y_c", sp.Sum(Y[i], (i, 1, c))),
    (r"-[y_1 \log y_1 + \cdots + y_c \log y_c]", -sp.Sum(Y[i] * sp.log(Y[i]), (i, 1, c))),
])
def test_each_construct_is_read(latex, expected):
    assert value(latex) == expected


def test_chains_tags_and_continuations():
    r = read(r"A = B = C \quad (3)")
    assert r.first == sp.Symbol("A") and [v for _, v in r.rest] == [sp.Symbol("B"), sp.Symbol("C")]
    assert r.tag == "(3)"
    r = read(r"&= x, \text{ which ends the proof.}")
    assert r.first is None and r.rest == (("=", x),)


def test_derivatives_are_read():
    d = value(r"\frac{\partial C}{\partial z_k}")
    assert isinstance(d, sp.Derivative) and d.variables == (sp.IndexedBase("z")[sp.Symbol("k")],)
    assert value(r"\frac{d}{dx} x^2") == sp.Derivative(x**2, x)
    assert value(r"\frac{\partial}{\partial x}(a x)") == sp.Derivative(a * x, x)
    assert value(r"-\frac{d}{dx} \log x") == -sp.Derivative(sp.log(x), x)
    assert value(r"a - \frac{d}{dx} x^2") == a - sp.Derivative(x**2, x)
    assert value(r"\widehat{y}_i") == value(r"\hat y_i") == sp.IndexedBase(r"\hat{y}")[i]
    assert value(r"\sigma(\mathbf{z})_i") == value(r"\sigma(z)_i") \
        == sp.IndexedBase("sigma(z)")[i]  # the softmax, unless the text says otherwise


@pytest.mark.parametrize("latex, column, message", [
    (r"x = \frac{1}{2", 15, "expected '}' after"),
    ("x = (a + b", 11, "expected ')' after 'x = (a + b' (opened at 1:5)"),
    ("x = a)", 6, "unexpected ')' with no bracket open"),
    (r"x = \input{a}", 5, r"unknown command '\input'"),
    ("x = a +", 8, "the row ends too early"),
    (r"y_1 + \dots + b", 1, "do not follow one pattern"),
])
def test_errors_read_like_a_compilers(latex, column, message):
    parsed = parse_row(Row(1, 1, latex, True, 1))
    assert parsed.relation is None
    assert parsed.column == column and message in parsed.error


def test_an_error_in_a_file_names_file_line_and_column():
    r = derivation.check_text("text\n\n$$x = \\frac{1}{2$$", source="notes.md")
    assert r.steps[0].detail.startswith("notes.md:3:17: expected '}' after '")


LATEXISH = st.lists(st.sampled_from(list("xyz_^{}()[]+-*/=&\\ 0123$\n") + [
    r"\frac", r"\sum", r"\log", r"\dots", r"\partial", r"\hat", r"\left", r"\right", r"\\",
    r"\begin{aligned}", r"\end{aligned}", "assume: ", r"\neq", r"\delta", r"\text{", "$$"]),
    max_size=40).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), LATEXISH, LATEXISH.map(lambda s: f"$${s}$$")))
def test_no_text_raises_out_of_check_text(text):
    try:
        result = derivation.check_text(text)
    except derivation.NoMath:
        return
    for step in result.steps:
        assert step.status in ("holds", "fails", "unchecked")
        assert step.status != "holds" or step.check in ("symbolic", "numeric")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["x", "y_i", r"\hat{z}_k", "2", r"\log a", r"e^{b}"]),
                min_size=1, max_size=5), st.sampled_from(["+", "-", r"\cdot"]))
def test_what_is_written_twice_equals_itself(terms, op):
    side = f" {op} ".join(terms)
    (step,) = derivation.check_text(f"$$Q = {side} = {side}$$").steps
    assert step.status == "holds" or "undefined" in step.detail


HOSTILE = {
    "nesting 10,000 deep": "$$" + "{" * 10_000 + "x" + "}" * 10_000 + " = x$$",
    "nesting 1,900 deep in a short row": "$$" + "(" * 1900 + "x" + ")" * 1900 + " = x$$",
    "5 MB in one row": "$$x = " + "x + " * (5 * 2**20 // 4) + "x$$",
    "5 MB of rows": "$x_1 = 1$ words\n" * (5 * 2**20 // 16),
    "a power tower": "$$e^{e^{e^{e^{1000}}}} = 2 e^{e^{e^{e^{1000}}}}$$",
    "a file to include": r"$$\input{/etc/passwd} = 1$$",
    "python": "$$__import__('os').system('true') = 1$$",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gives_an_unchecked_step_within_seconds(name):
    start = time.monotonic()
    result = derivation.check_text(HOSTILE[name])
    assert time.monotonic() - start < 10
    assert result.steps and not result.holds
    assert any(s.status == "unchecked" for s in result.steps)


def test_the_parser_builds_by_constructors_only():
    from pathlib import Path

    for name in ("_text_parse.py", "_text_extract.py", "_text_meaning.py", "_text_assume.py",
                 "_text_ellipsis.py", "_text_check.py", "_text_hints.py"):
        source = (Path(derivation.__file__).parent / name).read_text()
        for banned in ("sympify(", "parse_expr(", "eval(", "exec(", "parse_latex("):
            assert banned not in source, (name, banned)


TEMPLATES = {"y_{}": Y[i], r"y_{} \log y_{}": Y[i] * sp.log(Y[i]), "2 y_{}^2": 2 * Y[i] ** 2,
             r"e^{{y_{}}}": sp.Symbol("e") ** Y[i]}


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(TEMPLATES)), st.integers(1, 3), st.sampled_from([r"\dots", r"\cdots", r"\ldots"]))
def test_an_ellipsis_sum_with_a_clear_pattern_is_the_sum(template, lead, dots):
    def term(index):
        return template.replace("{}", "{" + index + "}")

    written = " + ".join([term(str(v)) for v in range(1, lead + 1)] + [dots, term("c")])
    assert value(written) == sp.Sum(TEMPLATES[template], (i, 1, c))
    skipped = " + ".join([term("1"), term("3"), dots, term("c")])  # 1, 3: not consecutive
    assert parse_row(Row(1, 1, skipped, True, 1)).relation is None
