"""``verify.check(..., framework=...)`` and ``verify.assert_gradient`` on torch and NumPy kernels
of the plain loss (probability targets, a sum): a right kernel holds, one that writes into its
logits is reported as such whatever it returns, a wrong one fails with a counterexample that runs.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import verify

GRID = {"classes": 10, "scales": 1.0, "labels": "onehot", "samples": 8}


def torch_kernel(logits, targets, grad_output):
    """σ(z)·Σy − y, in float32 for half types, times grad_output: the plain loss's gradient."""
    acc = torch.float32 if logits.dtype in (torch.bfloat16, torch.float16) else logits.dtype
    z, y = logits.to(acc), targets.to(acc)
    p = torch.softmax(z, dim=-1) * y.sum(dim=-1, keepdim=True) - y
    return (grad_output.to(acc) * p).to(logits.dtype)


def torch_overwrites(logits, targets, grad_output):
    """The right values, written over the logits (returns them)."""
    return logits.copy_(torch_kernel(logits, targets, grad_output))


def numpy_off(logits, targets, grad_output):
    """0.9·σ(z) − y: wrong wherever σ is not tiny."""
    z = logits.astype(np.float32)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return (0.9 * p - targets.astype(np.float32)).astype(logits.dtype)


@pytest.fixture(scope="module")
def overwritten():
    return verify.check(torch_overwrites, framework="torch", dtypes="float32", **GRID)


def test_a_right_torch_kernel_holds():
    report = verify.check(torch_kernel, framework="torch", dtypes="float64,bfloat16", **GRID)
    assert report.claim == "torch_kernel"
    assert [c.verdict for c in report.cells] == ["agree"] * 2
    assert report.cells[0].max_ulp <= 4  # float64 crossed to torch and back unrounded
    assert all(c.writes == () for c in report.cells)
    assert verify.assert_gradient(torch_kernel, framework="torch", dtypes="bfloat16", **GRID) is None


def test_a_kernel_that_writes_into_its_logits_disagrees_whatever_it_returns(overwritten):
    for cell in overwritten.cells:
        (write,) = cell.writes
        rows = write.shape[0]  # the chunk the kernel was called on: the cell's rows
        assert rows == cell.rows and write.shape == (rows, 10)
        assert (write.input, write.changed, write.elements, write.index) == (
            "logits", rows * 10, rows * 10, (0, 0))
        assert cell.verdict == "disagree"
        assert cell.explanation == (
            f"writes into its input logits [{rows}, 10] ({rows * 10} of {rows * 10} elements "
            "changed, the first at (0, 0)) in place: whatever it returns, what the caller "
            "passed is overwritten"
        )
        assert cell.agree_fraction == 1.0  # its values are right
    cell = json.loads(overwritten.to_json())["cells"][0]
    assert cell["writes"] == [{"input": "logits", "shape": [rows, 10], "changed": rows * 10,
                               "elements": rows * 10, "index": [0, 0]}]  # fmt: skip


def test_the_write_is_shown_by_a_snippet_that_runs(overwritten):
    snippet = overwritten.cells[0].counterexample
    assert "from test_kernels_check import torch_overwrites" in snippet
    with pytest.raises(AssertionError, match="the kernel wrote into its logits"):
        exec(compile(snippet, "<counterexample>", "exec"), {})  # noqa: S102 - our own snippet


def test_assert_gradient_raises_with_cells_and_a_runnable_counterexample():
    with pytest.raises(AssertionError) as caught:
        verify.assert_gradient(numpy_off, framework="numpy", dtypes="bfloat16", **GRID)
    message = str(caught.value)
    head, *rest = message.splitlines()
    assert head == ("numpy_off disagrees with autograd in 1 of 1 cells (seed 0; bfloat16 rtol "
                    "0.016 atol 1e-05)")  # fmt: skip
    assert rest[0].startswith("classes 10 · bfloat16 · scale 1 · onehot: ")
    assert "elements disagree" in rest[0]
    snippet = message[message.index("# Falsifying example") :]
    assert "logits = np.array([[0.0, 0.0]], dtype=jnp.bfloat16)" in snippet
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        exec(compile(snippet, "<counterexample>", "exec"), {})  # noqa: S102 - our own snippet


def torch_ignores_grad_output(logits, targets, grad_output):
    """Right at grad_output 1, which the plain loss's own upstream gradient is."""
    return torch_kernel(logits, targets, torch.ones_like(grad_output))


