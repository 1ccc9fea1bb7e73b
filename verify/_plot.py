"""The agreement map as a PNG: max ULP error over scale × dtype, a panel per label kind.

Classes are the rows of panels. Each square is coloured by the closed form's max error in ULPs
and carries its verdict; a red frame marks a disagreement. Drawn with matplotlib's Agg canvas
(no pyplot, no global backend), written to a temporary file beside the target and renamed.
"""

from __future__ import annotations

import io
import math
from os import PathLike
from pathlib import Path

from ._files import write_atomically
from ._report import Cell, Report, format_number

TOP_LEVEL = 4.0
"""log10 of the ULP error at which the colours saturate."""

MARKS = {"agree": "agree", "expected": "expected", "undefined": "undefined", "disagree": "DISAGREE"}
FRAMES = {"disagree": "#d62728", "expected": "#1f77b4"}


def _ulp_text(cell: Cell) -> str:
    if cell.verdict == "undefined":
        return "overflow"
    if cell.max_ulp is None:
        return "NaN/inf"
    return f"{cell.max_ulp:.2g} ULP"


def _level(cell: Cell) -> float:
    """The colour of a square: log10 of max ULP, NaN (grey) where there is none."""
    if cell.verdict == "undefined":
        return math.nan
    if cell.max_ulp is None:  # NaN or inf: the worst there is
        return math.inf
    return math.log10(max(cell.max_ulp, 0.1))


def plot(report: Report, path: str | PathLike[str]) -> None:
    """Writes the heatmap of ``report`` to ``path`` (PNG), whole or not at all.

    Args:
        report: a :class:`verify.Report`.
        path: where the PNG goes; its folder must exist.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    classes = list(dict.fromkeys(cell.classes for cell in report.cells))
    labels = list(dict.fromkeys(_panel(cell) for cell in report.cells))
    dtypes = list(dict.fromkeys(cell.dtype for cell in report.cells))
    scales = list(dict.fromkeys(cell.scale for cell in report.cells))
    index = {(c.classes, _panel(c), c.dtype, c.scale): c for c in report.cells}
    # Colours from 0.1 to 10**4 ULPs: an honest evaluation is a few ULPs off, a wrong one
    # thousands; beyond, the squares saturate and their text gives the number.
    top = TOP_LEVEL
    norm = Normalize(vmin=-1.0, vmax=top)

    figure = Figure(
        figsize=(1.2 + 1.05 * len(scales) * len(labels), 1.6 + 0.55 * len(dtypes) * len(classes)),
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(classes), len(labels), squeeze=False)
    image = None
    for i, c in enumerate(classes):
        for j, kind in enumerate(labels):
            ax = axes[i][j]
            grid = np.full((len(dtypes), len(scales)), np.nan)
            for r, dtype in enumerate(dtypes):
                for s, scale in enumerate(scales):
                    cell = index.get((c, kind, dtype, scale))
                    if cell is None:
                        continue
                    grid[r, s] = min(_level(cell), top)
                    ax.text(
                        s, r, f"{MARKS[cell.verdict]}\n{_ulp_text(cell)}", ha="center",
                        va="center", fontsize=6.5,
                        color="white" if grid[r, s] < 0.55 * top else "black",
                    )
                    if cell.verdict in FRAMES:
                        ax.add_patch(Rectangle(
                            (s - 0.48, r - 0.48), 0.96, 0.96, fill=False,
                            edgecolor=FRAMES[cell.verdict], linewidth=2.2,
                        ))
            image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", norm=norm, aspect="auto")
            ax.set_facecolor("#cccccc")
            ax.set_xticks(range(len(scales)), [format_number(s) for s in scales], fontsize=7)
            ax.set_yticks(range(len(dtypes)), dtypes, fontsize=7)
            ax.set_title(f"c = {c}, {kind} labels", fontsize=8)
            if i == len(classes) - 1:
                ax.set_xlabel("logit scale", fontsize=7)
    if image is not None:
        bar = figure.colorbar(image, ax=axes, shrink=0.8, extend="max")
        bar.set_label("log10 max error, in ULPs of the dtype at |σ·Σy| + |y|", fontsize=7)
    counts = report.summary
    figure.suptitle(
        f"{report.claim} against jax.grad, seed {report.seed}: {counts['agree']} agree, "
        f"{counts['expected']} expected (Σy ≠ 1, as derived), {counts['undefined']} undefined, "
        f"{counts['disagree']} disagree",
        fontsize=9,
    )
    _save(figure, Path(path))


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130)
    write_atomically(path, buffer.getvalue())


def _panel(cell: Cell) -> str:
    """A panel's labels: the label kind, and the upstream gradient for a loss variant."""
    return cell.labels if cell.grad_output is None else f"{cell.labels}, g={cell.grad_output}"
