"""The bug catalogue (examples/loss_bugs.py): each closed form is wrong exactly where its bug
bites and right where it does not, against the reference loss's jax.grad (float64)."""

import functools
import inspect

import jax
import numpy as np
import pytest

from derivation import Loss
from examples.loss_bugs import BUGS, CAP
from verify import _loss

ROWS, CLASSES = 6, 4


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(ROWS, CLASSES)) * 2, np.array([0, 3, 1, 2, 3, 1])


def _error(name, loss, z, targets, grad_output):
    fn = BUGS[name].closed_form
    if "weight" in inspect.signature(fn).parameters:  # the kernel with this loss's weights
        fn = functools.partial(fn, weight=loss.weight)
    with jax.enable_x64(True):
        want = np.asarray(_loss.gradient(loss, z, targets, grad_output))
        got = np.asarray(fn(z, targets, np.asarray(grad_output)))
        assert np.isfinite(want).all()
    return float(np.max(np.abs(got - want))) if np.isfinite(got).all() else np.inf


def test_liger_678_wrong_with_a_per_row_upstream_gradient_only():
    bug = BUGS["liger_678_none_ignores_grad_output"]
    z, t = _batch()
    assert _error(bug.closed_form.__name__, bug.loss, z, t, np.linspace(0.5, 2, ROWS)) > 0.1
    assert _error(bug.closed_form.__name__, bug.loss, z, t, np.ones(ROWS)) < 1e-12


@pytest.mark.parametrize("name", ["liger_243_smoothing_dropped",
                                  "liger_420_smoothing_weighted_by_target"])
def test_wrong_with_its_option_and_right_without(name):
    bug = BUGS[name]
    z, t = _batch()
    assert _error(name, bug.loss, z, t, 0.7) > 1e-3
    assert _error(name, bug.right_with, z, t, 0.7) < 1e-12


def test_unsloth_10616_wrong_only_where_a_lane_is_padded():
    z, t = _batch()
    loss = BUGS["unsloth_10616_padded_lanes_capped"].loss
    assert loss.softcap == CAP
    assert _error("unsloth_10616_padded_lanes_capped", loss, z, t, 1.0) < 1e-12
    padded = z.copy()
    padded[:, 2] = -np.inf
    t = np.where(t == 2, 0, t)
    assert _error("unsloth_10616_padded_lanes_capped", loss, padded, t, 1.0) > 1e-3


def test_unsloth_zoo_593_wrong_whenever_capped():
    bug = BUGS["unsloth_zoo_593_z_tanh"]
    z, t = _batch()
    assert _error("unsloth_zoo_593_z_tanh", bug.loss, z, t, 1.0) > 0.1


def test_rocm_te_336_wrong_only_when_rows_are_ignored():
    bug = BUGS["rocm_te_336_ignored_counted"]
    z, t = _batch()
    assert _error("rocm_te_336_ignored_counted", bug.loss, z, t, 1.0) < 1e-12
    t[[1, 4]] = -100
    assert _error("rocm_te_336_ignored_counted", bug.loss, z, t, 1.0) > 1e-3


def test_megatron_737_wrong_with_smoothing():
    bug = BUGS["megatron_737_shard_vocabulary"]
    z, t = _batch()
    assert _error("megatron_737_shard_vocabulary", bug.loss, z, t, 1.0) > 1e-3


def test_t5x_z_loss_backward_is_off_by_the_predicted_residual_only():
    bug = BUGS["t5x_z_loss_backward"]
    z, _ = _batch()
    rng = np.random.default_rng(3)
    normalised = rng.dirichlet(np.ones(CLASSES), size=ROWS)
    assert _error("t5x_z_loss_backward", bug.loss, z, normalised, 1.0) < 1e-12
    unnormalised = normalised * rng.uniform(0.5, 1.5, size=(ROWS, 1))
    off = _error("t5x_z_loss_backward", bug.loss, z, unnormalised, 1.0)
    with jax.enable_x64(True):
        predicted = _loss.predict(bug.loss, z, unnormalised, 1.0)
        closed = np.asarray(bug.closed_form(z, unnormalised, 1.0))
    assert off > 1e-3
    np.testing.assert_allclose(closed, np.asarray(predicted.gradient - predicted.residual),
                               rtol=1e-12, atol=1e-12)


def test_mean_over_rows_wrong_with_weights_right_with_unit_weights():
    bug = BUGS["mean_over_rows_with_weights"]
    z, t = _batch()
    assert _error("mean_over_rows_with_weights", bug.loss, z, t, 1.0) > 1e-3
    assert _error("mean_over_rows_with_weights", bug.right_with, z, t, 1.0) < 1e-12


@pytest.mark.parametrize("name", ["divided_by_rows_twice", "batch_wide_label_sum"])
def test_batch_level_bugs_vanish_on_a_single_row(name):
    bug = BUGS[name]
    rng = np.random.default_rng(4)
    z = rng.normal(size=(ROWS, CLASSES))
    y = rng.uniform(0.1, 1.0, size=(ROWS, CLASSES))  # row sums differ
    if name == "divided_by_rows_twice":
        y = y / y.sum(axis=1, keepdims=True)
    assert _error(name, bug.loss, z, y, 1.0) > 1e-3
    assert _error(name, bug.loss, z[:1], y[:1], 1.0) < 1e-12
