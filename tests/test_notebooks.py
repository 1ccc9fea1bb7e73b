"""Every notebook runs top to bottom: a cell that raises (or an assert in it that fails) fails."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXPECTED_PICTURES = {"01-derivation": 1, "02-where-they-agree": 3, "03-the-course-derivation": 0,
                     "04-variants": 2}
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01-derivation.ipynb", "02-where-they-agree.ipynb", "03-the-course-derivation.ipynb",
        "04-variants.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "notebooks are committed without outputs")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # Jupyter's inline backend, as for a reader
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # files land there
    client.execute()
    errors = [out for cell in notebook.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors
    pictures = [out for cell in notebook.cells for out in cell.get("outputs", [])
                if "image/png" in out.get("data", {})]
    assert len(pictures) == EXPECTED_PICTURES[path.stem]
