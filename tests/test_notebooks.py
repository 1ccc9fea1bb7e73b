"""Every notebook runs top to bottom: a cell that raises (or an assert in it that fails) fails."""

from pathlib import Path

import nbformat
import pytest

from conftest import executed_notebook

EXPECTED_PICTURES = {"01-derivation": 1, "02-where-they-agree": 3, "03-the-course-derivation": 0,
                     "04-variants": 2}
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01-derivation.ipynb", "02-where-they-agree.ipynb", "03-the-course-derivation.ipynb",
        "04-variants.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    committed = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in committed.cells if cell.cell_type == "code"), (
        "notebooks are committed without outputs")
    # Run in a fresh kernel with Jupyter's inline backend, as for a reader, its files in a
    # folder of its own; started when the tests were collected (conftest).
    notebook = executed_notebook(path)
    errors = [out for cell in notebook.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors
    pictures = [out for cell in notebook.cells for out in cell.get("outputs", [])
                if "image/png" in out.get("data", {})]
    assert len(pictures) == EXPECTED_PICTURES[path.stem]
