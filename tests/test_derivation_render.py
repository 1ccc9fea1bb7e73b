"""Renderings of a derivation: LaTeX, Markdown, text and JSON, each a function of the record."""

import functools
import json

import pytest
import sympy as sp

import derivation
from derivation._render import latex, step_latex, written_out


@functools.lru_cache(maxsize=None)
def derived(classes, labels="onehot"):
    return derivation.derive(classes=classes, labels=labels)


def all_steps(d):
    return [s for r in d.routes + (d.hessian,) for s in r.steps]


def balanced(text, open_, close):
    depth = 0
    for char in text.replace(r"\{", "").replace(r"\}", ""):
        depth += char == open_
        depth -= char == close
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("classes", [None, 3])
def test_latex_is_balanced_and_has_every_step_on_its_own_line(classes):
    d = derived(classes)
    tex = d.to_latex()
    assert balanced(tex, "{", "}") and balanced(tex, "(", ")")
    assert tex.count(r"\begin{align*}") == tex.count(r"\end{align*}") == len(d.routes) + 1
    lines = [line for line in tex.splitlines() if " &= " in line]
    assert len(lines) == len(all_steps(d))
    for line, step in zip(lines, all_steps(d)):
        assert line.startswith(step.lhs_latex + " &= " + step_latex(step))
        assert r"\text{" in line and f"[{step.check}]" in line
        assert balanced(line, "{", "}")


def test_markdown_has_a_math_block_and_the_rule_for_every_step():
    d = derived(None)
    md = d.to_markdown()
    assert md.count("$$") == 2 * len(all_steps(d))
    for step in all_steps(d):
        assert f"{step.lhs_latex} = {step_latex(step)}" in md
        assert f"*{step.rule}*" in md
    assert "### Route 1: the course's derivation (one-hot label at p) — holds" in md


def test_text_shows_every_rule_and_check():
    d = derived(3)
    text = d.to_text()
    for step in all_steps(d):
        assert step.rule in text
    assert text.count("✓ symbolic") == len(all_steps(d))
    assert "Result: ∂C/∂z_k = sigma[k] - y[k] — holds" in text
    assert "z₁" in text  # indexed symbols shown with subscripts


def test_small_explicit_sums_are_written_out():
    s = derivation.symbols()
    expr = sp.Sum(sp.exp(s["z"][s["m"]]), (s["m"], 1, 3))
    assert written_out(expr) == sum(sp.exp(s["z"][v]) for v in (1, 2, 3))
    big = sp.Sum(sp.exp(s["z"][s["m"]]), (s["m"], 1, 64))
    assert written_out(big) == big


@pytest.mark.parametrize("classes, labels", [(None, "onehot"), (3, "soft")])
def test_json_follows_the_schema(classes, labels):
    d = derived(classes, labels)
    doc = json.loads(d.to_json())
    assert list(doc) == ["schema", "classes", "labels", "routes", "hessian", "result", "holds"]
    assert doc["schema"] == "softmax-ce.derivation/1"
    assert doc["classes"] == classes and doc["labels"] == labels and doc["holds"] is True
    assert len(doc["routes"]) == len(d.routes)
    for route in doc["routes"] + [doc["hessian"]]:
        assert set(route) == {"name", "steps", "result", "holds"}
        for index, step in enumerate(route["steps"], start=1):
            assert step["index"] == index
            assert {"index", "rule", "latex", "expr", "assumptions", "check", "detail"} <= set(step)
            assert step["check"] in {"symbolic", "numeric", "failed"}


@pytest.mark.parametrize("classes", [None, 3])
def test_json_expr_reads_back_with_sympify(classes):
    d = derived(classes)
    doc = json.loads(d.to_json())
    steps = all_steps(d)
    exprs = [s["expr"] for r in doc["routes"] + [doc["hessian"]] for s in r["steps"]]
    for text, step in zip(exprs, steps, strict=True):
        assert sp.sympify(text, locals=derivation.symbols()) == step.expr
    assert sp.sympify(doc["result"]["expr"], locals=derivation.symbols()) == d.result


def test_json_is_deterministic():
    assert derivation.derive(classes=2).to_json() == derivation.derive(classes=2).to_json()
