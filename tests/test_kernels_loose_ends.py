"""Loose ends of the kernel path, each pinned: a gradient returned on another device, a write
into the inputs in an ``undefined`` cell, ``labels`` with index targets, and the counterexample
of a two-argument JAX function checked with a shape."""

import json

import jax
import numpy as np
import pytest
import torch

import verify
from derivation import Loss
from verify import _batch_shrink
from verify._cli import main

ONE_CELL = {"classes": (4,), "dtypes": ("float32",), "scales": (1.0,), "samples": 8}


def on_the_meta_device(logits, targets, grad_output):
    """The right shape and dtype, on another device than the logits'."""
    return torch.empty_like(logits, device="meta")


def test_a_gradient_on_another_device_is_an_error_naming_both_devices():
    with pytest.raises(ValueError, match=r"^closed_form: on_the_meta_device returned its "
                       r"gradient on meta; expected it on cpu, where its logits were given"):
        verify.check(on_the_meta_device, framework="torch", labels="onehot", **ONE_CELL)
    with pytest.raises(ValueError, match="returned its gradient on meta; expected it on cpu"):
        verify.check(on_the_meta_device, framework="torch", loss=Loss(targets="indices"),
                     **ONE_CELL)


def sanitizes_in_place(logits, targets, grad_output):
    """Right, but clamps non-finite logits in the caller's tensor (a write only where the
    inputs overflow)."""
    if not torch.isfinite(logits).all():
        logits.nan_to_num_(posinf=0.0, neginf=0.0)
    z = logits.float()
    y = targets.float() if targets.is_floating_point() else torch.nn.functional.one_hot(
        targets, logits.shape[-1]).float()
    return (grad_output.float() * (torch.softmax(z, -1) * y.sum(-1, keepdim=True) - y)).to(
        logits.dtype)


@pytest.mark.parametrize("loss", [None, Loss(targets="indices")])
def test_a_write_into_the_inputs_is_reported_in_an_undefined_cell(loss):
    # float16 logits at scale 1e5 overflow on the cast: the cells are undefined.
    report = verify.check(sanitizes_in_place, framework="torch", loss=loss, classes=(4,),
                          dtypes=("float16",), scales=(1e5,), samples=8,
                          **({"labels": "onehot"} if loss is None else {}))
    assert report.cells and {cell.verdict for cell in report.cells} == {"undefined"}
    for cell in report.cells:
        assert cell.explanation.startswith("inputs overflow float16 on the cast")
        assert "; and the kernel writes into its input logits [" in cell.explanation
        assert [write.input for write in cell.writes] == ["logits"]
    written = json.loads(report.to_json())["cells"][0]["writes"]
    assert written and written[0]["input"] == "logits"
    if loss is None:
        at_one = verify.check(sanitizes_in_place, framework="torch", classes=(4,),
                              dtypes=("float16",), scales=(1.0,), samples=8, labels="onehot")
        assert at_one.ok and not any(cell.writes for cell in at_one.cells)  # finite: no write


def test_labels_with_index_targets_are_refused_not_ignored(capsys):
    loss = Loss(targets="indices", ignore_index=-100)
    with pytest.raises(ValueError, match=r"^labels: soft is not used with index targets, whose "
                       r"cells are kinds of their own \(indices, ignored, all-ignored\)"):
        verify.check(loss=loss, labels="soft", **{k: v for k, v in ONE_CELL.items()})
    assert main(["verify", "--targets", "indices", "--labels", "onehot", "--classes", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --labels: onehot is not used with index targets")
    assert err.count("\n") == 1
    # (reproduce lines of index targets carry no --labels: test_loss_review_fixes runs one)


def doubled_at_the_last_position(z, y):
    """Two arguments, written for [b, T, V]: doubles the gradient at each last position."""
    return (jax.nn.softmax(z, axis=-1) - y).at[:, -1].multiply(2)


def test_a_two_argument_jax_function_checked_with_a_shape_gets_its_shape_back(monkeypatch):
    monkeypatch.setattr(_batch_shrink, "MAX_CELLS", 1)
    report = verify.check(doubled_at_the_last_position, shape=(2, 3, 8), dtypes="float32",
                          scales=1.0, labels="onehot")
    (cell,) = report.cells
    assert cell.verdict == "disagree" and cell.worst.position == 2
    assert "\nz = jnp.array([[[" in cell.counterexample  # [1, 1, V]: one position of one sequence
    assert "\ny = jnp.array([[[" in cell.counterexample
    namespace = {}
    with pytest.raises(AssertionError, match="the closed form disagrees with jax.grad"):
        exec(compile(cell.counterexample, "<counterexample>", "exec"), namespace)  # noqa: S102
    assert np.shape(namespace["closed_form"])[:2] == (1, 1)


class _UnhashableKernel:
    """A callable object that defines ``__eq__`` and so cannot be hashed."""

    def __eq__(self, other):
        return self is other

    def __call__(self, z, targets, grad_output):
        onehot = jax.nn.one_hot(targets, z.shape[-1], dtype=z.dtype)
        return grad_output * (jax.nn.softmax(z, axis=-1) - onehot)


@pytest.mark.parametrize("grid", [{"classes": [5], "samples": 8}, {"shape": (2, 6, 5)}])
def test_an_unhashable_callable_is_checked_as_a_variant_closed_form(grid):
    """As a plain closed form it is: compiled by identity (it failed with a TypeError)."""
    report = verify.check(_UnhashableKernel(), loss=Loss(targets="indices"), dtypes=["float32"],
                          scales=[1.0], **grid)
    assert report.ok and {cell.verdict for cell in report.cells} == {"agree"}
    wrong = verify.check(_UnhashableKernel(), loss=Loss(targets="indices", label_smoothing=0.1),
                         dtypes=["float32"], scales=[1.0], **grid)
    (shrunk,) = [c.counterexample for c in wrong.cells if c.counterexample]
    assert "# <test_kernels_loose_ends._UnhashableKernel object>: define" in shrunk
