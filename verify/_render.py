"""A :class:`~verify.Report` as JSON, Markdown and a text table: pure functions of the record."""

from __future__ import annotations

import io
import json
import math
from typing import Any

from ._report import SCHEMA, Cell, Report, format_number

STATISTIC_DIGITS = 6
"""Significant digits of the statistics in JSON (element values are written exactly)."""


def _number(value: float | None, digits: int | None = None) -> float | None:
    """A JSON number: ``None`` (null) where there is none or it is not finite."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}") if digits else float(value)


def _stat(value: float | None) -> float | None:
    return _number(value, STATISTIC_DIGITS)


def cell_json(cell: Cell) -> dict[str, Any]:
    """One cell as its ``softmax-ce.verify/1`` object; the contract's keys first, in its order."""
    worst = None
    if cell.worst is not None:
        worst = {
            "row": cell.worst.row,
            "class": cell.worst.class_,
            "closed_form": _number(cell.worst.closed_form),
            "autograd": _number(cell.worst.autograd),
            "reference": _number(cell.worst.reference),
            "row_kind": cell.worst.row_kind,
        }
        if cell.worst.batch is not None:
            worst |= {"batch": cell.worst.batch, "position": cell.worst.position}
    check = None
    if cell.autograd_check is not None:
        check = {
            "rows": cell.autograd_check.rows,
            "forward_mode": _stat(cell.autograd_check.forward_mode),
            "finite_difference": _stat(cell.autograd_check.finite_difference),
            "ok": cell.autograd_check.ok,
        }
    return {
        "classes": cell.classes,
        "dtype": cell.dtype,
        "scale": float(cell.scale),
        "labels": cell.labels,
        **({"grad_output": cell.grad_output} if cell.grad_output is not None else {}),
        "samples": cell.samples,
        "max_abs_err": _stat(cell.max_abs_err),
        "max_rel_err": _stat(cell.max_rel_err),
        "max_ulp": _stat(cell.max_ulp),
        "agree_fraction": _stat(cell.agree_fraction),
        "verdict": cell.verdict,
        "explanation": cell.explanation,
        "worst": worst,
        "reproduce": cell.reproduce,
        "rows": cell.rows,
        "within_tolerance": _stat(cell.within_tolerance),
        "autograd_max_ulp": _stat(cell.autograd_max_ulp),
        "label_sum_miss": _stat(cell.label_sum_miss),
        "residual_match": _stat(cell.residual_match),
        "autograd_check": check,
        "counterexample": cell.counterexample,
        "writes": [write.to_json() for write in cell.writes],
    }


def to_json(report: Report) -> str:
    """``softmax-ce.verify/1`` JSON: fixed key order, statistics to 6 significant digits, no
    timings, non-finite numbers as ``null`` — the same inputs and seed give the same bytes."""
    document = {
        "schema": SCHEMA,
        "claim": report.claim,
        **({"loss": report.loss.to_json()} if report.loss is not None else {}),
        "seed": report.seed,
        "tolerances": {
            dtype: {"rtol": tolerance.rtol, "atol": tolerance.atol}
            for dtype, tolerance in report.tolerances.items()
        },
        "cells": [cell_json(cell) for cell in report.cells],
        "summary": report.summary,
        "ok": report.ok,
    }
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _short(value: float | None, spec: str = ".3g") -> str:
    return "—" if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _summary_line(report: Report) -> str:
    counts = report.summary
    parts = ", ".join(f"{counts[v]} {v}" for v in ("agree", "expected", "undefined", "disagree"))
    verdict = "ok" if report.ok else "NOT ok: a disagreement the theory does not predict"
    return f"{counts['cells']} cells: {parts} — {verdict}"


def _tolerance_line(report: Report) -> str:
    return "; ".join(
        f"{dtype} rtol {t.rtol:g} atol {t.atol:g}" for dtype, t in report.tolerances.items()
    )


def _worst_line(cell: Cell) -> str:
    w = cell.worst
    if w is None:
        return "no element judged"
    where = f"row {w.row} ({w.row_kind}), class {w.class_}"
    if w.batch is not None:
        where = f"batch {w.batch}, position {w.position}, class {w.class_} (row {w.row}, {w.row_kind})"
    return (
        f"{where}: closed form {w.closed_form!r}, jax.grad {w.autograd!r}, float64 "
        f"{w.reference!r}"
    )


def _cell_name(cell: Cell) -> str:
    scale = format_number(cell.scale)
    return f"classes {cell.classes} · {cell.dtype} · scale {scale} · {_labels(cell)}"


def _labels(cell: Cell) -> str:
    """The cell's labels, and its upstream gradient for a loss variant."""
    return cell.labels if cell.grad_output is None else f"{cell.labels} · g={cell.grad_output}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(report: Report) -> str:
    """A Markdown table of every cell, then the details of each cell that disagrees."""
    lines = [
        f"## verify: `{report.claim}` against jax.grad",
        "",
        f"Seed {report.seed}. {_summary_line(report)}.",
        "",
        f"Tolerances: {_tolerance_line(report)}.",
        "",
        "| classes | dtype | scale | labels | verdict | agree | max ULP | max abs err "
        "| explanation |",
        "|---:|---|---:|---|---|---:|---:|---:|---|",
    ]
    for cell in report.cells:
        lines.append(
            f"| {cell.classes} | {cell.dtype} | {format_number(cell.scale)} | {_labels(cell)} "
            f"| {cell.verdict} | {_percent(cell.agree_fraction)} | {_short(cell.max_ulp)} "
            f"| {_short(cell.max_abs_err)} | {_escape(cell.explanation)} |"
        )
    disagreeing = [cell for cell in report.cells if cell.verdict == "disagree"]
    if disagreeing:
        lines += ["", "### Disagreements"]
    for cell in disagreeing:
        lines += [
            "",
            f"**{_cell_name(cell)}** — {cell.explanation}",
            "",
            f"- worst element: {_worst_line(cell)}",
            f"- reproduce: `{cell.reproduce}`",
        ]
        if cell.counterexample is not None:
            lines += ["", "```python", cell.counterexample.rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def to_text(report: Report, width: int = 120) -> str:
    """A plain-text table (Rich, no ANSI codes), then the details of each disagreeing cell."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{report.claim} against jax.grad (seed {report.seed})"))
    for name, justify in (
        ("classes", "right"),
        ("dtype", "left"),
        ("scale", "right"),
        ("labels", "left"),
        ("verdict", "left"),
        ("agree", "right"),
        ("max ULP", "right"),
        ("explanation", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    for cell in report.cells:
        table.add_row(
            str(cell.classes),
            cell.dtype,
            format_number(cell.scale),
            _labels(cell),
            cell.verdict,
            _percent(cell.agree_fraction),
            _short(cell.max_ulp),
            Text(cell.explanation),
        )
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, no_color=True)
    console.print(table)
    console.print(Text(_summary_line(report)), soft_wrap=True)
    console.print(Text(f"Tolerances: {_tolerance_line(report)}"), soft_wrap=True)
    text = buffer.getvalue()
    for cell in report.cells:
        if cell.verdict != "disagree":
            continue
        text += f"\n{_cell_name(cell)}: {cell.explanation}\n"
        text += f"  worst element: {_worst_line(cell)}\n  reproduce: {cell.reproduce}\n"
        if cell.counterexample is not None:
            text += "\n" + cell.counterexample
    return text
