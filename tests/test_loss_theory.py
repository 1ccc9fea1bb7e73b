"""The derivation's gradient for a loss variant, lambdified, equals ``jax.grad`` of the
reference loss (float64, 1e-12), and its residual is what a closed form assuming Σy = 1 misses."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derivation import Loss
from derivation._loss_theory import LOGIT, SOFTMAX, TARGET, TARGET_SUM, loss_theory
from derivation._loss_symbols import T, g
from verify import _loss

ROWS, CLASSES = 4, 3
TOL = 1e-12


def _inputs(targets_kind, ignore):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(ROWS, CLASSES)) * 2
    if targets_kind == "indices":
        t = np.array([0, 2, 1, 2])
        if ignore is not None:
            t[1] = ignore
        return z, t
    return z, rng.uniform(0.0, 1.0, size=(ROWS, CLASSES))  # rows do not sum to one


def _losses():
    for eps, weight, zl, cap, temp, reduction, kind in itertools.product(
            (0.0, 0.2), (None, (0.5, 2.0, 1.5)), (0.0, 0.05), (None, 2.0), (1.0, 1.5),
            ("mean", "sum", "none"), ("indices", "probabilities")):
        ignore = -100 if kind == "indices" and reduction != "sum" else None
        yield Loss(eps, weight, ignore, reduction, zl, cap, temp, kind)


LOSSES = list(_losses())[::23]  # a spread of the 192 combinations (every option on and off)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.describe())
def test_the_derived_gradient_is_jax_grad_of_the_reference(loss):
    z, t = _inputs(loss.targets, loss.ignore_index)
    go = np.array([0.5, -2.0, 1.25, 3.0]) if loss.reduction == "none" else np.array(0.75)
    with jax.enable_x64(True):
        want = np.asarray(_loss.gradient(loss, z, t, go))
        got = _loss.predict(loss, z, t, go)
        np.testing.assert_allclose(np.asarray(got.gradient), want, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(np.asarray(got.gradient - got.closed_form),
                                   np.asarray(got.residual), rtol=TOL, atol=TOL)


def test_the_options_are_swept():
    for field in ("label_smoothing", "weight", "z_loss", "softcap", "temperature",
                  "ignore_index"):
        values = {getattr(loss, field) for loss in LOSSES}
        assert len(values) == 2, field
    assert {loss.reduction for loss in LOSSES} == {"mean", "sum", "none"}


def test_the_plain_variant_is_sigma_minus_y_with_the_plain_residual():
    theory = loss_theory(Loss(reduction="none"))
    assert theory.closed_form == g * (SOFTMAX - TARGET)
    assert theory.residual == g * SOFTMAX * (TARGET_SUM - 1)


def test_temperature_scales_the_residual_by_one_over_t():
    theory = loss_theory(Loss(temperature=2.0))
    assert sp.simplify(theory.residual - g * SOFTMAX * (TARGET_SUM - 1) / T) == 0
    assert LOGIT not in theory.residual.free_symbols


def test_weighted_targets_have_no_residual_to_predict():
    assert loss_theory(Loss(weight=(1.0, 2.0))).residual == 0


def test_every_row_ignored_predicts_a_zero_gradient():
    loss = Loss(ignore_index=-100, reduction="mean", targets="indices", label_smoothing=0.1)
    z, _ = _inputs("indices", None)
    with jax.enable_x64(True):
        got = _loss.predict(loss, z, np.full(ROWS, -100), np.array(1.0))
        assert not np.asarray(got.gradient).any()
        assert not np.asarray(_loss.gradient(loss, z, np.full(ROWS, -100), 1.0)).any()


def test_the_size_is_the_sum_of_the_gradients_terms():
    from derivation._loss_theory import LSE, WEIGHT
    from derivation._loss_symbols import lam

    plain = loss_theory(Loss())
    assert plain.size == abs(g * SOFTMAX * TARGET_SUM) + abs(g * TARGET)
    with_z_loss = loss_theory(Loss(z_loss=0.1, weight=(1.0, 2.0)))
    assert abs(2 * g * lam * LSE * SOFTMAX) in with_z_loss.size.args
    assert abs(g * WEIGHT * TARGET) in with_z_loss.size.args


def test_losses_of_one_structure_share_the_theory_and_keep_their_own_loss():
    one, other = Loss(label_smoothing=0.1, z_loss=1e-3), Loss(label_smoothing=0.3, z_loss=0.5)
    a, b = loss_theory(one), loss_theory(other)
    assert a.loss == one and b.loss == other
    assert (a.gradient, a.closed_form, a.residual, a.size) == (
        b.gradient, b.closed_form, b.residual, b.size)
    assert loss_theory(Loss(label_smoothing=0.1)).gradient != a.gradient
