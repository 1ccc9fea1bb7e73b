"""The example kernels against torch autograd of ``F.cross_entropy`` in float64: the chunked one
matches it to 1e-12, forward and backward, with smoothing, ignored positions and every reduction;
the two planted copies differ from it exactly where the bug was planted."""

import difflib
import importlib.util
import sys
from pathlib import Path

import numpy as np

import pytest
import torch
import torch.nn.functional as F

import verify

KERNELS = Path(__file__).parent.parent / "examples" / "kernels"


def load(name):
    spec = importlib.util.spec_from_file_location(f"kernels_{name}", KERNELS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # importable by name, as a counterexample imports it
    spec.loader.exec_module(module)
    return module


GOOD, INPLACE, SMOOTHING = (load(n) for n in
                            ("chunked_ce", "chunked_ce_inplace", "chunked_ce_smoothing_bug"))  # fmt: skip


def case(shape=(2, 3, 11), dtype=torch.float64, seed=0):
    """Logits ``shape``, targets with two ignored positions, a random upstream gradient."""
    generator = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(shape, generator=generator, dtype=torch.float64)).to(dtype)
    t = torch.randint(0, shape[-1], shape[:-1], generator=generator)
    t.view(-1)[[1, min(4, t.numel() - 1)]] = -100
    return z, t, generator


def reference(z, t, g, smoothing, reduction):
    """Loss and gradient by autograd of ``F.cross_entropy`` (over ``[N, V]``)."""
    leaf = z.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(leaf.reshape(-1, z.shape[-1]), t.reshape(-1), ignore_index=-100,
                           label_smoothing=smoothing, reduction=reduction)  # fmt: skip
    if reduction == "none":
        loss = loss.reshape(t.shape)
    (grad,) = torch.autograd.grad(loss, leaf, g)
    return loss.detach(), grad


def upstream(t, reduction, generator):
    shape = t.shape if reduction == "none" else ()
    return torch.rand(shape, generator=generator, dtype=torch.float64) + 0.5


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [4, 11, 4096])  # several chunks, a partial last one; one chunk
def test_the_chunked_kernel_is_f_cross_entropy_to_1e_12(reduction, smoothing, chunk):
    z, t, generator = case()
    g = upstream(t, reduction, generator)
    options = {"label_smoothing": smoothing, "ignore_index": -100, "reduction": reduction,
               "chunk": chunk}  # fmt: skip
    want_loss, want_grad = reference(z, t, g, smoothing, reduction)
    loss = GOOD.forward(z, t, **options)
    grad = GOOD.backward(z, t, g, **options)
    assert grad.dtype == torch.float64 and grad.shape == z.shape
    assert (loss - want_loss).abs().max() <= 1e-12
    assert (grad - want_grad).abs().max() <= 1e-12
    assert (grad.reshape(-1, 11)[[1, 4]] == 0).all()  # ignored positions: no gradient


def test_the_autograd_function_gives_the_same_gradient():
    z, t, _ = case((4, 50))
    leaf = z.clone().requires_grad_(True)
    GOOD.cross_entropy(leaf, t, 0.1, -100, "mean").backward()
    _, want = reference(z, t, torch.tensor(1.0, dtype=torch.float64), 0.1, "mean")
    assert (leaf.grad - want).abs().max() <= 1e-12


def test_a_vocabulary_of_several_default_chunks():
    z, t, _ = case((3, 10_000))  # chunks of 4096, 4096, 1808
    assert GOOD.CHUNK == 4096
    g = torch.tensor(1.0, dtype=torch.float64)
    _, want = reference(z, t, g, GOOD.LABEL_SMOOTHING, GOOD.REDUCTION)
    assert (GOOD.grad_logits(z, t, g) - want).abs().max() <= 1e-12


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-7), (torch.bfloat16, 4e-3),
                                        (torch.float16, 5e-4)])  # fmt: skip
def test_low_precision_logits_are_accumulated_in_float32(dtype, tol):
    z, t, _ = case(dtype=dtype)
    g = torch.tensor(1.0, dtype=dtype)
    grad = GOOD.grad_logits(z, t, g)
    _, want = reference(z.double(), t, g.double(), 0.1, "mean")
    assert grad.dtype == dtype
    # one rounding to the dtype, at the size of the largest terms (|grad| <= 1 / rows)
    assert (grad.double() - want).abs().max() <= tol


def test_the_inplace_copy_is_right_but_destroys_the_logits():
    z, t, generator = case()
    g = upstream(t, "mean", generator)
    given = z.clone()
    grad = INPLACE.grad_logits(given, t, g)
    _, want = reference(z, t, g, 0.1, "mean")
    assert (grad - want).abs().max() <= 1e-12
    assert grad.data_ptr() == given.data_ptr()  # it is the logits
    assert not torch.equal(given, z)
    kept = z.clone()
    GOOD.grad_logits(kept, t, g)
    assert torch.equal(kept, z)  # the good one leaves them alone


def test_the_smoothing_bug_is_off_by_g_eps_over_v_at_each_counted_target():
    z, t, generator = case()
    g = upstream(t, "sum", generator)
    options = {"label_smoothing": 0.1, "reduction": "sum"}
    grad = SMOOTHING.backward(z, t, g, **options)
    _, want = reference(z, t, g, 0.1, "sum")
    off = (grad - want).reshape(-1, 11)
    rows = torch.nonzero(t.reshape(-1) != -100)[:, 0]
    targets = t.reshape(-1)[rows]
    assert torch.allclose(off[rows, targets], g * 0.1 / 11, rtol=0, atol=1e-12)
    off[rows, targets] = 0
    assert off.abs().max() <= 1e-12  # nowhere else
    # without smoothing the planted line computes the same thing: only a smoothed grid finds it
    unsmoothed = SMOOTHING.backward(z, t, g, label_smoothing=0.0, reduction="sum")
    assert (unsmoothed - reference(z, t, g, 0.0, "sum")[1]).abs().max() <= 1e-12


