"""Calling a kernel in torch, NumPy or JAX: what it receives, what comes back, the inputs it writes
into, and one clear error for each way a function can be unusable."""

import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verify import _kernel_options
from verify._frameworks import Kernel, Write, describe_writes, takes_grad_output

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}  # fmt: skip


def inputs(dtype="float32", shape=(2, 3, 5)):
    """Logits ``[2, 3, 5]`` in ``dtype``, index targets ``[2, 3]``, grad_output a scalar."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=shape).astype(jnp.dtype(dtype))
    t = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int64)
    g = np.array(0.5, jnp.dtype(dtype))
    return z, t, g


def torch_gradient(logits, targets, grad_output):
    """σ(z) − onehot(t), scaled by grad_output, computed in float32, returned in the logits'."""
    p = torch.softmax(logits.float(), dim=-1)
    p = p - torch.nn.functional.one_hot(targets, logits.shape[-1]).float()
    return (p * grad_output.float()).to(logits.dtype)


def numpy_gradient(logits, targets, grad_output):
    z = logits.astype(np.float32)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    p -= np.eye(z.shape[-1], dtype=np.float32)[targets]
    return (p * grad_output.astype(np.float32)).astype(logits.dtype)


def assert_is_the_gradient(got, z, t, g):
    """Within two roundings in the dtype (float32 arithmetic, then the cast) of float64's."""
    z64, g64 = z.astype(np.float64), float(g)
    p = np.exp(z64 - z64.max(axis=-1, keepdims=True))
    exact = g64 * (p / p.sum(axis=-1, keepdims=True) - np.eye(z.shape[-1])[t])
    eps = max(float(jnp.finfo(z.dtype).eps), float(jnp.finfo(jnp.float32).eps))
    np.testing.assert_allclose(got.astype(np.float64), exact, rtol=2 * eps, atol=2 * eps)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_torch_function_gets_tensors_in_the_cells_dtype(dtype):
    z, t, g = inputs(dtype)
    seen = {}

    def fn(logits, targets, grad_output):
        seen.update(logits=logits.dtype, targets=targets.dtype, grad_output=grad_output.dtype,
                    device=logits.device.type, requires_grad=logits.requires_grad)  # fmt: skip
        return torch_gradient(logits, targets, grad_output)

    call = Kernel(fn, "torch")(z, t, g)
    assert seen == {"logits": DTYPES[dtype], "targets": torch.int64,
                    "grad_output": DTYPES[dtype], "device": "cpu", "requires_grad": False}
    assert call.writes == ()
    assert call.gradient.dtype == z.dtype and call.gradient.shape == (2, 3, 5)
    assert_is_the_gradient(call.gradient, z, t, g)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_numpy_function_gets_arrays_bfloat16_as_ml_dtypes(dtype):
    z, t, g = inputs(dtype)
    seen = []

    def fn(logits, targets, grad_output):
        seen.append((type(logits), logits.dtype.name, logits.flags.writeable))
        return numpy_gradient(logits, targets, grad_output)

    call = Kernel(fn, "numpy")(z, t, g)
    assert seen == [(np.ndarray, dtype, True)]
    assert call.gradient.dtype.name == dtype and call.writes == ()
    assert_is_the_gradient(call.gradient, z, t, g)


def test_a_jax_function_with_three_or_two_arguments():
    z, t, g = inputs("float32", (4, 5))
    y = np.eye(5, dtype=np.float32)[t]
    three = Kernel(lambda z, y, g: (jnp.exp(z) / jnp.exp(z).sum(-1, keepdims=True) - y) * g, "jax")
    two = Kernel(lambda z, y: jnp.exp(z) / jnp.exp(z).sum(-1, keepdims=True) - y, "jax")
    assert (three.three_arguments, two.three_arguments) == (True, False)
    a, b = three(z, y, g).gradient, two(z, y, g).gradient
    np.testing.assert_allclose(a, 0.5 * b, rtol=1e-6)
    assert three(z, y, g).writes == ()


def test_the_torch_gradient_comes_back_without_a_copy_and_inputs_are_copied_once():
    z, t, g = inputs("bfloat16")
    kept = {}

    def fn(logits, targets, grad_output):
        kept["logits"], kept["out"] = logits, torch_gradient(logits, targets, grad_output)
        return kept["out"]

    call = Kernel(fn, "torch")(z, t, g)
    assert call.gradient.__array_interface__["data"][0] == kept["out"].data_ptr()  # a view
    assert kept["logits"].data_ptr() != z.__array_interface__["data"][0]  # its own buffer


@pytest.mark.parametrize("framework", ["torch", "numpy"])
def test_a_write_into_the_logits_is_found_and_the_original_is_untouched(framework):
    z, t, g = inputs("bfloat16")
    before = z.copy()

    def fn(logits, targets, grad_output):
        logits[1, 2, 3] = 7  # one element
        return logits * 0

    call = Kernel(fn, framework)(z, t, g)
    assert call.writes == (Write("logits", (2, 3, 5), 1, 30, (1, 2, 3)),)
    np.testing.assert_array_equal(z, before)
    assert call.gradient is not None


def test_a_gradient_written_over_the_logits_is_reported_whatever_is_returned():
    z, t, g = inputs("float32")

    def overwrite(logits, targets, grad_output):
        logits.copy_(torch_gradient(logits, targets, grad_output))  # and returns nothing

    call = Kernel(overwrite, "torch")(z, t, g)
    assert call.gradient is None
    assert call.writes == (Write("logits", (2, 3, 5), 30, 30, (0, 0, 0)),)
    assert describe_writes(call.writes) == (
        "writes into its input logits [2, 3, 5] (30 of 30 elements changed, the first at "
        "(0, 0, 0)) in place: whatever it returns, what the caller passed is overwritten"
    )


