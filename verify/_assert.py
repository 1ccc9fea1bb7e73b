"""``verify.assert_gradient``: :func:`verify.check` as an assertion for a test suite.

In the manner of ``torch.testing.assert_close`` and chex's assertions: nothing when the gradient
holds, else one ``AssertionError`` whose message collects every failing cell — its explanation,
its worst element and the command that recomputes it — and then the shrunk counterexample, a
snippet that runs as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._check import check
from ._render import _cell_name, _tolerance_line, _worst_line
from ._report import Report

LISTED_CELLS = 10
"""Failing cells listed in a message; the rest are counted."""


def failure_message(report: Report) -> str:
    """The message of a report that is not ok: each failing cell, then one counterexample."""
    failing = [cell for cell in report.cells if cell.verdict == "disagree"]
    lines = [
        f"{report.claim} disagrees with autograd in {len(failing)} of {len(report.cells)} "
        f"cells (seed {report.seed}; {_tolerance_line(report)})"
    ]
    for cell in failing[:LISTED_CELLS]:
        lines += [
            f"{_cell_name(cell)}: {cell.explanation}",
            f"  worst element: {_worst_line(cell)}",
            f"  reproduce: {cell.reproduce}",
        ]
    if len(failing) > LISTED_CELLS:
        lines.append(f"... and {len(failing) - LISTED_CELLS} more failing cells")
    example = next((cell for cell in failing if cell.counterexample is not None), None)
    if example is not None:
        lines += ["", example.counterexample.rstrip("\n")]
    return "\n".join(lines)


def assert_gradient(
    fn: Callable[..., Any] | None,
    *,
    framework: str = "jax",
    loss: Any = None,
    **grid: Any,
) -> None:
    """Asserts that a gradient agrees with autograd over a grid, for use in a test suite.

    Args:
        fn: the gradient to check, as :func:`verify.check` takes it: a kernel
            ``(logits, targets, grad_output) -> grad_logits`` in ``framework``, or a JAX
            ``(z, y) -> grad``; ``None`` is σ(z) − y.
        framework: ``"jax"``, ``"torch"`` or ``"numpy"``.
        loss: a :class:`verify.Loss`, or None for the plain loss.
        **grid: any other keyword argument of :func:`verify.check` (``classes``, ``dtypes``,
            ``scales``, ``labels``, ``samples``, ``seed``, ``rtol``, ``atol``, ``device``,
            ``shape``).

    Returns:
        None, when every cell agrees or disagrees only as the theory predicts
        (``verify.check(...).ok``).

    Raises:
        AssertionError: some cell disagrees; the message lists each failing cell's explanation,
            worst element and ``softmax-ce verify`` line, then a shrunk counterexample as a
            runnable snippet.
        ValueError, TypeError: a bad argument, as from :func:`verify.check` — a test that
            cannot run is not a failing gradient.

    Example:
        >>> import verify
        >>> verify.assert_gradient(None, classes=10, dtypes="float32", scales=1.0, samples=8)
    """
    if "progress" in grid:
        raise TypeError("assert_gradient: progress is not an argument here (nothing is shown)")
    report = check(fn, framework=framework, loss=loss, **grid)
    if not report.ok:
        raise AssertionError(failure_message(report))
