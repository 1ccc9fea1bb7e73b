"""The theory the judge evaluates is the derivation's, lambdified: ``verify._theory_plain`` is
generated code, and must be what ``derivation.theory()`` gives today."""

import numpy as np
import sympy

import derivation
from verify import _reference, _theory_plain, _theory_source


def test_the_kept_theory_is_what_the_derivation_gives_today():
    assert _theory_source.TARGET.read_text() == _theory_source.source(), (
        "verify/_theory_plain.py is stale: run python -m verify._theory_source"
    )


def test_the_kept_functions_agree_bit_for_bit_with_lambdify():
    theory = derivation.theory()
    symbols = (theory.sigma, theory.label, theory.label_sum)
    rng = np.random.default_rng(8)
    sigma, label = rng.random((3, 5)), rng.normal(size=(3, 5))
    label_sum = np.array([[0.0], [1.0], [-2.5]])
    for name, expression in _theory_source.expressions().items():
        expected = sympy.lambdify(symbols, expression, modules="numpy")(sigma, label, label_sum)
        got = getattr(_theory_plain, name)(sigma, label, label_sum)
        np.testing.assert_array_equal(got, expected)
    assert _reference.plain().residual is _theory_plain.residual


def test_the_residual_is_the_derivations_gradient_minus_sigma_minus_y():
    # (Σy − 1)·σ at Σy = 3, σ = 0.25: 0.5; zero where the labels sum to one.
    assert _theory_plain.residual(np.array(0.25), np.array(0.0), np.array(3.0)) == 0.5
    assert _theory_plain.residual(np.array(0.25), np.array(0.0), np.array(1.0)) == 0.0