@pytest.mark.parametrize("name, changed", [("chunked_ce_inplace", 3),
                                           ("chunked_ce_smoothing_bug", 1)])  # fmt: skip
def test_each_planted_copy_differs_from_the_good_kernel_only_in_its_planted_lines(name, changed):
    def code(path):
        text = path.read_text()
        return text[text.index("from __future__") :].splitlines()  # the docstrings differ

    diff = [line for line in difflib.ndiff(code(KERNELS / "chunked_ce.py"), code(KERNELS / f"{name}.py"))
            if line[:2] in ("- ", "+ ")]  # fmt: skip
    removed = [line for line in diff if line.startswith("- ")]
    added = [line for line in diff if line.startswith("+ ")]
    assert len(removed) == changed and len(added) == (2 if changed == 3 else 1)
    assert all("planted" in line or "return logits" in line for line in added)


# The loss the example kernels compute (their module constants), checked by verify itself.
LOSS = verify.Loss(label_smoothing=GOOD.LABEL_SMOOTHING, ignore_index=GOOD.IGNORE_INDEX,
                   reduction=GOOD.REDUCTION, targets="indices")  # fmt: skip
GRID = {"classes": 10, "scales": 1.0, "samples": 12}


def test_the_chunked_kernel_passes_assert_gradient():
    assert verify.assert_gradient(GOOD.grad_logits, framework="torch", loss=LOSS,
                                  dtypes=("float32", "bfloat16"), **GRID) is None  # fmt: skip


def test_the_inplace_copy_is_caught_as_a_write_into_its_logits():
    with pytest.raises(AssertionError) as caught:
        verify.assert_gradient(INPLACE.grad_logits, framework="torch", loss=LOSS,
                               dtypes="float32", **GRID)  # fmt: skip
    head, *cells = str(caught.value).splitlines()
    assert head.startswith("grad_logits disagrees with autograd in 6 of 6 cells")
    explanations = [line.split(": ", 1)[1] for line in cells if line.startswith("classes 10")]
    assert len(explanations) == 6
    assert all(text.startswith(
        "writes into its input logits [16, 10] (160 of 160 elements changed, the first at "
        "(0, 0)) in place: whatever it returns, what the caller passed is overwritten"
    ) for text in explanations)  # fmt: skip


def test_the_smoothing_bug_disagrees_with_a_counterexample_that_runs(capsys):
    report = verify.check(SMOOTHING.grad_logits, framework="torch", loss=LOSS,
                          dtypes="float32", **GRID)  # fmt: skip
    assert not report.ok
    by_kind = {(c.labels, c.grad_output): c for c in report.cells}
    assert by_kind["indices", "1"].verdict == "disagree"
    assert by_kind["indices", "1"].explanation.startswith("16 of 160 elements disagree")
    assert by_kind["all-ignored", "1"].verdict == "agree"  # no target, no bug
    assert all(c.writes == () for c in report.cells)
    snippet = by_kind["indices", "1"].counterexample
    assert "from kernels_chunked_ce_smoothing_bug import grad_logits" in snippet
    namespace = {}
    exec(compile(snippet, "<counterexample>", "exec"), namespace)  # noqa: S102 - our own snippet
    got, want = np.asarray(namespace["closed_form"]), np.asarray(namespace["reference"])
    off = np.abs(got.astype(np.float64) - want)
    target = int(np.asarray(namespace["targets"])[0])
    assert off[0, target] == pytest.approx(0.1 / got.shape[1], rel=1e-5)  # g·ε/V in float32
    off[0, target] = 0
    assert off.max() < 1e-6  # and nowhere else


def test_the_readme_shows_the_loss_the_example_kernel_is_checked_with():
    readme = (KERNELS.parent.parent / "README.md").read_text()
    line = ('loss = verify.Loss(label_smoothing=0.1, ignore_index=-100, reduction="mean", '
            'targets="indices")')  # fmt: skip
    assert line in readme
    assert verify.Loss(label_smoothing=0.1, ignore_index=-100, reduction="mean",
                       targets="indices") == LOSS  # the line, as the tests build it


def test_the_chunked_kernel_on_llm_shaped_logits_with_ignored_positions():
    seen = []

    def spy(logits, targets, grad_output):
        seen.append((tuple(logits.shape), tuple(targets.shape), tuple(grad_output.shape)))
        return GOOD.grad_logits(logits, targets, grad_output)

    report = verify.check(spy, framework="torch", loss=LOSS, shape=(2, 8, 50), dtypes="float32",
                          scales=1.0)  # fmt: skip
    assert report.ok
    assert ((2, 8, 50), (2, 8), ()) in seen  # [batch, sequence, vocabulary], targets [B, T]
    cell = next(c for c in report.cells if c.labels == "ignored")
    assert cell.explanation.startswith("4 of 16 rows ignored; ")
    assert cell.worst.row == 8 * cell.worst.batch + cell.worst.position
    assert cell.reproduce.startswith("softmax-ce verify --shape 2,8,50 --dtypes float32 ")
    assert "--framework torch" in cell.reproduce and "--ignore-index -100" in cell.reproduce
