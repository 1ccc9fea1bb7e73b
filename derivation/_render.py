"""Renderings of a :class:`Derivation`: pure functions of the record."""

from __future__ import annotations

import json

import sympy as sp

from ._loss_symbols import LATEX_NAMES
from ._model import Derivation, Route, Step

SCHEMA = "softmax-ce.derivation/1"
WRITE_OUT_UP_TO = 8
"""Sums over an explicit number of classes up to this many are written out term by term."""
MARK = {"symbolic": "✓ symbolic", "numeric": "≈ numeric", "failed": "✗ failed"}


def written_out(expr: sp.Basic) -> sp.Basic:
    """Sums with small integer limits written term by term (the same value, easier to read)."""
    def expand(s: sp.Sum) -> sp.Basic:
        (index, lo, hi), = s.limits
        if not (lo.is_Integer and hi.is_Integer and hi - lo < WRITE_OUT_UP_TO):
            return s
        return sp.Add(*(s.function.xreplace({index: v}) for v in range(int(lo), int(hi) + 1)))

    return expr.replace(lambda e: isinstance(e, sp.Sum), expand)


def latex(expr: sp.Basic) -> str:
    """LaTeX of an expression as the renderings show it (small explicit sums written out)."""
    return sp.latex(written_out(expr), symbol_names=LATEX_NAMES)


def step_latex(s: Step) -> str:
    """LaTeX of a step's line; a line kept as written keeps its factors' order."""
    if s.written is not None:
        return sp.latex(s.written, order="none")
    return latex(s.expr)


def _all_routes(d: Derivation) -> tuple[Route, ...]:
    return d.routes + ((d.hessian,) if d.hessian is not None else ())


def _title(d: Derivation) -> str:
    classes = "any number of classes c" if d.classes is None else f"c = {d.classes} classes"
    if d.loss is not None:
        return f"Gradient of a softmax cross-entropy variant ({d.loss.describe()}): {classes}"
    labels = "one-hot labels" if d.labels == "onehot" else "soft labels (summing to one)"
    return f"Gradient of softmax cross-entropy: {classes}, {labels}"


def _gradient_name(d: Derivation) -> tuple[str, str]:
    if d.loss is None:
        return "∂C/∂z_k", r"\frac{\partial C}{\partial z_k}"
    return "∂L/∂z_k", r"\frac{\partial L}{\partial z_k}"


def _terms(d: Derivation) -> list[str]:
    """Which term each option of a variant adds to σ − y (nothing for the plain loss)."""
    if d.loss is None:
        return []
    from ._loss_routes import terms

    return [f"- {option}: {text}" for option, text in terms(d.loss)]


def _holds(ok: bool) -> str:
    return "holds" if ok else "DOES NOT HOLD"


def to_latex(d: Derivation) -> str:
    r"""A LaTeX fragment: one ``align*`` per route, one step a line, the rule as ``\text{}``."""
    out = [f"% {_title(d)}: {_holds(d.holds)}"]
    for route in _all_routes(d):
        out.append(rf"\paragraph{{{route.name} ({_holds(route.holds)})}}")
        out.append(r"\begin{align*}")
        lines = []
        for s in route.steps:
            tag = rf" \tag*{{{s.tag}}}" if s.tag else ""
            rule = s.rule.replace("{", r"\{").replace("}", r"\}").replace("_", r"\_")
            lines.append(rf"{s.lhs_latex} &= {step_latex(s)} && \text{{{rule} [{s.check}]}}{tag}")
        out.append(" \\\\\n".join(lines))
        out.append(r"\end{align*}")
    return "\n".join(out) + "\n"


