"""LLM-shaped logits: ``shape=(B, T, V)`` gives the function ``[b, t, V]`` tensors (the whole
batch, or calls of whole sequences, or windows of positions of two sequences at once), names the
worst element by (batch, position, class), and reproduces with ``--shape``."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from verify._kernel_bridge import as_sequences
from verify._kernel_plan import Layout, layout, windows

ONE_CELL = {"dtypes": "float32", "scales": 1.0, "labels": "onehot"}


def softmax_gradient(logits, targets, grad_output):
    """σ(z)·Σy − y over the last axis, any leading axes, in float32 for half types."""
    acc = torch.float32 if logits.dtype in (torch.bfloat16, torch.float16) else logits.dtype
    z, y = logits.to(acc), targets.to(acc)
    p = torch.softmax(z, dim=-1) * y.sum(dim=-1, keepdim=True) - y
    return (grad_output.to(acc) * p).to(logits.dtype)


SEEN = []


def off_at_the_last_position(logits, targets, grad_output):
    """JAX: right, but doubled at the last position of every sequence [b, T, V]."""
    SEEN.append((tuple(logits.shape), tuple(targets.shape)))  # traced: once per program
    grad = (jax.nn.softmax(logits, axis=-1) * targets.sum(-1, keepdims=True) - targets) * grad_output
    return grad.at[:, -1].multiply(2) if logits.ndim == 3 else grad


def test_the_function_sees_whole_sequences_and_the_worst_is_a_batch_and_position():
    report = verify.check(off_at_the_last_position, shape=(3, 8, 50), **ONE_CELL)
    (cell,) = report.cells
    assert ((3, 8, 50), (3, 8, 50)) in SEEN  # the whole batch, probability targets alike
    assert (cell.classes, cell.rows, cell.samples) == (50, 24, 20)
    assert cell.verdict == "disagree"
    assert cell.worst.position == 7 and cell.worst.row == 8 * cell.worst.batch + 7
    worst = json.loads(report.to_json())["cells"][0]["worst"]
    assert (worst["batch"], worst["position"]) == (cell.worst.batch, 7)
    assert "logits = jnp.array([[[" in cell.counterexample  # one position of one sequence
    with pytest.raises(AssertionError, match="the kernel disagrees with jax.grad"):
        exec(compile(cell.counterexample, "<counterexample>", "exec"), {})  # noqa: S102
    assert cell.reproduce == ("softmax-ce verify --shape 3,8,50 --dtypes float32 --scales 1 "
                              "--labels onehot --seed 0 --closed-form "
                              "test_kernels_shapes:off_at_the_last_position")  # fmt: skip
    assert f"batch {cell.worst.batch}, position 7, class {cell.worst.class_} (row" in (
        report.to_text())


def test_an_llm_shaped_bfloat16_cell_agrees():
    seen = set()

    def spy(logits, targets, grad_output):
        seen.add(tuple(logits.shape))
        return softmax_gradient(logits, targets, grad_output)

    report = verify.check(spy, framework="torch", shape=(2, 16, 32_000), dtypes="bfloat16",
                          scales=1.0, labels="onehot")  # fmt: skip
    assert report.ok and report.cells[0].rows == 32
    assert (2, 16, 32_000) in seen  # 2 × 16 × 32,000 = 1,024,000 elements: one chunk
    line = report.cells[0].reproduce
    assert line.startswith("softmax-ce verify --shape 2,16,32000 ") and "--framework torch" in line
    assert line.endswith(" --closed-form 'test_kernels_shapes:test_an_llm_shaped_bfloat16_cell_agrees"
                         ".<locals>.spy'")  # a local function: the line says so, and fails loudly


@pytest.mark.parametrize("shape, expected", [
    (Layout(24, 50, 8), (3, 8)),                # the whole batch in one call
    (Layout(64, 32_000, 16), (2, 16)),          # two whole sequences a call
    (Layout(3 * 32, 32_000, 32), (2, 16)),      # one sequence fits, not two: windows of two
    (Layout(8 * 2048, 262_144, 2048), (2, 2)),  # 2 positions of 2 sequences: 2**20 elements
    (Layout(1 * 17, 65_536, 17), (1, 16)),      # one sequence: windows of it (T prime)
    (Layout(6 * 3, 400_000, 3), (2, 1)),        # two rows a call: one position of two
    (Layout(10, 300_000, None), (3, 1)),        # rows: three a call
])  # fmt: skip
def test_calls_hold_two_sequences_and_two_positions_where_they_can(shape, expected):
    cut = windows(shape, 2**20)
    assert (cut.sequences, cut.positions) == expected
    assert cut.rows * shape.vocabulary <= 2**20


@settings(max_examples=200, deadline=None)
@given(batch=st.integers(1, 9), length=st.integers(1, 9), vocabulary=st.integers(1, 40),
       limit=st.integers(1, 400), sequence_axis=st.booleans())
def test_every_row_is_counted_by_exactly_one_call_of_one_shape(batch, length, vocabulary, limit,
                                                               sequence_axis):
    shape = Layout(batch * length, vocabulary, length if sequence_axis else None)
    cut = windows(shape, limit)
    b, t = cut.sequences, cut.positions
    per_call = max(limit // vocabulary, 1)
    assert cut.rows <= per_call and cut.rows <= shape.rows  # a call fits, or holds one row
    if sequence_axis:  # two sequences and two positions a call wherever they fit
        assert b >= min(batch, 2, per_call)
        assert t >= min(length, 2, per_call // b)
    counted = np.zeros(shape.rows, int)
    calls = list(cut.calls())
    assert len(calls) == cut.count and cut.streams == (len(calls) > 1)
    for call in calls:
        assert call.index.shape == call.counted.shape == (cut.rows,)
        grid = call.index.reshape(b, t)  # [b, t]: t consecutive positions of b sequences
        rows_a_sequence = length if sequence_axis else 1
        assert np.all(np.diff(grid, axis=1) == 1)
        assert np.all(np.diff(grid[:, 0] // rows_a_sequence) == 1)
        assert np.all(grid // rows_a_sequence == grid[:, :1] // rows_a_sequence)
        assert call.first == call.index[call.counted][0]
        np.add.at(counted, call.index[call.counted], 1)
        for row in call.index[call.counted]:
            assert np.array_equal(cut.holding(int(row)).index, call.index)
    assert np.all(counted == 1)


def test_rows_become_sequences():
    rows = np.arange(12 * 2).reshape(12, 2)
    assert as_sequences(rows, 4, 1).shape == (3, 4, 2)
    assert as_sequences(rows[:3], 4, 1).shape == (1, 3, 2)  # a window of one sequence
    assert as_sequences(np.arange(12), 4, 0).shape == (3, 4)
    assert as_sequences(np.float32(1), 4, 0).shape == ()
    assert as_sequences(rows, None, 1) is rows


def test_shapes_that_cannot_be_checked_are_named():
    with pytest.raises(ValueError, match=r"^shape: 1,3,10 holds 3 rows \(batch × sequence\); "
                       "at least 5"):
        verify.check(shape=(1, 3, 10))
    with pytest.raises(ValueError, match="^shape: sets the class count"):
        verify.check(shape=(2, 3, 10), classes=10)
    with pytest.raises(ValueError, match="^shape: expected B,T,V"):
        verify.check(shape="2,3,4,5")
    assert layout((7, 10)) == Layout(7, 10, None)


@pytest.mark.parametrize("kind", ["onehot", "soft", "unnormalized"])
def test_streamed_draws_do_not_depend_on_how_rows_are_asked_for(kind, monkeypatch):
    from verify import _inputs, _stream

    monkeypatch.setattr(_stream, "BLOCK_ELEMENTS", 40)  # 4 rows a block at 10 classes
    draws = _stream.StreamedDraws(seed=3, classes=10, labels=kind, rows=13)
    assert draws.block_rows == 4 and draws.rows == 13 and draws.noise.shape == (13, 10)
    whole = draws.take(slice(0, 13))
    for part in (slice(2, 9), slice(7, 13), np.array([12]), np.array([3])):
        piece = draws.take(part)
        for name in ("noise", "noise_max", "labels", "top", "partner", "row_kind"):
            np.testing.assert_array_equal(getattr(piece, name), getattr(whole, name)[part])
    assert list(whole.row_kind[:5]) == [0, 1, 2, 3, _inputs.RANDOM]
    masked = whole.labels[_inputs.MASKED]
    assert np.all(masked[draws.mask] == 0) and draws.mask.any()
    if kind != "unnormalized":
        np.testing.assert_allclose(whole.labels.sum(axis=-1), 1.0, rtol=1e-12)
    again = _stream.StreamedDraws(seed=3, classes=10, labels=kind, rows=13).take(slice(0, 13))
    np.testing.assert_array_equal(again.noise, whole.noise)  # seeded: the same draws


def nan_at_targets_0_and_5(z, y):
    """JAX: NaN on every row whose one-hot target is 0 or 5, however the rows are cut."""
    target = jnp.argmax(y, axis=-1)[..., None]
    return jnp.where((target == 0) | (target == 5), jnp.nan, jax.nn.softmax(z, axis=-1) - y)


def test_a_streamed_cell_names_the_first_of_tied_worst_rows_as_one_call_does(monkeypatch):
    """Several rows tie as the worst (NaN ranks first); calls of [2, 2] windows do not come in
    row order, and the cell still names the first tied row in row order."""
    from verify import _check

    whole = verify.check(nan_at_targets_0_and_5, shape=(3, 4, 16), **ONE_CELL).cells[0]
    monkeypatch.setattr(_check, "MAX_CHUNK_ELEMENTS", 64)  # 4 rows a call: [2, 2, 16]
    streamed = verify.check(nan_at_targets_0_and_5, shape=(3, 4, 16), **ONE_CELL).cells[0]
    assert whole.verdict == streamed.verdict == "disagree"
    assert whole.agree_fraction == streamed.agree_fraction < 0.9  # more than one row is NaN
    assert (streamed.worst.batch, streamed.worst.position, streamed.worst.class_) == (
        whole.worst.batch, whole.worst.position, 0)


def nan_in_the_middle_of_a_sequence(logits, targets, grad_output):
    """Right, except the middle position of sequences of three or more, which is NaN."""
    import torch

    b, t, v = logits.shape
    z, y = logits.to(torch.float32), targets.to(torch.float32)
    out = torch.softmax(z, dim=-1) * y.sum(dim=-1, keepdim=True) - y
    out = (grad_output.to(torch.float32) * out).to(logits.dtype)
    if t >= 3:
        out[:, t // 2] = float("nan")
    return out


def test_a_kernels_batch_counterexample_shows_it_sequences_as_the_check_did():
    """Checked with a shape, the kernel sees [b, t, V]; its shrunk batch's snippet gives it
    that too (it gave [rows, V], and the kernel's b, t, v = logits.shape raised)."""
    (cell,) = verify.check(nan_in_the_middle_of_a_sequence, framework="torch", dtypes="float32",
                           shape=(2, 4, 10), scales=1.0, labels="onehot").cells
    assert cell.verdict == "disagree" and "logits = torch.tensor([[[" in cell.counterexample
    with pytest.raises(AssertionError, match="not close"):
        exec(compile(cell.counterexample, "<counterexample>", "exec"), {})  # noqa: S102
