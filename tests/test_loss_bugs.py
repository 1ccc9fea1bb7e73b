"""The bug catalogue (examples/loss_bugs.py) through ``verify.check(fn, loss=...)``: each closed
form is caught (ok False) in the cells where its bug bites, the explanation names the grid axis
the disagreement follows, and it passes where the bug does not bite. T5X's z-loss backward is
``expected`` where the targets miss Σt = 1, as the derivation predicts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import verify
from derivation import Loss
from examples.loss_bugs import BUGS
from verify import _batch_shrink

GRID = {"classes": (4,), "dtypes": ("float32",), "scales": (1.0,), "samples": 8}


@pytest.fixture(autouse=True)
def no_shrinking_unless_asked(request, monkeypatch):
    """Shrinking compiles every candidate shape: only the tests about counterexamples do it."""
    if "counterexample" not in request.node.name and "678" not in request.node.name:
        monkeypatch.setattr(_batch_shrink, "MAX_CELLS", 0)


def check(name, loss=None, **grid):
    bug = BUGS[name]
    return verify.check(bug.closed_form, loss=loss or bug.loss, **{**GRID, **grid})


def verdicts(report):
    return {(cell.labels, cell.grad_output): cell.verdict for cell in report.cells}


def test_liger_678_caught_only_where_grad_output_varies_by_row():
    report = check("liger_678_none_ignores_grad_output")
    assert verdicts(report) == {("indices", "1"): "agree",
                                ("indices", "±(0.5 to 2) in steps of 1/8, drawn by row"): "disagree"}
    bad = report.cells[1]
    assert "with grad_output ±(0.5 to 2) in steps of 1/8, drawn by row, not 1" in bad.explanation
    assert not report.ok and bad.counterexample is not None


@pytest.mark.parametrize("name", ["liger_243_smoothing_dropped", "unsloth_zoo_593_z_tanh",
                                  "megatron_737_shard_vocabulary"])
def test_caught_in_every_cell_of_its_loss(name):
    report = check(name)
    assert set(verdicts(report).values()) == {"disagree"}
    assert "it disagrees in every cell of the grid" in report.cells[0].explanation


def test_no_axis_named_where_none_separates_and_every_cell_only_where_every_cell_disagrees():
    """Disagreeing at (indices, 0.75) and (ignored, 1) but agreeing at (indices, 1): no one
    axis separates them, and 'every cell of the grid' would be false."""
    from types import SimpleNamespace

    from verify._variant_check import where_it_differs

    def cell(labels, g, verdict):
        return SimpleNamespace(labels=labels, grad_output=g, dtype="float32", scale=1.0,
                               classes=10, verdict=verdict)

    mixed = [cell("indices", "1", "agree"), cell("indices", "0.75", "disagree"),
             cell("ignored", "1", "disagree"), cell("ignored", "0.75", "disagree")]
    assert where_it_differs(mixed) == ""
    assert where_it_differs(mixed[1:]) == (
        "it disagrees in every cell of the grid")
    assert where_it_differs(mixed[:2]) == "it disagrees with grad_output 0.75, not 1"


def test_liger_243_passes_without_smoothing():
    assert check("liger_243_smoothing_dropped", BUGS["liger_243_smoothing_dropped"].right_with).ok


@pytest.mark.parametrize("name", ["liger_420_smoothing_weighted_by_target",
                                  "mean_over_rows_with_weights"])
def test_a_wrong_weighting_is_caught_with_distinct_weights_and_invisible_with_uniform_ones(name):
    bug = BUGS[name]
    assert set(verdicts(check(name)).values()) == {"disagree"}
    uniform = functools.partial(bug.closed_form, weight=bug.right_with.weight)
    assert verify.check(uniform, loss=bug.right_with, **GRID).ok


def test_unsloth_10616_caught_in_the_row_with_padded_lanes_only():
    report = check("unsloth_10616_padded_lanes_capped", classes=(10,))
    assert set(verdicts(report).values()) == {"disagree"}
    assert all(cell.worst.row_kind == "masked" for cell in report.cells)
    rows_agreeing = [1 - (1 - cell.agree_fraction) * cell.rows for cell in report.cells]
    assert all(fraction >= 0 for fraction in rows_agreeing)  # at most one row's worth is off


def test_rocm_te_336_caught_only_where_rows_are_ignored():
    report = check("rocm_te_336_ignored_counted")
    assert {key: v for key, v in verdicts(report).items() if v == "disagree"} == {
        ("ignored", "1"): "disagree", ("ignored", "0.75"): "disagree"}
    bad = next(cell for cell in report.cells if cell.verdict == "disagree")
    assert bad.explanation.startswith("3 of 12 rows ignored; ")
    assert "with targets ignored, not indices, all-ignored" in bad.explanation
    every = [cell for cell in report.cells if cell.labels == "all-ignored"]
    assert all(c.verdict == "agree" and c.explanation.startswith(
        "every row ignored (PyTorch's mean is NaN and its gradient zero)") for c in every)


def test_t5x_z_loss_backward_is_expected_where_targets_miss_one_and_agrees_elsewhere():
    report = check("t5x_z_loss_backward")
    assert report.ok
    for (labels, _), verdict in verdicts(report).items():
        assert verdict == ("expected" if labels == "unnormalized" else "agree"), labels
    expected = [cell for cell in report.cells if cell.verdict == "expected"]
    assert all(0.5 < cell.residual_match < 1.5 for cell in expected)


def test_batch_level_bugs_get_a_counterexample_of_more_than_one_row():
    for name, labels in (("divided_by_rows_twice", ("soft",)),
                         ("batch_wide_label_sum", ("unnormalized",))):
        report = check(name, labels=labels)
        shrunk = [cell for cell in report.cells if cell.counterexample]
        assert len(shrunk) == 1 and not report.ok
        assert ": 2 of the cell's rows, c = " in shrunk[0].counterexample
        namespace, before = {}, jax.config.jax_enable_x64
        try:  # the snippet is runnable: it shows the closed form off the reference
            exec(compile(shrunk[0].counterexample, "<counterexample>", "exec"), namespace)
        finally:
            jax.config.update("jax_enable_x64", before)
        assert not np.allclose(namespace["closed_form"], namespace["reference"], rtol=1e-3)
        others = [cell for cell in report.cells if cell.verdict == "disagree"
                  and not cell.counterexample]
        assert all("no counterexample: not shrunk: a check shrinks its first 1 disagreeing "
                   "cell(s) only" in cell.explanation for cell in others)



def test_a_kernel_that_loses_the_sign_of_grad_output_is_caught():
    """Per-token weights are negative too (an advantage): a `none` backward that scales by
    |grad_output| agreed everywhere while every drawn weight was positive."""
    loss = Loss(targets="indices", reduction="none")

    def unsigned(z, targets, grad_output):
        right = jax.nn.softmax(z, axis=-1) - jax.nn.one_hot(targets, z.shape[-1], dtype=z.dtype)
        return jnp.abs(grad_output)[:, None] * right

    def signed(z, targets, grad_output):
        right = jax.nn.softmax(z, axis=-1) - jax.nn.one_hot(targets, z.shape[-1], dtype=z.dtype)
        return grad_output[:, None] * right

    assert verdicts(verify.check(unsigned, loss=loss, **GRID)) == {
        ("indices", "1"): "agree",
        ("indices", "±(0.5 to 2) in steps of 1/8, drawn by row"): "disagree"}
    assert verify.check(signed, loss=loss, **GRID).ok
