"""Stage 5 of the text checker: renderings of a :class:`TextCheck` (pure functions of it)."""

from __future__ import annotations

import json

from ._text_check import FAILS, HOLDS, UNCHECKED, TextCheck, TextStep

SCHEMA = "softmax-ce.check/1"
MARK = {HOLDS: "✓", FAILS: "✗", UNCHECKED: "?"}


def summary(t: TextCheck) -> dict[str, int]:
    count = {status: sum(s.status == status for s in t.steps) for status in MARK}
    return {"steps": len(t.steps), **count}


def _verdict(t: TextCheck) -> str:
    n = summary(t)
    steps = "1 step" if n["steps"] == 1 else f"{n['steps']} steps"
    if t.holds:
        return "holds: the one step checked" if n["steps"] == 1 else f"holds: all {steps} checked"
    return (f"does not hold: {n[FAILS]} failing, {n[UNCHECKED]} unchecked, {n[HOLDS]} holding "
            f"of {steps}")


def inline_note(t: TextCheck) -> str:
    """What the report says of equations in inline math that were not checked, or ""."""
    if not t.inline:
        return ""
    lines = ", ".join(map(str, t.inline))
    what = (f"the equation in inline math ($…$) on line {lines}" if len(t.inline) == 1
            else f"the equations in inline math ($…$) on lines {lines}")
    return (f"not checked: {what} (prose states, it does not derive: write a step in display "
            "math, $$…$$, to have it checked)")


def _how(s: TextStep) -> str:
    return s.check if s.check else s.status


def _one_line(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def to_text(t: TextCheck) -> str:
    """Plain Unicode for a terminal: each step with its line, mark, how checked, and why."""
    out = [f"{t.source}: {_verdict(t)}", ""]
    if t.inline:
        out += [inline_note(t), ""]
    for s in t.steps:
        out.append(f"{MARK[s.status]} step {s.index}  {t.source}:{s.line}  {_how(s)}")
        out.append(f"    {_one_line(s.text)}")
        out.append(f"    {s.detail}")
        if s.assumptions:
            out.append(f"    assuming: {'; '.join(s.assumptions)}")
        if s.counterexample:
            shown = ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}"
                              for k, v in s.counterexample.items())
            out.append(f"    counterexample: {_one_line(shown, 200)}")
        if s.hint:
            out.append(f"    hint: {s.hint}")
        if s.holds_if:
            out.append(f"    holds if {' or '.join(s.holds_if)}")
        out.append("")
    return "\n".join(out)


def to_markdown(t: TextCheck) -> str:
    """A Markdown table of the steps, with the details below it."""
    out = [f"# Check of `{t.source}`", "", f"**{_verdict(t)}**", "",
           *([inline_note(t), ""] if t.inline else []),
           "| step | line | status | how | holds if |", "|---:|---:|:---:|---|---|"]
    for s in t.steps:
        out.append(f"| {s.index} | {s.line} | {MARK[s.status]} {s.status} | {_how(s)} | "
                   f"{'; '.join(f'${h}$' for h in s.holds_if)} |")
    out.append("")
    for s in t.steps:
        out += [f"## Step {s.index} (line {s.line}): {s.status}", "", "```latex",
                s.text, "```", "", s.detail, ""]
        if s.hint:
            out += [f"*Hint:* {s.hint}", ""]
        if s.counterexample:
            out += [f"*Counterexample:* `{s.counterexample}`", ""]
    return "\n".join(out)


def to_json(t: TextCheck) -> str:
    """JSON per schema ``softmax-ce.check/1``."""
    doc = {"schema": SCHEMA, "source": t.source, "holds": t.holds,
           "steps": [s.to_json() for s in t.steps], "summary": summary(t)}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
