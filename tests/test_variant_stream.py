"""A loss variant's LLM-shaped cell past one chunk is streamed: each call of the kernel is a
batch of its own (whole sequences, or windows of t positions), judged alone, and the calls'
measurements combined into one cell per dtype. The chunk limit is lowered here so that small
shapes stream."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import verify
from derivation import Loss
from verify import _batch_shrink, _check, _inputs, _kernel_options, _limits, _stream, _variant
from verify._kernel_plan import Layout, Windows
from verify._variant_stream import StreamedCell

SHAPE = (3, 4, 16)  # 12 positions × 16 classes = 192 elements
GRID = {"dtypes": ("float32",), "scales": (1.0,)}
WHOLE_SEQUENCES, WINDOWS = 128, 64  # chunk limits: two whole sequences a call, or 2 of the
# 4 positions of two sequences


def _torch_grad(logits, targets, grad_output, reduction, ignore_index=-100):
    """Autograd of F.cross_entropy over the call's rows, as a kernel computes its batch."""
    z = logits.detach().double().reshape(-1, logits.shape[-1]).requires_grad_()
    loss = F.cross_entropy(z, targets.reshape(-1), ignore_index=ignore_index,
                           reduction=reduction)
    loss.backward(grad_output.double().reshape(loss.shape))
    return z.grad.reshape(logits.shape).to(logits.dtype)


def ce_sum(logits, targets, grad_output):
    return _torch_grad(logits, targets, grad_output, "sum")


def ce_none(logits, targets, grad_output):
    return _torch_grad(logits, targets, grad_output, "none")


def ce_mean(logits, targets, grad_output):
    return _torch_grad(logits, targets, grad_output, "mean")


CALLED = []


def ce_none_last_position_off(logits, targets, grad_output):
    """Right but at the last position of what it is given, off by 1/8 of its gradient."""
    CALLED.append(tuple(logits.shape))
    grad = _torch_grad(logits, targets, grad_output, "none").double()
    grad[..., -1, :] *= 1.125
    return grad.to(logits.dtype)


def ce_mean_over_the_whole_batch(logits, targets, grad_output):
    """A mean over every row of the call, ignored ones too: wrong where some are ignored."""
    counted = (targets != -100).sum()
    return (_torch_grad(logits, targets, grad_output, "mean") * counted
            / targets.numel()).to(logits.dtype)


SUM = Loss(targets="indices", reduction="sum")  # one target kind: none ignored
NONE = Loss(targets="indices", ignore_index=-100, reduction="none")
NONE_KEPT = Loss(targets="indices", reduction="none")
MEAN = Loss(targets="indices", ignore_index=-100, reduction="mean")


def _run(fn, loss, limit, monkeypatch, whole=False, shrink=False, **grid):
    """The check with the chunk limit ``limit``; ``whole``: every cell one batch of the same
    draws the streamed cell makes (the same rows, called at once); ``shrink``: a counterexample
    for the first disagreeing cell (its candidates compile: seconds)."""
    with monkeypatch.context() as patch:
        patch.setattr(_check, "MAX_CHUNK_ELEMENTS", limit)
        if not shrink:
            patch.setattr(_batch_shrink, "MAX_CELLS", 0)
        if whole:
            patch.setattr(_inputs, "draw", lambda seed, c, kind, samples, noise: (
                _stream.StreamedDraws(seed, c, kind, samples + 4).take(slice(None))))
        return verify.check(fn, framework="torch", loss=loss, shape=SHAPE, **(GRID | grid))


def _calls(fn):
    seen = []

    def spy(logits, targets, grad_output):
        seen.append(tuple(logits.shape))
        return fn(logits, targets, grad_output)

    return spy, seen


