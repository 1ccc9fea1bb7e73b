"""The reference loss and its gradient against what no one here wrote: PyTorch's
``F.cross_entropy`` and optax, in float64, to 1e-12.

Every combination of weight × ignore_index × label_smoothing × reduction × target kind, with an
upstream gradient ≠ 1, and a batch where every row is ignored (PyTorch: NaN loss for ``mean``,
zero gradient).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

from derivation import Loss
from verify import _loss

ROWS, CLASSES = 5, 4
WEIGHT = (0.5, 2.0, 1.0, 3.0)
TOL = 1e-12


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(ROWS, CLASSES)) * 3
    indices = np.array([0, 3, 1, 1, 2])
    probabilities = rng.dirichlet(np.ones(CLASSES), size=ROWS)
    return z, indices, probabilities


def _grad_output(reduction):
    return np.array([0.7, -1.3, 2.0, 0.25, 1.5]) if reduction == "none" else np.array(0.7)


def _torch(z, targets, loss, grad_output):
    logits = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    weight = None if loss.weight is None else torch.tensor(loss.weight, dtype=torch.float64)
    target = torch.tensor(targets)
    kwargs = {} if loss.ignore_index is None else {"ignore_index": loss.ignore_index}
    value = F.cross_entropy(logits, target, weight=weight, reduction=loss.reduction,
                            label_smoothing=loss.label_smoothing, **kwargs)
    value.backward(torch.tensor(grad_output, dtype=torch.float64))
    return value.detach().numpy(), logits.grad.numpy()


def _ours(z, targets, loss, grad_output):
    with jax.enable_x64(True):
        value = _loss.reduced(loss, jnp.asarray(z), jnp.asarray(targets))
        grad = _loss.gradient(loss, jnp.asarray(z), jnp.asarray(targets),
                              jnp.asarray(grad_output))
        return np.asarray(value), np.asarray(grad)


def _cases():
    for weight, eps, reduction in itertools.product((None, WEIGHT), (0.0, 0.2),
                                                     ("mean", "sum", "none")):
        for ignore in (None, -100, 1):
            yield Loss(eps, weight, ignore, reduction, targets="indices")
        yield Loss(eps, weight, None, reduction, targets="probabilities")


@pytest.mark.parametrize("loss", list(_cases()), ids=lambda loss: loss.describe())
def test_loss_and_gradient_equal_pytorch(batch, loss):
    z, indices, probabilities = batch
    if loss.targets == "indices":
        targets = indices.copy()
        if loss.ignore_index is not None:
            targets[[1, 4]] = loss.ignore_index  # two rows ignored (class 1 is ignored anyway)
    else:
        targets = probabilities
    g = _grad_output(loss.reduction)
    want_value, want_grad = _torch(z, targets, loss, g)
    value, grad = _ours(z, targets, loss, g)
    np.testing.assert_allclose(value, want_value, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(grad, want_grad, rtol=TOL, atol=TOL)
    if loss.ignore_index is not None:  # ignored rows have no gradient at all
        ignored = targets == loss.ignore_index
        assert ignored.sum() >= 2 and not grad[ignored].any()


@pytest.mark.parametrize("weight", [None, WEIGHT])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_batch_with_every_row_ignored(batch, weight, eps, reduction):
    z, _, _ = batch
    loss = Loss(eps, weight, -100, reduction, targets="indices")
    targets = np.full(ROWS, -100)
    g = _grad_output(reduction)
    want_value, want_grad = _torch(z, targets, loss, g)
    value, grad = _ours(z, targets, loss, g)
    assert not want_grad.any() and not grad.any()
    if reduction == "mean":
        assert np.isnan(want_value) and np.isnan(value)
    else:
        assert not want_value.any() and not value.any()


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_probability_targets_equal_optax_with_smooth_labels(batch, eps):
    z, _, probabilities = batch
    with jax.enable_x64(True):
        labels = optax.smooth_labels(jnp.asarray(probabilities), eps)
        want = optax.softmax_cross_entropy(jnp.asarray(z), labels)
        want_grad = jax.grad(lambda x: optax.softmax_cross_entropy(x, labels).sum())(
            jnp.asarray(z))
        loss = Loss(label_smoothing=eps, reduction="none")
        ours = _loss.reduced(loss, jnp.asarray(z), jnp.asarray(probabilities))
        grad = _loss.gradient(loss, jnp.asarray(z), jnp.asarray(probabilities), jnp.ones(ROWS))
    np.testing.assert_allclose(ours, want, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(grad, want_grad, rtol=TOL, atol=TOL)


def test_ignored_rows_equal_optax_integer_labels_with_where(batch):
    z, indices, _ = batch
    targets = indices.copy()
    targets[[0, 2]] = -100
    keep = np.broadcast_to((targets != -100)[:, None], (ROWS, CLASSES))
    safe = np.where(targets == -100, 0, targets)
    with jax.enable_x64(True):
        def theirs(x):
            return optax.softmax_cross_entropy_with_integer_labels(x, safe, where=keep)

        want = theirs(jnp.asarray(z))
        want_grad = jax.grad(lambda x: theirs(x).sum())(jnp.asarray(z))
        loss = Loss(ignore_index=-100, reduction="none", targets="indices")
        ours = _loss.reduced(loss, jnp.asarray(z), jnp.asarray(targets))
        grad = _loss.gradient(loss, jnp.asarray(z), jnp.asarray(targets), jnp.ones(ROWS))
    np.testing.assert_allclose(ours, want, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(grad, want_grad, rtol=TOL, atol=TOL)
    assert float(np.abs(np.asarray(grad)[[0, 2]]).max()) == 0.0


def test_z_loss_softcap_and_temperature_compose_in_the_documented_order(batch):
    z, indices, _ = batch
    loss = Loss(z_loss=1e-2, softcap=2.5, temperature=1.7, targets="indices", reduction="none")
    with jax.enable_x64(True):
        ours = np.asarray(_loss.reduced(loss, jnp.asarray(z), jnp.asarray(indices)))
    u = 2.5 * np.tanh(z / 1.7 / 2.5)
    lse = np.log(np.exp(u).sum(axis=1))
    want = lse - u[np.arange(ROWS), indices] + 1e-2 * lse**2
    np.testing.assert_allclose(ours, want, rtol=TOL, atol=TOL)


def test_a_masked_lane_stays_masked_through_the_soft_cap():
    """A padded class at −∞ takes no probability after capping (Unsloth PR #10616), and its
    zero target adds no NaN."""
    z = np.array([[1.0, -np.inf, 0.5], [2.0, 0.0, -np.inf]])
    loss = Loss(softcap=2.0, targets="indices", reduction="sum")
    with jax.enable_x64(True):
        value = float(_loss.reduced(loss, z, np.array([0, 1])))
        grad = np.asarray(_loss.gradient(loss, z, np.array([0, 1]), 1.0))
        unpadded = float(_loss.reduced(loss, z[:, [0, 2]][:1], np.array([0]))) + float(
            _loss.reduced(loss, z[1:, :2], np.array([1])))
    assert value == pytest.approx(unpadded, rel=1e-15, abs=0)
    assert grad[0, 1] == 0.0 and grad[1, 2] == 0.0 and np.isfinite(grad).all()


def test_with_smoothing_a_masked_capped_lane_gets_the_derived_gradient_zero():
    z = np.array([[1.0, -np.inf, 0.5, -0.3], [2.0, 0.0, -np.inf, 0.7]])
    loss = Loss(0.1, (0.5, 2.0, 1.0, 3.0), None, "mean", 1e-3, 5.0, 2.0, "indices")
    t = np.array([0, 1])
    with jax.enable_x64(True):
        grad = np.asarray(_loss.gradient(loss, z, t, 0.75))
        predicted = np.asarray(_loss.predict(loss, z, t, 0.75).gradient)
    assert grad[0, 1] == 0.0 and grad[1, 2] == 0.0
    np.testing.assert_allclose(predicted, grad, rtol=TOL, atol=TOL)
