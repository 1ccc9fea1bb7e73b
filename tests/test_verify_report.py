"""Reports: the contract's JSON, byte for byte reproducible; Markdown and text naming every cell;
the heatmap written whole."""

import json
import re

import jax
import pytest

import verify

GRID = dict(classes=(2, 5), dtypes=("float32", "bfloat16"), scales=(1.0, 100.0),
            labels=("onehot", "unnormalized"), samples=8)


def flipped(z, y):
    return y - jax.nn.softmax(z, axis=-1)


@pytest.fixture(scope="module")
def report():
    return verify.check(**GRID)


@pytest.fixture(scope="module")
def failing():
    return verify.check(flipped, classes=3, dtypes="float32", scales=1.0, labels="onehot",
                        samples=8)


CELL_KEYS = ["classes", "dtype", "scale", "labels", "samples", "max_abs_err", "max_rel_err",
             "max_ulp", "agree_fraction", "verdict", "explanation", "worst", "reproduce"]


def test_json_has_the_contracts_keys_in_its_order(report):
    doc = json.loads(report.to_json())
    assert list(doc) == ["schema", "claim", "seed", "tolerances", "cells", "summary", "ok"]
    assert doc["schema"] == "softmax-ce.verify/1"
    assert doc["claim"] == "softmax(z) - y" and doc["seed"] == 0 and doc["ok"] is True
    assert doc["tolerances"] == {"float32": {"rtol": 1.3e-6, "atol": 1e-5},
                                 "bfloat16": {"rtol": 1.6e-2, "atol": 1e-5}}
    assert list(doc["summary"]) == ["cells", "agree", "disagree", "expected", "undefined"]
    assert doc["summary"]["cells"] == len(doc["cells"]) == 2 * 2 * 2 * 2
    for cell in doc["cells"]:
        assert list(cell)[: len(CELL_KEYS)] == CELL_KEYS
        assert list(cell["worst"])[:5] == ["row", "class", "closed_form", "autograd", "reference"]
        assert cell["verdict"] in ("agree", "expected", "undefined", "disagree")
        assert 0 <= cell["agree_fraction"] <= 1


def test_json_cells_are_the_records(report):
    doc = json.loads(report.to_json())
    for cell, record in zip(doc["cells"], report.cells, strict=True):
        assert (cell["classes"], cell["dtype"], cell["scale"], cell["labels"]) == (
            record.classes, record.dtype, record.scale, record.labels)
        assert cell["verdict"] == record.verdict and cell["explanation"] == record.explanation
        assert cell["worst"]["class"] == record.worst.class_
        assert cell["worst"]["reference"] == record.worst.reference  # element values exact


def test_cells_come_in_the_order_classes_dtype_scale_labels(report):
    keys = [(c.classes, c.dtype, c.scale, c.labels) for c in report.cells]
    assert keys[:3] == [(2, "float32", 1.0, "onehot"), (2, "float32", 1.0, "unnormalized"),
                        (2, "float32", 100.0, "onehot")]
    assert keys[-1] == (5, "bfloat16", 100.0, "unnormalized")


def test_the_reproduce_line_names_the_cell(report, failing):
    assert report.cells[0].reproduce == (
        "softmax-ce verify --classes 2 --dtypes float32 --scales 1 --labels onehot --samples 8 "
        "--seed 0"
    )
    tight = verify.check(classes=2, dtypes="float32", scales=0.5, labels="soft", samples=4,
                         seed=3, rtol=1e-3, atol=0)
    assert tight.cells[0].reproduce == (
        "softmax-ce verify --classes 2 --dtypes float32 --scales 0.5 --labels soft --samples 4 "
        "--seed 3 --rtol 0.001 --atol 0"
    )
    assert tight.tolerances["float32"] == verify.Tolerance(rtol=1e-3, atol=0.0)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_others(report):
    assert verify.check(**GRID).to_json() == report.to_json()
    assert verify.check(**GRID, seed=1).to_json() != report.to_json()


def test_a_cell_does_not_depend_on_the_rest_of_the_grid(report):
    alone = verify.check(classes=5, dtypes="bfloat16", scales=100.0, labels="unnormalized",
                         samples=8)
    assert alone.cells[0] == report.cells[-1]


def test_json_of_a_disagreement_carries_its_counterexample_and_no_nan(failing):
    text = failing.to_json()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["ok"] is False and doc["summary"]["disagree"] == 1
    (cell,) = doc["cells"]
    assert cell["counterexample"].startswith("# Falsifying example")
    assert doc["claim"] == "flipped"