@pytest.mark.parametrize("loss, fn", [(SUM, ce_sum), (NONE, ce_none_last_position_off)])
def test_streamed_cells_judge_as_the_whole_batch_where_the_batch_does_not_matter(
        monkeypatch, loss, fn):
    streamed = _run(fn, loss, WHOLE_SEQUENCES, monkeypatch)
    whole = _run(fn, loss, 2**20, monkeypatch, whole=True)
    assert [c.verdict for c in streamed.cells] == [c.verdict for c in whole.cells]
    for s, w in zip(streamed.cells, whole.cells, strict=True):
        assert (s.labels, s.grad_output, s.dtype) == (w.labels, w.grad_output, w.dtype)
        assert s.agree_fraction == w.agree_fraction
        if loss.reduction == "none" and s.grad_output == "1":
            assert (s.max_abs_err, s.max_ulp) == (w.max_abs_err, w.max_ulp)
        if s.verdict == "disagree":  # the same worst element, named alike
            assert (s.worst.batch, s.worst.position, s.worst.class_) == (
                w.worst.batch, w.worst.position, w.worst.class_)
    assert streamed.ok == (fn is ce_sum)


def test_a_tie_for_the_worst_element_is_named_as_in_one_call(monkeypatch):
    """NaN in every row whose target is 0 or 5: those rows tie as the worst (NaN ranks first).
    Calls of [2, 2] windows do not come in row order; the cell still names the first tied row
    in row order, as one call does."""
    nan_rows = []

    def nan_at_targets(logits, targets, grad_output):
        grad = ce_sum(logits, targets, grad_output).double()
        wrong = (targets == 0) | (targets == 5)
        grad[wrong] = float("nan")
        nan_rows.append(wrong.reshape(-1).numpy())
        return grad.to(logits.dtype)

    streamed = _run(nan_at_targets, SUM, WINDOWS, monkeypatch).cells
    nan_rows.clear()
    whole = _run(nan_at_targets, SUM, 2**20, monkeypatch, whole=True).cells
    tied = np.flatnonzero(nan_rows[-1])  # the whole batch's rows, in row order
    assert len(tied) >= 2 and len(streamed) == len(whole) == 2  # grad_output 1 and 0.75
    for cell, one_call in zip(streamed, whole, strict=True):
        assert cell.verdict == one_call.verdict == "disagree"
        assert (cell.worst.batch, cell.worst.position, cell.worst.class_) == (
            one_call.worst.batch, one_call.worst.position, one_call.worst.class_) == (
            *divmod(int(tied[0]), 4), 0)


def test_a_planted_bug_in_a_streamed_cell_is_named_by_batch_position_and_class(monkeypatch):
    CALLED.clear()
    report = _run(ce_none_last_position_off, NONE_KEPT, WINDOWS, monkeypatch, shrink=True)
    assert (2, 2, 16) in CALLED  # 2 of the 4 positions of 2 sequences, never more (nor shrunk)
    assert all(len(shape) == 3 and shape[1] <= 2 and shape[0] <= 2 for shape in CALLED)
    assert [cell.verdict for cell in report.cells] == ["disagree", "disagree"]
    assert {cell.rows for cell in report.cells} == {12}
    for cell in report.cells:  # windows of 2 positions: the kernel's last is position 1 or 3
        assert cell.worst.position in (1, 3)
        assert cell.worst.row == 4 * cell.worst.batch + cell.worst.position
        assert f"batch {cell.worst.batch}, position {cell.worst.position}" in report.to_text()
        assert "--shape 3,4,16" in cell.reproduce and "--labels" not in cell.reproduce
    snippet = report.cells[0].counterexample  # the first disagreeing cell's (a budget of one)
    call = re.search(r" of the call that holds the worst element \(sequences (\d+)–(\d+), "
                     r"positions (\d+)–(\d+), its own batch\)", snippet)
    (s0, s1, p0, p1), worst = map(int, call.groups()), report.cells[0].worst
    assert s1 - s0 == 1 and p1 - p0 == 1 and s0 <= worst.batch <= s1 and p0 <= worst.position <= p1
    assert "lead = (" in snippet  # the shrunk rows shown as [b, t, V], as the kernel saw them
    namespace = {}
    exec(compile(snippet, "<counterexample>", "exec"), namespace)  # noqa: S102 - it runs
    assert not np.allclose(np.asarray(namespace["closed_form"], np.float64),
                           np.asarray(namespace["reference"]), rtol=1e-3)


