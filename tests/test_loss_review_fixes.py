"""False passes and crashes of the loss-variant and kernel checks, each pinned by a kernel that
slipped through: a ``mean`` gradient smaller than atol, a shifted upstream gradient, a JAX
kernel of the wrong dtype, a streamed shape sized as if drawn whole, ``--shape`` with
``--weight``."""

import numpy as np
import pytest

import verify
from derivation import Loss
from verify import _batch_shrink


@pytest.fixture(autouse=True)
def no_shrinking(monkeypatch):
    monkeypatch.setattr(_batch_shrink, "MAX_CELLS", 0)


def zeros_np(logits, targets, grad_output):
    return np.zeros_like(logits)


def test_a_mean_gradient_below_atol_is_still_judged_on_its_own_scale():
    # Every element of this gradient is below atol (1e-5): g/(T·D) ≈ 1/(100·2004) = 5e-6.
    loss = Loss(reduction="mean", targets="indices", temperature=100.0)
    report = verify.check(zeros_np, framework="numpy", loss=loss, classes=(4,),
                          dtypes=("float32",), scales=(1.0,), samples=2000)
    assert [cell.verdict for cell in report.cells] == ["disagree", "disagree"]
    assert not report.ok
    assert "atol 1e-05 scaled to 4.99e-09" in report.cells[0].explanation


def _none_grad(logits, targets, g):
    import torch
    import torch.nn.functional as F

    z = logits.detach().double().reshape(-1, logits.shape[-1]).requires_grad_()
    F.cross_entropy(z, targets.reshape(-1), reduction="none").backward(g.double().reshape(-1))
    return z.grad.reshape(logits.shape).to(logits.dtype)


def none_batch_flipped(logits, targets, grad_output):
    return _none_grad(logits, targets, grad_output.flip(0))


def none_rolled(logits, targets, grad_output):
    return _none_grad(logits, targets, grad_output.roll(4, dims=-1))


def none_ok(logits, targets, grad_output):
    return _none_grad(logits, targets, grad_output)


@pytest.mark.parametrize(("fn", "grid"), [
    (none_batch_flipped, {"shape": (2, 8, 6)}),
    (none_rolled, {"classes": (6,), "samples": 60}),
])
def test_an_upstream_gradient_shifted_along_the_rows_is_caught(fn, grid):
    loss = Loss(reduction="none", targets="indices")
    report = verify.check(fn, framework="torch", loss=loss, dtypes=("float32",),
                          scales=(1.0,), **grid)
    assert [(cell.grad_output, cell.verdict) for cell in report.cells] == [
        ("1", "agree"), ("±(0.5 to 2) in steps of 1/8, drawn by row", "disagree")]
    assert verify.check(none_ok, framework="torch", loss=loss, dtypes=("float32",),
                        scales=(1.0,), **grid).ok


def jax_f64(z, targets, grad_output):
    import jax.numpy as jnp

    from verify._loss import gradient

    return gradient(Loss(targets="indices"), z.astype(jnp.float64), targets,
                    grad_output.astype(jnp.float64))


def jax_complex(z, targets, grad_output):
    return jax_f64(z, targets, grad_output) + 1j


@pytest.mark.parametrize(("fn", "got"), [(jax_f64, "float64"), (jax_complex, "complex128")])
def test_a_jax_variant_kernel_of_another_dtype_is_refused(fn, got):
    with pytest.raises(TypeError, match=f"returns {got} on bfloat16 logits; expected a real"):
        verify.check(fn, loss=Loss(targets="indices"), classes=(4,), dtypes=("bfloat16",),
                     scales=(1.0,), samples=8)