def to_markdown(d: Derivation) -> str:
    """Markdown with ``$$`` blocks that render on GitHub; the rule and check under each step."""
    out = [f"## {_title(d)}", "", f"Result: ${_gradient_name(d)[1]} = "
           f"{latex(d.result)}$ — **{_holds(d.holds)}**.", ""]
    if d.loss is not None:
        out += ["What each option adds to σ − y:", "", *_terms(d), ""]
    for number, route in enumerate(_all_routes(d), start=1):
        out += [f"### Route {number}: {route.name} — {_holds(route.holds)}", ""]
        for index, s in enumerate(route.steps, start=1):
            tag = f" \\qquad {s.tag}" if s.tag else ""
            out += ["$$", f"{s.lhs_latex} = {step_latex(s)}{tag}", "$$", ""]
            used = f" Assumes: {'; '.join(s.assumptions)}." if s.assumptions else ""
            out += [f"{index}. *{s.rule}* — {MARK[s.check]}.{used}", ""]
            if s.check == "failed":
                out += [f"   > {s.detail}", ""]
    return "\n".join(out)


def _subscripted(expr: sp.Basic) -> sp.Basic:
    """``z[1]`` as ``z₁``: Indexed objects become symbols named with a subscript."""
    return expr.replace(lambda e: isinstance(e, sp.Indexed),
                        lambda e: sp.Symbol(f"{e.base}_{e.indices[0]}"))


def _renamed_as_written(expr: sp.Basic) -> sp.Basic:
    """:func:`_subscripted`, keeping the unevaluated sums, products and powers of a line kept
    as written as they are (the leaves, sums and exponentials are renamed as usual)."""
    if isinstance(expr, (sp.Mul, sp.Add, sp.Pow)):
        args = [_renamed_as_written(a) for a in expr.args]
        with sp.evaluate(False):
            return expr.func(*args)
    return _subscripted(expr)


def _pretty(s: Step) -> str:
    lhs = sp.Symbol(s.lhs)
    if s.written is None:
        return sp.pretty(sp.Eq(lhs, _subscripted(written_out(s.expr)), evaluate=False),
                         use_unicode=True, wrap_line=False)
    shown = _renamed_as_written(s.written)
    return sp.pretty(sp.Eq(lhs, shown, evaluate=False), use_unicode=True, wrap_line=False,
                     order="none")


def to_text(d: Derivation) -> str:
    """Plain Unicode for a terminal: each step pretty-printed, its rule and check below it."""
    out = [_title(d), "=" * len(_title(d)), ""]
    if d.loss is not None:
        out += ["What each option adds to σ − y:", *_terms(d), ""]
    for number, route in enumerate(_all_routes(d), start=1):
        out += [f"Route {number}: {route.name} — {_holds(route.holds)}", ""]
        for index, s in enumerate(route.steps, start=1):
            out.append(f"{index:>2}. {s.rule}" + (f"   {s.tag}" if s.tag else ""))
            out += ["      " + line for line in _pretty(s).splitlines()]
            out.append(f"      {MARK[s.check]}: {s.detail}")
            if s.assumptions:
                out.append(f"      assumes: {'; '.join(s.assumptions)}")
            out.append("")
    out.append(f"Result: {_gradient_name(d)[0]} = {sp.sstr(d.result)} — {_holds(d.holds)}")
    return "\n".join(out) + "\n"


def _route_json(route: Route) -> dict:
    return {
        "name": route.name,
        "steps": [
            {"index": index, "rule": s.rule, "lhs": s.lhs, "latex": step_latex(s),
             "expr": sp.sstr(s.expr), "assumptions": list(s.assumptions), "check": s.check,
             "detail": s.detail, "tag": s.tag, "counterexample": s.counterexample}
            for index, s in enumerate(route.steps, start=1)
        ],
        "result": {"latex": latex(route.result), "expr": sp.sstr(route.result)},
        "holds": route.holds,
    }


def to_json(d: Derivation) -> str:
    """JSON per schema ``softmax-ce.derivation/1``; ``expr`` reads back with ``sympify``."""
    doc = {
        "schema": SCHEMA,
        "classes": d.classes,
        "labels": d.labels,
        **({"loss": d.loss.to_json()} if d.loss is not None else {}),
        "routes": [_route_json(r) for r in d.routes],
        "hessian": _route_json(d.hessian) if d.hessian is not None else None,
        "result": {"latex": latex(d.result), "expr": sp.sstr(d.result)},
        "holds": d.holds,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