def numpy_ignores_grad_output(logits, targets, grad_output):
    return torch_ignores_grad_output(*map(torch.from_numpy, (logits, targets, grad_output))).numpy()


def jax_ignores_grad_output(z, y, grad_output):
    import jax

    return jax.nn.softmax(z, axis=-1) * y.sum(axis=-1, keepdims=True) - y


@pytest.mark.parametrize("kernel, framework", [
    (torch_ignores_grad_output, "torch"), (numpy_ignores_grad_output, "numpy"),
    (jax_ignores_grad_output, "jax"),
])
def test_a_kernel_that_ignores_grad_output_fails_for_the_plain_loss_too(kernel, framework):
    """The plain loss's upstream gradient is 1, so a kernel is called at 2 and its gradient
    halved (exact): one that ignores grad_output is off by a factor of two, and its
    counterexample, called the same way, fails."""
    report = verify.check(kernel, framework=framework, dtypes="float32", **GRID)
    (cell,) = report.cells
    assert cell.verdict == "disagree" and 2 * cell.worst.closed_form == cell.worst.autograd
    with pytest.raises(AssertionError):
        exec(compile(cell.counterexample, "<counterexample>", "exec"), {})  # noqa: S102


def test_a_kernel_is_judged_on_the_values_it_gives_at_grad_output_1():
    """Halving the gradient at grad_output 2 is exact: the same bits as a call at 1."""
    report = verify.check(torch_kernel, framework="torch", dtypes="bfloat16,float16", **GRID)
    jax_form = verify.check(lambda z, y: jax_softmax_minus(z, y), dtypes="bfloat16,float16", **GRID)
    for ours, theirs in zip(report.cells, jax_form.cells, strict=True):
        assert ours.verdict == "agree" and ours.max_ulp == theirs.max_ulp


def jax_softmax_minus(z, y):
    """torch_kernel in JAX: float32 inside, in the logits' dtype out."""
    import jax
    import jax.numpy as jnp

    z32, y32 = z.astype(jnp.float32), y.astype(jnp.float32)
    out = jax.nn.softmax(z32, axis=-1) * y32.sum(axis=-1, keepdims=True) - y32
    return out.astype(z.dtype)


def torch_drops_the_tail(logits, targets, grad_output):
    """Blocks of 16 rows, the way a tiled kernel runs; a last partial block is left at zero."""
    out = torch.zeros_like(logits)
    whole = logits.shape[0] // 16 * 16
    out[:whole] = torch_kernel(logits[:whole], targets[:whole], grad_output)
    return out


def test_a_kernel_sees_the_cells_own_rows_so_a_dropped_tail_is_found():
    """Small batches are padded to share compiled programs, but never a kernel's: 8 samples and
    4 adversarial rows are a call of 12 rows, a partial block (padded to 64 it was whole)."""
    shapes = []

    def logged(logits, targets, grad_output):
        shapes.append(tuple(logits.shape))
        return torch_drops_the_tail(logits, targets, grad_output)

    report = verify.check(logged, framework="torch", dtypes="float32", **GRID)
    assert (12, 10) in shapes and all(rows <= 12 for rows, _ in shapes)
    assert report.cells[0].verdict == "disagree"


