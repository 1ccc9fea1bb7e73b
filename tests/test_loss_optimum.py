"""pytorch #104776, measured: with weights and smoothing the loss is smallest away from the
smoothed target, at σ* = w·q / Σ w·q, where the derived gradient vanishes."""

from fractions import Fraction

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derivation import Loss
from verify import _loss
from verify._optimum import optimum

SHIFTED = Loss(0.1, (1.0, 2.0, 3.0), targets="indices")


def test_weights_and_smoothing_move_the_optimum_to_28_33_not_14_15():
    found = optimum(SHIFTED, target=0, classes=3)
    exact = [Fraction(28, 33), Fraction(2, 33), Fraction(3, 33)]
    np.testing.assert_allclose(found, [float(v) for v in exact], rtol=0, atol=1e-13)
    smoothed_target = [Fraction(14, 15), Fraction(1, 30), Fraction(1, 30)]
    assert float(smoothed_target[0] - exact[0]) == pytest.approx(0.0848484848, abs=1e-10)


def test_pytorchs_gradient_vanishes_there_and_not_at_the_smoothed_target():
    found = optimum(SHIFTED, target=0, classes=3)

    def torch_grad(p):
        z = torch.tensor(np.log(p), dtype=torch.float64, requires_grad=True)
        F.cross_entropy(z[None], torch.tensor([0]), weight=torch.tensor([1.0, 2.0, 3.0],
                        dtype=torch.float64), label_smoothing=0.1).backward()
        return z.grad.numpy()

    assert np.abs(torch_grad(found)).max() < 1e-13
    assert np.abs(torch_grad(np.array([14 / 15, 1 / 30, 1 / 30]))).max() > 0.05


def test_the_derived_gradient_is_zero_at_the_optimum():
    found = optimum(SHIFTED, target=0, classes=3)
    with jax.enable_x64(True):
        predicted = _loss.predict(SHIFTED, np.log(found)[None], np.array([0]), 1.0)
    assert np.abs(np.asarray(predicted.gradient)).max() < 1e-13


@pytest.mark.parametrize("loss", [Loss(0.1, targets="indices"),
                                  Loss(0.1, (2.0, 2.0, 2.0), targets="indices")])
def test_without_distinct_weights_the_optimum_is_the_smoothed_target(loss):
    np.testing.assert_allclose(optimum(loss, 0, 3), [14 / 15, 1 / 30, 1 / 30], rtol=0,
                               atol=1e-13)