def test_a_streamed_mean_divides_by_each_calls_own_denominator(monkeypatch):
    spy, seen = _calls(ce_mean)
    report = _run(spy, MEAN, WHOLE_SEQUENCES, monkeypatch)
    # Two calls of two whole sequences: 0–1, and 1–2 moved back (sequence 1 counted once).
    assert report.ok and seen[-2:] == [(2, 4, 16)] * 2
    assert _run(spy, MEAN, WHOLE_SEQUENCES, monkeypatch).to_json() == report.to_json()
    for cell in report.cells[:4]:  # none or some ignored: atol scaled per call, as stated
        assert "; atol 1e-05 scaled call by call by each call's gradient scale" in (
            cell.explanation)
        assert " 2 calls (each call is a batch of its own" in cell.explanation
    ignored = _variant.ignored_rows("ignored", 0, 12, 16)  # ignored, grad_output 1: 1e-5 / D
    kept = sorted(int(np.sum(~ignored[rows])) for rows in (slice(0, 8), slice(4, 12)))
    assert kept[0] < kept[1]  # two calls with different denominators
    assert (f"from {1e-5 / kept[1]:.3g} to {1e-5 / kept[0]:.3g} over 2 calls"
            in report.cells[2].explanation)
    assert all(cell.explanation.startswith("every row ignored (PyTorch's mean is NaN")
               for cell in report.cells[4:])
    wrong = _run(ce_mean_over_the_whole_batch, MEAN, WHOLE_SEQUENCES, monkeypatch)
    assert [(c.labels, c.verdict) for c in wrong.cells if c.grad_output == "1"] == [
        ("indices", "agree"), ("ignored", "disagree"), ("all-ignored", "agree")]


def test_the_readme_and_the_docstring_say_what_a_streamed_mean_means():
    from pathlib import Path

    said = ("each call is a batch of b sequences or a window of t positions; its mean divides "
            "by that call's denominator")
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for text in (readme, verify.check.__doc__):
        assert said in " ".join(text.replace("*", "").split()).lower()


@pytest.mark.parametrize("sequences, positions", [(1, 2), (2, 2), (2, 3), (3, 4)])
def test_the_ignored_rows_and_upstream_gradients_do_not_depend_on_the_calls(sequences,
                                                                           positions):
    rows = 12
    cut = Windows(Layout(rows, 16, 4), sequences, positions)
    cell = StreamedCell.make(NONE, 0, "ignored", cut)
    ignored = _variant.ignored_rows("ignored", 0, rows, 16)
    assert ignored.sum() == 3
    np.testing.assert_array_equal(cell.ignored, ignored)
    with jax.enable_x64(True):  # as the check runs them
        calls = list(cell.calls("swept"))
    assert len(calls) == cut.count
    pattern = _variant.row_pattern(rows)
    whole = _stream.StreamedDraws(0, 16, "onehot", rows).take(slice(None))
    for call in calls:  # every row of a call is the cell's row, counted or not
        index = call.rows.index
        np.testing.assert_array_equal(_variant.decoded(NONE, call.y) == -100, ignored[index])
        np.testing.assert_array_equal(np.asarray(call.reference.grad_output), pattern[index])
        np.testing.assert_array_equal(call.draws.noise, whole.noise[index])
    counted = np.concatenate([call.rows.index[call.rows.counted] for call in calls])
    assert sorted(counted) == list(range(rows))