def test_writes_into_targets_and_grad_output_are_found_too():
    z, t, g = inputs("float16")

    def fn(logits, targets, grad_output):
        targets[0, 0] = -100
        grad_output.mul_(2)
        return torch_gradient(logits, targets.clamp(min=0), grad_output)

    writes = Kernel(fn, "torch")(z, t, g).writes
    assert [(w.input, w.changed, w.index) for w in writes] == [
        ("targets", 1, (0, 0)), ("grad_output", 1, ())
    ]


def test_nan_written_over_nan_is_no_write_and_negative_zero_over_zero_is_one():
    z = np.array([[np.nan, 0.0]], np.float32)
    t, g = np.array([0]), np.array(1.0, np.float32)

    def fn(logits, targets, grad_output):
        logits[0, 0] = np.nan
        logits[0, 1] = -0.0
        return logits.copy()

    assert Kernel(fn, "numpy")(z, t, g).writes == (Write("logits", (1, 2), 1, 2, (0, 1)),)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 29), st.sampled_from(["float32", "bfloat16", "float16"]))
def test_any_single_changed_element_is_found_where_it_is(flat, dtype):
    z, t, g = inputs(dtype)
    index = np.unravel_index(flat, z.shape)

    def fn(logits, targets, grad_output):
        logits[index] = logits[index] + 1
        return logits.clone()

    want = Write("logits", (2, 3, 5), 1, 30, tuple(map(int, index)))
    assert Kernel(fn, "torch")(z, t, g).writes == (want,)


@pytest.mark.parametrize(
    "returned, error, message",
    [
        (lambda z, t, g: (z,), TypeError,
         r"returned tuple; expected a torch.Tensor of shape \[2, 3, 5\] in torch.float32"),
        (lambda z, t, g: z[0], ValueError, r"returned shape \[3, 5\]; expected \[2, 3, 5\]"),
        (lambda z, t, g: z.long(), TypeError,
         "returned a torch.int64 array; expected floating point torch.float32"),
        (lambda z, t, g: z.double(), TypeError,
         r"returned torch.float64 for torch.float32 logits; .* return grad.to\(logits.dtype\)"),
        (lambda z, t, g: 1 / 0, ValueError,
         r"raised ZeroDivisionError: division by zero on torch inputs \(logits "
         r"torch.float32\[2, 3, 5\], targets torch.int64\[2, 3\], grad_output torch.float32\[\]\)"),
    ],
)
def test_an_unusable_result_is_one_clear_error(returned, error, message):
    with pytest.raises(error, match="^closed_form: <lambda> " + message):
        Kernel(returned, "torch")(*inputs("float32"))


def test_a_numpy_function_must_return_an_ndarray_in_the_logits_dtype():
    with pytest.raises(TypeError, match="returned list; expected a np.ndarray"):
        Kernel(lambda z, t, g: z.tolist(), "numpy")(*inputs())
    with pytest.raises(TypeError, match=r"returned float32 for float16 logits.*astype"):
        Kernel(lambda z, t, g: z.astype(np.float32), "numpy")(*inputs("float16"))


def test_only_jax_may_take_two_arguments():
    assert takes_grad_output(lambda z, y, g: z) and not takes_grad_output(lambda z, y: z)
    assert takes_grad_output(lambda *args: args[0])
    with pytest.raises(ValueError, match="a torch function takes .*<lambda> takes two"):
        Kernel(lambda z, y: z, "torch")
    with pytest.raises(TypeError, match="expected a callable"):
        Kernel(3, "numpy")


def test_framework_and_device_are_validated_with_what_is_accepted(monkeypatch):
    with pytest.raises(ValueError, match=r"^framework: unknown framework 'pytorch'; did you "
                       r"mean 'torch'\? \(accepted: jax, torch, numpy\)$"):
        Kernel(torch_gradient, "pytorch")
    with pytest.raises(ValueError, match=r"^device: 'cuda' runs torch functions only"):
        Kernel(numpy_gradient, "numpy", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False .*cpu\)$"):
        Kernel(torch_gradient, "torch", "cuda")
    with pytest.raises(ValueError, match=r"^device: unknown device 'gpu'"):
        Kernel(torch_gradient, "torch", "gpu")


@pytest.mark.parametrize("value, shape", [("4,128,32000", (4, 128, 32000)), ((8, 262144),
                         (8, 262144)), (None, None), (" 2, 3 ,5", (2, 3, 5))])  # fmt: skip
def test_shapes_parse(value, shape):
    assert _kernel_options.validate_shape(value) == shape


@pytest.mark.parametrize("value", ["4", "1,2,3,4", "0,2,3", "a,b,c", (2, 2.5, 3), 5,
                                   f"1,1,{2**20 + 1}"])  # fmt: skip
def test_bad_shapes_are_named(value):
    with pytest.raises(ValueError, match="^shape: "):
        _kernel_options.validate_shape(value)


def test_the_option_vocabulary_imports_neither_jax_nor_torch():
    code = ("import sys, verify._kernel_options as k; k.validate_shape('2,3,5'); "
            "k.validate_framework('torch'); k.validate_device('cpu', 'torch'); "
            "print('jax' in sys.modules, 'torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
