"""The agreement map as a PNG: max ULP error over scale × dtype, a panel per label kind.

Classes are the rows of panels. Each square is coloured by the closed form's max error in ULPs
and carries its verdict; a red frame marks a disagreement. Drawn with matplotlib's Agg canvas
(no pyplot, no global backend), written to a temporary file beside the target and renamed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import ClassVar

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
    _save(figure_of(report), Path(path))


def load() -> None:
    """Imports what drawing takes (matplotlib: about 0.3 s), e.g. while a check runs."""
    import matplotlib.backends.backend_agg
    import matplotlib.colors
    import matplotlib.figure
    import matplotlib.patches  # noqa: F401


def figure_of(report: Report):
    """The heatmap of ``report``, a matplotlib ``Figure`` on an Agg canvas, laid out."""
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

    counts = report.summary
    title = (
        f"{_shortened(report.claim)} against jax.grad, seed {report.seed}: {counts['agree']} "
        f"agree, {counts['expected']} expected (Σy ≠ 1, as derived), {counts['undefined']} "
        f"undefined, {counts['disagree']} disagree"
    )
    figure = Figure()
    FigureCanvasAgg(figure)
    inches = _text_inches(figure)
    layout = _Layout.of(
        len(classes), len(labels), len(dtypes), len(scales), inches(title, SUPTITLE_POINTS),
        max((inches(f"c = {c}, {kind} labels", TITLE_POINTS) for c in classes for kind in labels),
            default=0.0))
    figure.set_size_inches(layout.width, layout.height)
    axes = figure.subplots(len(classes), len(labels), squeeze=False, gridspec_kw=layout.grid())
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
            ax.set_title(f"c = {c}, {kind} labels", fontsize=TITLE_POINTS)
            if i == len(classes) - 1:
                ax.set_xlabel("logit scale", fontsize=7)
    if image is not None:
        bar = figure.colorbar(image, cax=figure.add_axes(layout.colorbar()), extend="max")
        bar.set_label(COLORBAR_LABEL, fontsize=7)
        bar.ax.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=SUPTITLE_POINTS, y=1 - 0.12 / layout.height, va="top",
                    parse_math=False)  # a claim's "$" is text, as it was measured
    return figure


SUPTITLE_POINTS, TITLE_POINTS = 9, 8
CLAIM_CHARACTERS = 80
"""The most of a claim the map's title shows (a weighted loss's claim names every weight; the
report's text and JSON give it whole)."""
COLORBAR_LABEL = "log10 max error, in ULPs\nof the dtype at |σ·Σy| + |y|"
COLORBAR_INCHES = 1.9
"""The least height of the panels' column: the colorbar's label (two lines of 7 points) fits."""


def _shortened(claim: str) -> str:
    return claim if len(claim) <= CLAIM_CHARACTERS else claim[: CLAIM_CHARACTERS - 1] + "…"


def _text_inches(figure):
    """``inches(text, points)``: how wide ``text`` is drawn in the figure's font, measured by
    its renderer (no draw)."""
    from matplotlib.font_manager import FontProperties

    renderer = figure.canvas.get_renderer()

    def inches(text: str, points: float) -> float:
        width, _, _ = renderer.get_text_width_height_descent(
            text, FontProperties(size=points), ismath=False)
        return width / renderer.dpi

    return inches


@dataclass(frozen=True)
class _Layout:
    """Where everything goes, in inches, fixed ahead of drawing (a layout engine measures every
    label in a draw of its own, which took as long as the drawing): panels of ``panel_width`` ×
    ``panel_height``, with room around each for its tick labels and title; the colorbar on the
    right; the figure at least as wide as its title."""

    rows: int
    columns: int
    panel_width: float
    panel_height: float
    width: float
    height: float

    LEFT: ClassVar[float] = 0.75  # a panel's dtype names, left of it
    GAP_WIDE: ClassVar[float] = 0.8  # between panels: the next panel's dtype names
    TOP: ClassVar[float] = 0.7  # the figure's title and the first row's titles
    GAP_HIGH: ClassVar[float] = 0.65  # a row's scales and the next row's titles
    BOTTOM: ClassVar[float] = 0.5  # the last row's scales and "logit scale"
    RIGHT: ClassVar[float] = 1.05  # the colorbar, its numbers and its label

    @classmethod
    def of(cls, rows: int, columns: int, dtypes: int, scales: int, title: float,
           panel_title: float) -> _Layout:
        """The layout of ``rows`` × ``columns`` panels of ``dtypes`` × ``scales`` squares, for
        a figure title and the widest panel title ``title`` and ``panel_title`` inches wide."""
        panel_width = max(0.9 * scales, panel_title + 0.1)
        panel_height = max(0.55 * dtypes, (COLORBAR_INCHES - (rows - 1) * cls.GAP_HIGH) / rows)
        grid_width = cls.LEFT + columns * panel_width + (columns - 1) * cls.GAP_WIDE + cls.RIGHT
        width = max(grid_width, title + 0.4)
        height = cls.TOP + rows * panel_height + (rows - 1) * cls.GAP_HIGH + cls.BOTTOM
        return cls(rows, columns, panel_width, panel_height, width, height)

    def _left(self) -> float:
        """Where the panels start: centred in a figure widened for its title."""
        grid = self.columns * self.panel_width + (self.columns - 1) * self.GAP_WIDE
        return max(self.LEFT, (self.width - grid - self.RIGHT + self.LEFT) / 2)

    def grid(self) -> dict[str, float]:
        """The panels' grid, as ``Figure.subplots``' ``gridspec_kw``."""
        left = self._left()
        right = left + self.columns * self.panel_width + (self.columns - 1) * self.GAP_WIDE
        bottom = self.BOTTOM
        top = self.height - self.TOP
        return {
            "left": left / self.width, "right": right / self.width,
            "bottom": bottom / self.height, "top": top / self.height,
            "wspace": self.GAP_WIDE / self.panel_width,
            "hspace": self.GAP_HIGH / self.panel_height,
        }  # fmt: skip

    def colorbar(self) -> list[float]:
        """The colorbar's axes, ``[left, bottom, width, height]`` in figure fractions: beside
        the panels, as high as they are."""
        grid = self.grid()
        left = grid["right"] + 0.2 / self.width
        return [left, grid["bottom"], 0.15 / self.width, grid["top"] - grid["bottom"]]


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130)
    write_atomically(path, buffer.getvalue())


def _panel(cell: Cell) -> str:
    """A panel's labels: the label kind, and the upstream gradient for a loss variant."""
    return cell.labels if cell.grad_output is None else f"{cell.labels}, g={cell.grad_output}"
