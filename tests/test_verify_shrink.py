"""Counterexamples: a disagreement shrinks to the fewest classes and the simplest inputs that still
fail, printed as a snippet that runs and fails the way the cell did."""

import jax
import jax.numpy as jnp
import pytest

import verify

ONE_CELL = dict(dtypes="float32", scales=1.0, labels="onehot", samples=16)


def wrong_from_the_fifth_class(z, y):
    """σ − y, plus 1/2 at the fifth class: fails only from c = 5 on."""
    gradient = jax.nn.softmax(z, axis=-1) - y
    return gradient.at[:, 4].add(0.5) if z.shape[-1] >= 5 else gradient


def flipped(z, y):
    return y - jax.nn.softmax(z, axis=-1)


def unshifted(z, y):
    e = jnp.exp(z)
    return e / jnp.sum(e, axis=-1, keepdims=True) - y


def run(snippet):
    exec(compile(snippet, "<counterexample>", "exec"), {})  # noqa: S102 - our own snippet


def only_cell(report):
    (cell,) = report.cells
    assert cell.verdict == "disagree"
    return cell


def test_a_planted_failure_shrinks_to_the_smallest_class_count_that_fails():
    cell = only_cell(verify.check(wrong_from_the_fifth_class, classes=12, **ONE_CELL))
    snippet = cell.counterexample
    assert "z = jnp.array([[0.0, 0.0, 0.0, 0.0, 0.0]], dtype=jnp.float32)" in snippet
    assert "y = jnp.array([[1.0, 0.0, 0.0, 0.0, 0.0]], dtype=jnp.float32)" in snippet
    assert "from test_verify_shrink import wrong_from_the_fifth_class" in snippet
    with pytest.raises(AssertionError, match="the closed form disagrees with jax.grad"):
        run(snippet)


def test_a_flipped_sign_shrinks_to_two_classes_and_the_simplest_inputs():
    cell = only_cell(verify.check(flipped, classes=10, **ONE_CELL))
    lines = cell.counterexample.splitlines()
    assert lines[0] == (
        f"# Falsifying example, shrunk from row {cell.worst.row} of the cell classes=10, "
        "dtype=float32, scale=1, labels=onehot, seed=0"
    )
    assert "z = jnp.array([[0.0, 0.0]], dtype=jnp.float32)" in lines
    assert "y = jnp.array([[1.0, 0.0]], dtype=jnp.float32)" in lines
    assert "closed_form = flipped(z, y)" in lines
    assert lines[-1] == (
        "assert jnp.allclose(closed_form, autograd, rtol=1.3e-06, atol=1e-05), "
        '"the closed form disagrees with jax.grad"'
    )
    with pytest.raises(AssertionError):
        run(cell.counterexample)


def test_an_overflow_shrinks_to_a_logit_that_overflows():
    cell = only_cell(verify.check(unshifted, classes=10, dtypes="float32", scales=100.0,
                                  labels="soft", samples=16))
    assert "z = jnp.array([[100.0, 0.0]], dtype=jnp.float32)" in cell.counterexample
    namespace = {}
    with pytest.raises(AssertionError):
        exec(compile(cell.counterexample, "<counterexample>", "exec"), namespace)  # noqa: S102
    assert bool(jnp.isnan(namespace["closed_form"]).any())


def test_a_lambda_is_written_into_the_snippet():
    cell = only_cell(verify.check(lambda z, y: 2 * (jax.nn.softmax(z, axis=-1) - y), classes=3,
                                  **ONE_CELL))
    assert "closed_form_fn = lambda z, y: 2 * (jax.nn.softmax(z, axis=-1) - y)" in (
        cell.counterexample)
    with pytest.raises(AssertionError):
        run(cell.counterexample)


def test_cells_that_agree_have_no_counterexample():
    report = verify.check(classes=3, dtypes=("float32", "bfloat16"), scales=1.0, samples=8)
    assert all(cell.counterexample is None for cell in report.cells)