def test_markdown_has_a_row_per_cell_and_the_disagreements_in_full(report, failing):
    text = report.to_markdown()
    rows = [line for line in text.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) == len(report.cells)
    for cell, row in zip(report.cells, rows, strict=True):
        assert row.startswith(f"| {cell.classes} | {cell.dtype} | ")
        assert f"| {cell.verdict} |" in row
    assert "### Disagreements" not in text
    bad = failing.to_markdown()
    assert "### Disagreements" in bad and "```python\n# Falsifying example" in bad
    assert f"`{failing.cells[0].reproduce}`" in bad


def test_text_is_a_plain_table_of_every_cell(report, failing):
    text = report.to_text()
    assert "\x1b[" not in text
    assert text.count("float32") >= 8 and text.count("bfloat16") >= 8
    assert "16 cells: 8 agree, 8 expected, 0 undefined, 0 disagree — ok" in text
    bad = failing.to_text()
    assert "NOT ok" in bad and "worst element: row " in bad and "# Falsifying example" in bad


def test_the_heatmap_is_written_whole(report, tmp_path):
    target = tmp_path / "map.png"
    verify.plot(report, target)
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]  # no temporary file left
    report.plot(tmp_path / "again.png")
    assert (tmp_path / "again.png").stat().st_size > 10_000


def test_every_text_of_the_heatmap_lies_inside_it_and_apart(report, failing):
    """The layout is fixed ahead of drawing: whatever the grid (2 × 2 panels, or one cell with
    a long title, of wide letters, or a claim of thousands), no title, label or number is cut
    off by the edge, and no two panels' texts overlap; a long claim is cut short."""
    import dataclasses

    from verify import _plot

    wide = dataclasses.replace(failing, claim="W" * 73)
    endless = dataclasses.replace(failing, claim="derived closed form (weight=" + ",".join(
        ["0.5"] * 2000) + ")")
    dollars = dataclasses.replace(failing, claim="partial(f, tag='$\\x$')")  # not mathtext
    for drawn in (report, failing, wide, endless, dollars):
        figure = _plot.figure_of(drawn)
        assert figure.get_figwidth() < 16
        figure.draw_without_rendering()  # labels go where a draw puts them
        renderer = figure.canvas.get_renderer()
        edge = figure.bbox
        texts = [t for t in figure.findobj(lambda a: hasattr(a, "get_text"))
                 if t.get_visible() and t.get_text().strip()]
        assert len(texts) > 10
        boxes = []
        for text in texts:
            box = text.get_window_extent(renderer)
            assert edge.x0 <= box.x0 and box.x1 <= edge.x1, text.get_text()
            assert edge.y0 <= box.y0 and box.y1 <= edge.y1, text.get_text()
            boxes.append((text.get_text(), box))
        outside = [(name, box) for name, box in boxes if not any(
            ax.bbox.contains(box.x0 + 1, box.y0 + 1) and ax.bbox.contains(box.x1 - 1, box.y1 - 1)
            for ax in figure.axes)]  # titles, tick labels, axis labels: around the panels
        for i, (a, first) in enumerate(outside):
            for b, second in outside[i + 1:]:
                assert not first.overlaps(second), (a, b)


def test_a_heatmap_that_cannot_be_written_leaves_nothing(report, tmp_path):
    with pytest.raises(FileNotFoundError):
        verify.plot(report, tmp_path / "missing" / "map.png")
    assert list(tmp_path.iterdir()) == []


def _scaled(z, y, k=1.0):
    return k * (jax.nn.softmax(z, axis=-1) - y)


class _Gradient:
    def __call__(self, z, y):
        return jax.nn.softmax(z, axis=-1) - y


class _Flipped:
    def __call__(self, z, y):
        return y - jax.nn.softmax(z, axis=-1)


def test_a_callable_without_a_name_is_named_without_its_memory_address():
    """Same seed, same bytes: a callable object or a functools.partial is named by its repr
    with the addresses taken out, so two runs (two objects) give the same JSON."""
    import functools

    small = dict(classes=3, dtypes="float32", scales=1.0, labels="onehot", samples=8)
    first, second = (verify.check(_Gradient(), **small) for _ in range(2))
    assert first.claim == "<test_verify_report._Gradient object>"
    assert first.to_json() == second.to_json()
    partial = verify.check(functools.partial(_scaled, k=1.0), **small)
    assert partial.claim == "functools.partial(<function _scaled>, k=1.0)"
    failing = [verify.check(_Flipped(), **small) for _ in range(2)]  # with a counterexample
    assert "# <test_verify_report._Flipped object>: define" in failing[0].cells[0].counterexample
    assert failing[0].to_json() == failing[1].to_json()