@pytest.mark.parametrize("positions", [16, 64, 256, 512, 8192, 2**20])
def test_a_streamed_cells_memory_estimate_stays_under_2_gb_and_flat(positions):
    """V = 262,144 in bfloat16 (the benchmark's cell): one call in flight, whatever B·T."""
    needed = _limits.streamed_variant_bytes(positions, 262_144, ("bfloat16",))
    at_16 = _limits.streamed_variant_bytes(16, 262_144, ("bfloat16",))
    assert needed < 2 * 10**9
    assert needed - at_16 == _limits.STREAM_ROW_BYTES * (positions - 16)  # per row: 16 bytes
    assert _limits.STREAM_ROW_BYTES == 16 and positions <= 2**20  # as the README says:
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    assert ("but for 16 bytes a position" in readme
            and "under 2 GB for V = 262,144 in bfloat16 up to 2<sup>20</sup> positions" in readme)
    _kernel_options.check_shape_memory((1, positions, 262_144), True, ("bfloat16",))


def test_a_streamed_shape_is_refused_where_one_call_does_not_fit(monkeypatch):
    monkeypatch.setattr(_limits, "available_bytes", lambda: 2**29)
    with pytest.raises(ValueError, match=r"^shape: 8,192 positions × 262,144 classes with a "
                       "loss variant, streamed one call"):
        verify.check(ce_sum, framework="torch", loss=SUM, shape=(8, 1024, 262_144))


def three_sequences_a_call(logits, targets, grad_output):
    """Right, but written for calls of the whole batch of three sequences (a JAX kernel)."""
    assert logits.shape[0] == 3, logits.shape
    g = jax.nn.softmax(logits, -1) - jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype)
    return g * grad_output[..., None]


def test_a_kernel_that_fails_on_the_calls_shape_is_refused_before_any_work(monkeypatch):
    """(3, 4, 16) at 128 elements a call: calls of two sequences, all of one shape; the kernel
    is traced on it first, so it is one clear error, not a traceback mid-run."""
    with monkeypatch.context() as patch:
        patch.setattr(_check, "MAX_CHUNK_ELEMENTS", 128)
        with pytest.raises(ValueError, match=r"closed_form: three_sequences_a_call raised "
                                             r"AssertionError: \(2, 4, 16\) .*shape \(8, 16\)"):
            verify.check(three_sequences_a_call, loss=NONE_KEPT, shape=SHAPE, **GRID)
    assert verify.check(three_sequences_a_call, loss=NONE_KEPT, shape=SHAPE, **GRID).ok  # whole


def ce_mean_per_sequence(logits, targets, grad_output):
    """A mean taken per sequence, then averaged over the sequences: wrong wherever the
    sequences of one call keep different numbers of positions."""
    grads = [_torch_grad(z[None], t[None], grad_output / logits.shape[0], "mean")
             for z, t in zip(logits, targets)]
    return torch.cat(grads).to(logits.dtype)


def ce_none_grad_output_read_across(logits, targets, grad_output):
    """``reduction="none"``, its per-position upstream gradient read as [T, B] (the wrong order
    across sequences)."""
    g = grad_output.transpose(0, 1).reshape(grad_output.shape) if grad_output.ndim else grad_output
    return _torch_grad(logits, targets, g, "none")


def ce_mean_never_divided(logits, targets, grad_output):
    """The gradient of the sum where the loss is a mean."""
    return _torch_grad(logits, targets, grad_output, "sum")


@pytest.mark.parametrize("loss, fn", [(MEAN, ce_mean_per_sequence),
                                      (NONE_KEPT, ce_none_grad_output_read_across),
                                      (MEAN, ce_mean_never_divided)])
@pytest.mark.parametrize("limit", [WHOLE_SEQUENCES, WINDOWS])
def test_a_bug_across_sequences_is_seen_streamed_as_in_one_call(monkeypatch, loss, fn, limit):
    """Every call holds two sequences (and here two positions of each): a kernel wrong only
    across them disagrees streamed where it disagrees on the shape in one call."""
    streamed = _run(fn, loss, limit, monkeypatch)
    whole = _run(fn, loss, 2**20, monkeypatch)
    disagree = {(c.labels, c.grad_output) for c in whole.cells if c.verdict == "disagree"}
    assert disagree and disagree == {(c.labels, c.grad_output) for c in streamed.cells
                                     if c.verdict == "disagree"}
