"""A loss variant's small batches are pipelined: the next batch's programs are started before
this batch is judged (JAX computes while NumPy judges), with the same cells; a kernel's batches
are not (its calls, and the writes found for a batch, are each batch's own)."""

import numpy as np

import verify
from derivation import Loss
from verify import _limits, _variant_cells

LOSS = Loss(label_smoothing=0.1, reduction="mean", targets="indices")
GRID = {"loss": LOSS, "classes": [4], "dtypes": ["float32"], "samples": 8, "scales": [1.0, 10.0]}


def _events(monkeypatch):
    """The order in which batches are started and judged."""
    events = []
    start, collect = _variant_cells._start_opinions, _variant_cells._opinions_of

    def started(*args, **kwargs):
        events.append("start")
        return start(*args, **kwargs)

    def collected(*args, **kwargs):
        events.append("judge")
        return collect(*args, **kwargs)

    monkeypatch.setattr(_variant_cells, "_start_opinions", started)
    monkeypatch.setattr(_variant_cells, "_opinions_of", collected)
    return events


def test_a_small_batch_is_judged_after_the_next_is_started_with_the_same_cells(monkeypatch):
    events = _events(monkeypatch)
    pipelined = verify.check(**GRID)
    batches = len(pipelined.cells)  # one dtype: a cell a batch
    assert events == ["start"] + ["start", "judge"] * (batches - 1) + ["judge"]
    events.clear()
    monkeypatch.setattr(_limits, "VARIANT_PIPELINED_ELEMENTS", 0)
    one_at_a_time = verify.check(**GRID)
    assert events == ["start", "judge"] * batches
    assert pipelined.to_json() == one_at_a_time.to_json()


def test_a_kernels_batches_are_one_at_a_time(monkeypatch):
    def kernel(logits, targets, grad_output):
        rows, classes = logits.shape
        wide = logits.astype(np.float64)
        p = np.exp(wide - wide.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        t = np.full((rows, classes), 0.1 / classes)
        t[np.arange(rows), targets] += 0.9
        return ((p - t) * np.asarray(grad_output, np.float64) / rows).astype(logits.dtype)

    events = _events(monkeypatch)
    report = verify.check(kernel, framework="numpy", **GRID)
    assert report.ok, report.summary
    assert events == ["start", "judge"] * len(report.cells)