def torch_nan_in_the_middle(logits, targets, grad_output):
    """Right, except the middle row of a batch of three rows or more, which is NaN: wrong only
    for its batch."""
    out = torch_kernel(logits, targets, grad_output)
    if logits.shape[0] >= 3:
        out[logits.shape[0] // 2] = float("nan")
    return out


def test_a_kernels_batch_counterexample_is_written_in_its_framework():
    """No row fails alone, so the batch is shrunk; its snippet calls the kernel in torch, as the
    check does (it was a JAX call of two arguments, which raised TypeError)."""
    (cell,) = verify.check(torch_nan_in_the_middle, framework="torch", dtypes="float32",
                           **GRID).cells
    snippet = cell.counterexample
    assert "import torch" in snippet and "of the cell's rows" in snippet
    with pytest.raises(AssertionError, match="not close"):
        exec(compile(snippet, "<counterexample>", "exec"), {})  # noqa: S102 - our own snippet


def torch_scaled(logits, targets, grad_output, factor):
    return factor * torch_kernel(logits, targets, grad_output)


torch_nine_tenths = functools.partial(torch_scaled, factor=0.9)


def test_a_partial_kept_in_a_module_is_named_by_its_name_there():
    """A functools.partial is neither a function nor named by its __module__/__qualname__
    ('functools:partial'): the reproduce line and the snippet name it where it is kept."""
    (cell,) = verify.check(torch_nine_tenths, framework="torch", dtypes="float32", **GRID).cells
    assert cell.verdict == "disagree"
    assert "--closed-form test_kernels_check:torch_nine_tenths" in cell.reproduce
    assert "from test_kernels_check import torch_nine_tenths" in cell.counterexample
    with pytest.raises(AssertionError, match="not close"):
        exec(compile(cell.counterexample, "<counterexample>", "exec"), {})  # noqa: S102


def test_a_kernel_that_raises_is_a_value_error_before_anything_is_measured():
    calls = []

    def broken(logits, targets, grad_output):
        calls.append(tuple(logits.shape))
        raise RuntimeError("no kernel for this dtype")

    with pytest.raises(ValueError, match=r"^closed_form: broken raised RuntimeError: no kernel "
                       r"for this dtype on torch inputs \(logits torch.float16\[2, 10\]"):
        verify.assert_gradient(broken, framework="torch", dtypes="float16", **GRID)
    assert calls == [(2, 10)]  # the probe's two rows, once


def torch_fails_past_four_rows(logits, targets, grad_output):
    """Passes the two-row probe, raises on the cell's batch."""
    if logits.shape[0] > 4:
        raise RuntimeError("no kernel for this many rows")
    return torch_kernel(logits, targets, grad_output)


def test_a_kernel_that_raises_on_a_cells_batch_is_that_cells_finding():
    """As with a loss variant: past the probe, what a kernel raises on a batch is a disagree
    cell that says so (the report is written, the exit code is 1), not an error of the run."""
    report = verify.check(torch_fails_past_four_rows, framework="torch", dtypes="float32,bfloat16",
                          **GRID)
    assert [c.verdict for c in report.cells] == ["disagree"] * 2 and not report.ok
    for cell in report.cells:
        assert cell.explanation.startswith("torch_fails_past_four_rows raised RuntimeError: no "
                                           "kernel for this many rows on torch inputs (logits ")
        assert cell.explanation.endswith(" (on this batch)") and cell.counterexample is None


def test_a_kernels_shrinking_stops_once_the_checks_budget_is_spent(monkeypatch):
    """Each candidate a shrinker tries is a call of the user's kernel, which may be slow: past
    the check's budget of the kernel's own time, shrinking stops and the cell says so (the
    budget 0 here: none is shrunk)."""
    from verify import _batch_shrink

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"calls {_batch_shrink.KERNEL_SHRINK_SECONDS:.0f} s of the kernel's own time" in " ".join(
        readme.split())
    monkeypatch.setattr(_batch_shrink, "KERNEL_SHRINK_SECONDS", 0.0)
    report = verify.check(numpy_off, framework="numpy", dtypes="float32,bfloat16", **GRID)
    for cell in report.cells:
        assert cell.verdict == "disagree" and cell.counterexample is None
        assert cell.explanation.endswith("no counterexample: not shrunk: the check spent the 0 s "
                                         "it gives the kernel's calls while shrinking")


def test_a_batch_of_candidates_stops_calling_a_slow_kernel_once_the_budget_is_spent(
        monkeypatch):
    """A shrinker's batch of 64 one-row candidates is 64 calls of the kernel: a kernel taking
    3 s a call was called for minutes past the 20 s budget. Past it, no call is made."""
    import time as clock

    from verify import _batch_shrink

    calls = []

    def slow_off(logits, targets, grad_output):
        calls.append(logits.shape)
        clock.sleep(0.02)
        return numpy_off(logits, targets, grad_output)

    monkeypatch.setattr(_batch_shrink, "KERNEL_SHRINK_SECONDS", 0.1)
    report = verify.check(slow_off, framework="numpy", dtypes="float32", **GRID)
    (cell,) = report.cells
    assert cell.verdict == "disagree" and cell.counterexample is None
    one_row = [shape for shape in calls if shape[0] == 1]  # the shrinker's candidates
    assert 0 < len(one_row) <= 0.1 / 0.02 + 1, len(one_row)


def torch_fails_in_half_past_four_rows(logits, targets, grad_output):
    if logits.dtype == torch.float16 and logits.shape[0] > 4:
        raise RuntimeError("no half kernel for this many rows")
    return torch_kernel(logits, targets, grad_output)


def test_what_a_kernel_raises_in_one_dtype_is_that_dtypes_finding_only():
    report = verify.check(torch_fails_in_half_past_four_rows, framework="torch",
                          dtypes="float32,float16", **GRID)
    assert [c.verdict for c in report.cells] == ["agree", "disagree"]
    assert "torch.float16[12, 10]" in report.cells[1].explanation


def torch_off_and_only_from_five_classes(logits, targets, grad_output):
    """0.9 of the gradient, and no kernel under five classes (as a vocabulary kernel may be)."""
    if logits.shape[-1] < 5:
        raise RuntimeError("vocabulary below 5 not supported")
    return torch_scaled(logits, targets, grad_output, 0.9)


def test_a_shrunk_candidate_the_kernel_cannot_take_is_skipped_not_the_counterexample():
    """The shrinker tries 2, 3, 4 classes first; the kernel raises there. Those candidates are
    not evaluated (as a JAX closed form's that do not trace), and every later one is still
    called (the first error made them all NaN): the counterexample shows the 0.9."""
    (cell,) = verify.check(torch_off_and_only_from_five_classes, framework="torch",
                           dtypes="float32", **GRID).cells
    assert cell.verdict == "disagree" and "logits = torch.tensor([[" in cell.counterexample
    with pytest.raises(AssertionError, match="not close"):
        exec(compile(cell.counterexample, "<counterexample>", "exec"), {})  # noqa: S102


def torch_only_at_grad_output_1(logits, targets, grad_output):
    if float(grad_output) != 1.0:
        raise RuntimeError("grad_output other than 1 not supported")
    return torch_kernel(logits, targets, grad_output)


def test_the_probe_calls_a_kernel_as_the_check_does():
    """At grad_output 2: a kernel that cannot take it is one error before anything is measured,
    as the README says, not a disagreeing cell per batch."""
    with pytest.raises(ValueError, match="grad_output other than 1 not supported"):
        verify.check(torch_only_at_grad_output_1, framework="torch", dtypes="float32", **GRID)


def _exits(*args):
    raise SystemExit(3)


@pytest.mark.parametrize("framework, loss", [
    ("torch", None), ("numpy", None), ("jax", None), ("jax", verify.Loss(label_smoothing=0.1)),
])
def test_a_function_that_calls_sys_exit_is_a_bad_closed_form_not_the_end(framework, loss):
    """sys.exit in the user's function is an exception like any other: the CLI answers with
    its one error line and exit code 2, not with the function's exit code and no word."""
    with pytest.raises(ValueError, match=r"^closed_form: _exits raised SystemExit: 3 on "):
        verify.check(_exits, framework=framework, loss=loss, dtypes="float32", **GRID)


def exits_when_shrunk(z, y):
    """Wrong (0.9 σ − y) at the grid's 10 classes; sys.exit at the shrinker's fewer classes."""
    import jax

    if z.shape[-1] < 5:
        raise SystemExit(3)
    return 0.9 * jax.nn.softmax(z, axis=-1) - y


def test_sys_exit_wherever_the_check_calls_the_function_is_a_value_error():
    with pytest.raises(ValueError, match=r"^closed_form: exits_when_shrunk raised SystemExit: 3 "
                       r"during the check$"):
        verify.check(exits_when_shrunk, dtypes="float32", **GRID)


def test_bad_framework_arguments_are_errors_not_failures():
    with pytest.raises(ValueError, match="^framework: unknown framework 'tensorflow'"):
        verify.assert_gradient(torch_kernel, framework="tensorflow", **GRID)
    with pytest.raises(TypeError, match="progress"):
        verify.assert_gradient(torch_kernel, framework="torch", progress=print, **GRID)


def test_a_torch_snippet_holds_the_kernel_to_the_float64_gradient():
    """The check judges against jax.grad and the float64 gradient; the torch snippet held the
    kernel to PyTorch's own autograd in the dtype, which in bfloat16 can be farther off: the
    snippet of a kernel that is PyTorch's autograd passed where its cell disagreed."""
    from verify._kernel_snippet import kernel_snippet
    from verify._options import Tolerance

    snippet = kernel_snippet(torch_kernel, framework="torch", device="cpu", dtype="bfloat16",
                             z=[0.5, -1.0], y=[1.0, 0.0], tolerance=Tolerance(0.016, 1e-05),
                             origin="a test")
    assert snippet.rstrip().endswith(
        "torch.testing.assert_close(kernel.double(), exact, rtol=0.016, atol=1e-05)")
    namespace: dict = {}
    exec(compile(snippet.replace("from test_kernels_check import torch_kernel", ""), "s", "exec"),
         {"torch_kernel": torch_kernel, **namespace})  # a right kernel's snippet runs clean