def test_a_plain_shape_is_streamed_so_not_refused_as_if_drawn_whole(monkeypatch, capsys):
    from verify import _limits
    from verify._cli import main

    whole = _limits.verify_bytes(2 * 64, (512,), ("float32",))
    monkeypatch.setattr(_limits, "available_bytes", lambda: whole // 2)
    code = main(["verify", "--quiet", "--shape", "2,64,512", "--dtypes", "float32",
                 "--scales", "1", "--labels", "onehot", "--format", "json"])
    assert code == 0
    assert '"verdict": "agree"' in capsys.readouterr().out


def test_shape_combines_with_weight_and_so_does_its_reproduce_line(capsys):
    import json
    import shlex

    from verify._cli import main

    args = ["verify", "--quiet", "--shape", "2,3,4", "--weight", "1,2,3,4", "--targets",
            "indices", "--reduction", "mean", "--ignore-index", "2", "--dtypes", "float32",
            "--scales", "1", "--format", "json"]
    assert main(args) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert {cell["verdict"] for cell in cells} == {"agree"}
    line = shlex.split(cells[0]["reproduce"])
    assert "--shape" in line and "--weight" in line
    assert main([*line[1:], "--quiet", "--format", "json"]) == 0


def test_an_ignore_index_beyond_int64_is_refused_as_itself(capsys):
    from verify._cli import main

    with pytest.raises(ValueError, match=r"^ignore_index: expected an integer in int64's range"):
        Loss(targets="indices", ignore_index=2**63)
    assert Loss(targets="indices", ignore_index=-(2**63)).ignore_index == -(2**63)
    assert main(["verify", "--targets", "indices", "--ignore-index",
                 "99999999999999999999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ignore-index: expected an integer in int64's range")
    assert err.count("\n") == 1


def zero_div(logits, targets, grad_output):
    import torch.nn.functional as F

    scale = 1 / int((targets != -100).sum())  # ZeroDivisionError when every row is ignored
    z = logits.detach().double().requires_grad_()
    F.cross_entropy(z, targets, ignore_index=-100, reduction="sum").backward(
        grad_output.double() * scale)
    return z.grad.to(logits.dtype)


def always_raises(logits, targets, grad_output):
    raise RuntimeError("not implemented")


MEAN_IGNORED = Loss(targets="indices", ignore_index=-100, reduction="mean")


def test_a_kernel_raising_on_one_batch_disagrees_there_and_the_report_stands():
    report = verify.check(zero_div, framework="torch", loss=MEAN_IGNORED, classes=(4,),
                          dtypes=("float32",), scales=(1.0,), samples=8)
    assert [(cell.labels, cell.verdict) for cell in report.cells] == [
        ("indices", "agree"), ("indices", "agree"), ("ignored", "agree"), ("ignored", "agree"),
        ("all-ignored", "disagree"), ("all-ignored", "disagree")]
    assert report.cells[-1].explanation.startswith(
        "zero_div raised ZeroDivisionError: division by zero on torch inputs")
    assert "(on this batch)" in report.cells[-1].explanation


def test_a_kernel_raising_on_every_input_is_still_a_bad_closed_form():
    with pytest.raises(ValueError, match="^closed_form: always_raises raised RuntimeError"):
        verify.check(always_raises, framework="torch", loss=MEAN_IGNORED, classes=(4,),
                     dtypes=("float32",), scales=(1.0,), samples=8)


@pytest.mark.parametrize(("flag", "value", "loss", "got"), [
    ("temperature", "1e-300", Loss(targets="indices", temperature=1e-300), "0"),
    ("softcap", "1e-300", Loss(targets="indices", softcap=1e-300), "0"),
    ("weight", "1e308,1,1,1", Loss(targets="indices", weight=(1e308, 1, 1, 1)), "inf"),
])
def test_a_parameter_the_dtype_cannot_hold_is_refused(capfd, flag, value, loss, got):
    from verify._cli import main

    grid = {"classes": (4,), "dtypes": ("float32",), "scales": (1.0,), "samples": 8}
    with pytest.raises(ValueError, match=f"^{flag}: .* rounds to {got} in float32; expected"):
        verify.check(None, loss=loss, **grid)
    args = ["verify", "--quiet", "--targets", "indices", "--classes", "4", "--samples", "8",
            "--dtypes", "float32", "--scales", "1", f"--{flag}", value]
    assert main(args) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"error: --{flag}: ") and err.count("\n") == 1
