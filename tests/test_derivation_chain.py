"""check_chain: a derivation someone wrote, with planted errors found at the exact step."""

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import derivation
from derivation import _numeric
from derivation._symbols import c, k, m, p, sigma, total, y, z

S = total(sp.exp(z[m]), m, c)
ep = sp.exp(z[p])


def course_case_p():
    """The course's case k = p, as lines each equal to the one before."""
    route = derivation.derive(classes=None).routes[0]
    start = next(i for i, s in enumerate(route.steps) if s.lhs == "∂C/∂z_p")
    return [s.expr for s in route.steps[start:] if s.lhs == "∂C/∂z_p"]


def test_the_courses_case_p_lines_hold_as_a_chain():
    lines = course_case_p()
    assert len(lines) == 3
    r = derivation.check_chain(lines)
    assert r.holds and r.failed_step is None and r.counterexample is None
    assert [link.status for link in r.links] == ["symbolic", "symbolic"]


def test_dropped_minus_sign():
    lines = course_case_p()
    lines[2] = 1 - ep / S
    r = derivation.check_chain(lines)
    assert not r.holds and r.failed_step == 2


def test_exponent_slip():
    lines = course_case_p()
    lines[1] = -(S - ep) / S**2
    assert derivation.check_chain(lines).failed_step == 1


def test_wrong_index():
    lines = course_case_p() + [sp.exp(z[k]) / S - 1]
    r = derivation.check_chain(lines)
    assert r.failed_step == 3
    assert r.counterexample["k"] != r.counterexample["p"]


def test_wrong_case_split():
    # σ_k − δ_kp is right for every k; "σ_k − 1" applies the k = p case to every class.
    r = derivation.check_chain([sigma[k] - sp.KroneckerDelta(k, p), sigma[k] - 1])
    assert r.failed_step == 1
    assert r.counterexample["k"] != r.counterexample["p"]


def test_counterexample_makes_the_two_sides_differ():
    x = sp.Symbol("x", positive=True)
    r = derivation.check_chain([sp.log(x**2), 2 * sp.log(x), 3 * sp.log(x)])
    assert r.failed_step == 2
    value = sp.Float(r.counterexample["x"])
    assert set(r.counterexample) == {"x"}
    assert abs(2 * sp.log(value) - 3 * sp.log(value)) > 1e-6  # they really differ there


def test_an_expression_equal_only_numerically_is_marked_numeric():
    x = sp.Symbol("x", real=True)
    r = derivation.check_chain([sp.sin(x) ** 2 + sp.cos(x) ** 2, sp.Integer(1)])
    assert r.holds
    assert r.links[0].status == "numeric"


def test_nan_never_counts_as_equal():
    x = sp.Symbol("x", positive=True)
    r = derivation.check_chain([sp.nan * x, sp.nan * x])
    assert r.failed_step == 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=4), st.integers(1, 4))
def test_expanding_a_polynomial_always_holds_and_a_perturbation_always_fails(coeffs, power):
    a, b = sp.symbols("a b", real=True)
    poly = sum(cf * a**e for e, cf in enumerate(coeffs)) * (a + b) ** power
    assert derivation.check_chain([poly, sp.expand(poly)]).holds
    assert derivation.check_chain([poly, sp.expand(poly) + b / 7]).failed_step == 1


@pytest.mark.parametrize("bad, error, message", [
    ([sp.Integer(1)], ValueError, r"expressions: expected at least two expressions, got 1"),
    ([], ValueError, r"got 0"),
    ([sp.Integer(1), "x + 1"], TypeError, r"expressions\[1\]: expected a SymPy expression, got str"),
    ("x + 1", TypeError, r"expressions: expected a sequence of SymPy expressions, got str"),
    ([sp.Integer(1), 2], TypeError, r"expressions\[1\]: expected a SymPy expression, got int"),
])
def test_bad_input(bad, error, message):
    with pytest.raises(error, match=message):
        derivation.check_chain(bad)


# Wrong chains that an earlier checker accepted (found in review); each must fail now.

d = sp.Dummy("d", integer=True, positive=True)
i_ = sp.Symbol("i", integer=True, positive=True)
WRONG = {
    "0-based off-by-one": [sp.Sum(z[i_], (i_, 1, c)), sp.Sum(z[i_], (i_, 0, c - 1))],
    "shifted range": [sp.Sum(z[i_], (i_, 1 - c, 0)), sp.Sum(z[i_], (i_, 1, c))],
    "half an index": [z[k / 2], z[sp.floor(k / 2)]],
    "inner sum over a Dummy": [sp.Sum(z[d] * sp.Sum(z[i_], (i_, 1, d)), (d, 1, c)),
                               sp.Sum(z[d], (d, 1, c)) * z[1]],
    "lower limit dropped": [sp.Sum(z[i_], (i_, 2, c)), sp.Sum(z[i_], (i_, 1, c))],
    "vanishes only at c = 2, 3, 7": [sigma[k], sigma[k] + (c - 2) * (c - 3) * (c - 7) * z[k]],
    "log of a square of a real label": [sp.log(y[k] ** 2), 2 * sp.log(y[k])],
    "integer taken as positive": [sp.Abs(sp.Symbol("q", integer=True)),
                                  sp.Symbol("q", integer=True)],
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_chain_found_in_review_fails(name):
    r = derivation.check_chain(WRONG[name])
    assert r.failed_step == 1, r.links[0].detail


def test_an_index_outside_one_to_c_is_reported_not_wrapped():
    r = derivation.check_chain([z[1], z[c + 1]])
    assert r.failed_step == 1
    assert "outside 1.." in r.links[0].detail


def test_a_concrete_index_is_checked_at_a_c_that_holds_it():
    # z_3 implies c >= 3: the two differ as entries, never as "index outside 1..1".
    r = derivation.check_chain([z[1], z[3]])
    assert r.failed_step == 1 and "outside" not in r.links[0].detail
    assert "z[3]" in r.counterexample


def test_sums_over_several_indices_are_evaluated():
    j_ = sp.Symbol("j", integer=True, positive=True)
    double = sp.Sum(z[i_] * z[j_], (i_, 1, c), (j_, 1, c))
    assert derivation.check_chain([double, sp.Sum(z[i_], (i_, 1, c)) ** 2]).holds
    assert derivation.check_chain([double, sp.Sum(z[i_] ** 2, (i_, 1, c))]).failed_step == 1


def test_a_check_with_no_point_is_not_a_silent_pass():
    from derivation import _check
    from derivation._assumptions import N_NOT_P

    n_ = sp.Symbol("n", integer=True, positive=True)
    outcome = _check.equal(sigma[n_], sigma[n_] + 5, 1, (N_NOT_P,))
    assert outcome.status == "failed" and "no point satisfies" in outcome.detail
    vacuous_but_proved = _check.equal(sigma[n_], sigma[n_], 1, (N_NOT_P,))
    assert vacuous_but_proved.status == "symbolic" and "none was evaluated" in (
        vacuous_but_proved.detail)


def test_an_off_band_hessian_error_at_large_c_is_caught():
    from derivation import _check

    j_ = sp.Symbol("j", integer=True, positive=True)
    right = sigma[k] * sigma[j_]
    assert _check.equal(right, right + sp.KroneckerDelta(j_, k + 5), 20).status == "failed"
    assert _check.equal(right, right + sp.KroneckerDelta(j_, 20) * sp.KroneckerDelta(k, 1),
                        20).status == "failed"


def test_numeric_checks_sample_c_from_one():
    assert _numeric.DIGITS >= 30 and _numeric.SIZES[0] == 1
