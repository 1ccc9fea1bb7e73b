"""The pieces a verdict is made of: ULPs, the elementwise rule, and the verdict order."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify import TOLERANCES, _dtypes, _judge, _rule
from verify._measure import Measurement


# --- ULPs ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "dtype, x, expected",
    [
        ("float32", 1.0, 2.0**-23),
        ("float32", 1.5, 2.0**-23),
        ("float32", 0.3, 2.0**-25),
        ("float32", 0.0, 2.0**-149),
        ("float32", -2.0, 2.0**-22),
        ("float16", 1.0, 2.0**-10),
        ("float16", 1000.0, 0.5),
        ("float16", 1e-7, 2.0**-24),
        ("bfloat16", 1.0, 2.0**-7),
        ("bfloat16", 0.3, 2.0**-9),
        ("float64", 1.0, 2.0**-52),
        ("float64", 0.0, 2.0**-1022),  # not the subnormal 2**-1074: XLA flushes it to zero
    ],
)
def test_ulp_exact_values(dtype, x, expected):
    facts = _dtypes.facts(dtype)
    with jax.enable_x64(True):
        assert float(_dtypes.ulp(jnp.float64(x), facts.eps, facts.tiny)) == expected


def _next_up(value, dtype):
    """The next representable number above a positive ``value`` of ``dtype``, by its bits."""
    unsigned = np.uint16 if np.dtype(dtype).itemsize == 2 else np.uint32
    bits = np.array([value], dtype=dtype).view(unsigned)
    return (bits + 1).view(dtype)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e-4, max_value=6e4, allow_subnormal=False))
def test_ulp_is_the_spacing_of_the_dtype(dtype, x):
    value = np.array([x]).astype(dtype)[0]
    spacing = float(_next_up(value, dtype)) - float(value)
    facts = _dtypes.facts(np.dtype(dtype).name)
    with jax.enable_x64(True):
        assert float(_dtypes.ulp(jnp.float64(float(value)), facts.eps, facts.tiny)) == spacing


def test_far_gap_saturates_the_softmax_but_stays_representable():
    for name in ("float64", "float32", "bfloat16", "float16"):
        facts = _dtypes.facts(name)
        for classes in (2, 1000):
            gap = facts.far_gap(classes)
            assert classes * np.exp(-gap) < facts.eps  # the rest sum below the resolution of 1
            assert gap < facts.max / 1000
    assert _dtypes.facts("float32").far_gap(10) == round(np.log(10) + 1.5 * np.log(2**23), 1)


# --- the elementwise rule --------------------------------------------------------------------

finite = st.floats(min_value=-10.0, max_value=10.0)


def _elementwise(cf, ag, ex, dtype="bfloat16"):
    facts = _dtypes.facts(dtype)
    tolerance = TOLERANCES[dtype]
    z = jnp.zeros((1, len(cf)), jnp.float64)
    y = jnp.full((1, len(cf)), 1.0 / len(cf), jnp.float64)
    row = lambda values: jnp.asarray([values], jnp.float64)  # noqa: E731
    return _rule.elementwise(row(cf), row(ag), row(ex), z, y, facts, tolerance.rtol, tolerance.atol)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=4))
def test_a_closed_form_equal_to_autograd_or_to_the_exact_gradient_agrees(pairs):
    ag = [a for a, _ in pairs]
    ex = [e for _, e in pairs]
    with jax.enable_x64(True):
        same_as_autograd = _elementwise(ag, ag, ex)
        same_as_exact = _elementwise(ex, ag, ex)
        assert bool(jnp.all(same_as_autograd.within & same_as_autograd.agree))
        assert bool(jnp.all(same_as_exact.agree))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=4))
def test_within_tolerance_implies_agreement_and_the_corrected_rule_agrees_without_residual(
    triples,
):
    cf, ag, ex = (list(column) for column in zip(*triples, strict=True))
    with jax.enable_x64(True):
        judged = _elementwise(cf, ag, ex)  # labels that sum to one: no residual is predicted
        assert bool(jnp.all(~judged.within | judged.agree))
        assert bool(jnp.all(judged.agree == judged.agree_corrected))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_closed_form_that_is_not_finite_never_agrees(bad):
    with jax.enable_x64(True):
        judged = _elementwise([bad, 0.5], [0.25, 0.5], [0.25, 0.5])
        assert judged.agree.tolist() == [[False, True]]
        assert judged.agree_corrected.tolist() == [[False, True]]
        autograd_nan = _elementwise([0.25, 0.5], [bad, 0.5], [0.25, 0.5])
        assert autograd_nan.agree.tolist() == [[False, True]]


def test_the_rounding_allowance_is_four_eps_of_the_terms():
    # sigma = 1/2, y = 1/2, sum(y) = 1: the terms are 1/2 and 1/2, the allowance 4 eps * 1.
    eps = _dtypes.facts("bfloat16").eps
    with jax.enable_x64(True):
        inside = _elementwise([0.0, 3.9 * eps], [0.0, 0.0], [0.0, 0.0])
        outside = _elementwise([0.0, 4.1 * eps], [0.0, 0.0], [0.0, 0.0])
    assert inside.agree.tolist() == [[True, True]]
    assert outside.agree.tolist() == [[True, False]]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(),
                          st.floats(min_value=0, max_value=1e300)), min_size=2, max_size=6))
def test_the_rank_puts_non_finite_then_disagreeing_then_agreeing_elements_first(elements):
    from verify._measure import _rank

    judged, finite, agree, ulps = (np.array(column) for column in zip(*elements, strict=True))
    with jax.enable_x64(True):
        rank = np.asarray(_rank(judged, finite, agree, jnp.asarray(ulps, jnp.float64)))

    def key(i):  # the same order, written plainly
        if not judged[i]:
            return (0, 0.0)
        if not finite[i]:
            return (4, 0.0)
        return (3, ulps[i]) if not agree[i] else (2, ulps[i])

    for i in range(len(elements)):
        for j in range(len(elements)):
            if key(i) > key(j):
                assert rank[i] >= rank[j]  # >=: -1/(1 + e) rounds for huge e


# --- the verdict order -----------------------------------------------------------------------

AGREEING = Measurement(
    elements=100.0, unjudged=0.0, overflow=0.0, nonfinite_cf=0.0, nonfinite_ag=0.0,
    within=100.0, agree=100.0, agree_corrected=100.0, checked_rows=8.0, residual_dot=0.0,
    residual_norm=0.0, max_abs_input=3.0, max_abs_err=0.0, max_rel_err=0.0, max_ulp=0.0,
    autograd_max_ulp=0.0, label_sum_max=1.0, label_sum_miss=0.0, forward_mode=1e-16,
    finite_difference=1e-10, label_sum_min=1.0, worst_rank=-0.5, worst_index=0.0,
    worst_cf=0.0, worst_ag=0.0, worst_ex=0.0,
)  # fmt: skip


def verdict(normalized=True, **changes):
    m = dataclasses.replace(AGREEING, **changes)
    return _judge.judge(m, "bfloat16", 3.39e38, TOLERANCES["bfloat16"], normalized)


def test_every_element_within_tolerance_agrees():
    assert verdict() == _judge.Judgement(
        "agree", "every element within rtol 0.016, atol 1e-05 of jax.grad"
    )


def test_overflow_is_undefined_before_anything_else():
    got = verdict(overflow=1.0, max_abs_input=4e38, nonfinite_cf=5.0)
    assert got.verdict == "undefined"
    assert got.explanation == (
        "inputs overflow bfloat16 on the cast (|values| up to 4e+38 > max 3.39e+38); neither side "
        "is judged"
    )


def test_a_failing_autograd_check_is_a_disagreement_about_the_reference():
    got = verdict(finite_difference=1e-3)
    assert got.verdict == "disagree" and "the reference itself is in doubt" in got.explanation


def test_nan_on_either_side_is_a_disagreement():
    assert verdict(nonfinite_cf=3.0).explanation == (
        "the closed form is NaN or inf at 3 of 100 elements where the float64 gradient is finite"
    )
    assert verdict(nonfinite_ag=1.0).explanation.startswith("bfloat16 jax.grad is NaN or inf")


def test_the_predicted_residual_makes_a_cell_expected():
    got = verdict(within=87.0, agree=90.0, residual_dot=0.98, residual_norm=1.0,
                  label_sum_miss=2.1e-3)
    assert got == _judge.Judgement(
        "expected",
        "labels rounded to bfloat16 miss Σy = 1 by up to 0.0021; the closed form misses the "
        "gradient by (Σy − 1)·σ as derived (measured/predicted residual 0.98)",
    )
    unnormalized = verdict(False, within=3.0, agree=3.0, residual_dot=1.0, residual_norm=1.0,
                           label_sum_min=0.14, label_sum_max=7.3, label_sum_miss=6.3)
    assert unnormalized.explanation.startswith("labels sum to 0.14–7.3, not 1;")


@pytest.mark.parametrize("match", [0.2, 3.0])
def test_a_residual_that_does_not_match_the_prediction_is_not_expected(match):
    got = verdict(within=87.0, agree=87.0, residual_dot=match, residual_norm=1.0,
                  label_sum_miss=2.1e-3)
    assert got.verdict == "disagree"
    assert got.explanation.startswith(
        "13 of 100 elements disagree, not as (Σy − 1)·σ predicts"
    )


def test_agreement_beyond_tolerance_is_no_farther_than_autograd():
    got = verdict(within=88.0)
    assert got == _judge.Judgement(
        "agree",
        "88.0% of elements within tolerance of jax.grad, the rest no farther from the float64 "
        "gradient than bfloat16 jax.grad",
    )


# Each explanation that names the predicted residual, against the cells that reach it: a ratio
# is stated only where the data resolve the prediction (jax.grad's own rounding, fitted like the
# residual, leaves it a standard error of at most 0.25); elsewhere the text says the labels'
# rounding is below what the dtype can show. 99 · 0.3² = 8.91: a standard error of 0.3.
UNRESOLVED = {"autograd_noise": 8.91, "residual_norm": 1.0}


def test_the_resolution_is_the_standard_error_of_the_fitted_ratio():
    m = dataclasses.replace(AGREEING, residual_norm=4.0, autograd_noise=99 * 4 * 0.25**2)
    assert _judge.resolution(m) == 0.25 and _judge.resolved(m)
    assert not _judge.resolved(dataclasses.replace(m, autograd_noise=99 * 4 * 0.26**2))
    assert _judge.resolution(AGREEING) is None and not _judge.resolved(AGREEING)  # no residual


def test_a_residual_the_dtype_does_not_resolve_is_said_so():
    got = verdict(within=90.0, residual_dot=6.5, label_sum_miss=9.8e-4, **UNRESOLVED)
    assert got.verdict == "agree"
    assert got.explanation.endswith(
        "; labels rounded to bfloat16 miss Σy = 1 by up to 0.00098, a residual (Σy − 1)·σ below "
        "what bfloat16 can show here"
    )


def test_a_resolved_residual_in_an_agreeing_cell_is_measured():
    got = verdict(within=90.0, residual_dot=6.5, residual_norm=1.0, label_sum_miss=9.8e-4)
    assert got.verdict == "agree"
    assert got.explanation.endswith(
        "; labels rounded to bfloat16 miss Σy = 1 by up to 0.00098, a residual no larger than "
        "bfloat16 jax.grad's own error, up to rounding (measured/predicted 6.5)"
    )


def test_an_expected_cell_whose_residual_is_too_small_to_measure_states_no_ratio():
    got = verdict(within=87.0, agree=90.0, residual_dot=0.98, label_sum_miss=2.1e-3, **UNRESOLVED)
    assert got == _judge.Judgement(
        "expected",
        "labels rounded to bfloat16 miss Σy = 1 by up to 0.0021; the closed form misses the "
        "gradient by (Σy − 1)·σ as derived: with it added back every element agrees (a residual "
        "below what bfloat16 resolves here, too small to measure)",
    )


def test_a_residual_too_small_to_measure_is_no_finding_where_every_element_agrees():
    """σ·Σy − y computed in float32 agrees everywhere; an unresolved residual then 'matches'
    by chance, which made the cell 'expected' for a residual it does not have."""
    got = verdict(within=97.0, agree=100.0, residual_dot=1.4, label_sum_miss=6.1e-4,
                  **UNRESOLVED)
    assert got.verdict == "agree"
    assert got.explanation.endswith("a residual (Σy − 1)·σ below what bfloat16 can show here")


def test_a_disagreement_the_labels_rounding_cannot_show_says_so_without_a_ratio():
    """The issue's example: labels that sum to one up to rounding, a wrong closed form, and a
    'measured/predicted residual -8e+06' that meant nothing."""
    got = verdict(within=87.0, agree=87.0, residual_dot=-8e6, label_sum_miss=2.1e-3,
                  **UNRESOLVED)
    assert got == _judge.Judgement(
        "disagree",
        "13 of 100 elements disagree, not because of the labels: labels rounded to bfloat16 miss "
        "Σy = 1 by up to 0.0021, a residual (Σy − 1)·σ below what bfloat16 can show here",
    )


def test_a_disagreement_far_beyond_a_resolved_prediction_is_not_given_as_a_ratio():
    got = verdict(within=87.0, agree=87.0, residual_dot=-8e6, residual_norm=1.0,
                  label_sum_miss=2.1e-3)
    assert got == _judge.Judgement(
        "disagree",
        "13 of 100 elements disagree, far more than the labels explain (labels rounded to bfloat16"
        " miss Σy = 1 by up to 0.0021: the closed form misses the gradient by over 10 times "
        "(Σy − 1)·σ)",
    )


def test_labels_that_miss_their_sum_within_tolerance_are_said_so():
    assert verdict(label_sum_miss=2.1e-3).explanation == (
        "every element within rtol 0.016, atol 1e-05 of jax.grad; labels rounded to bfloat16 miss "
        "Σy = 1 by up to 0.0021, within tolerance here"
    )


def test_no_explanation_of_a_wrong_closed_form_gives_a_ratio_that_means_nothing():
    """Real cells: a sign error on labels that sum to one up to rounding — every explanation
    that states a measured/predicted ratio states one the data resolve, within 10 of the
    prediction."""
    import re

    import verify

    report = verify.check(lambda z, y: y - jax.nn.softmax(z, axis=-1), classes=10,
                          dtypes=("float32", "bfloat16"), scales=1.0, labels="smoothed",
                          samples=16)
    assert {c.verdict for c in report.cells} == {"disagree"}
    for cell in report.cells:
        for ratio in re.findall(r"measured/predicted(?: residual)? (\S+?)[;)]", cell.explanation):
            assert abs(float(ratio)) <= _judge.FAR_BEYOND, cell.explanation


def test_anything_else_disagrees():
    assert verdict(within=50.0, agree=60.0, agree_corrected=60.0) == _judge.Judgement(
        "disagree", "40 of 100 elements disagree"
    )


def test_without_the_allowance_honest_bfloat16_would_be_farther_at_about_6_percent():
    """Why the allowance exists (README, "What agree means"): in bfloat16, which of σ − y and
    jax.grad lands nearer the float64 gradient is a coin toss at a few percent of elements."""
    from verify import _opinions

    with jax.enable_x64(True):
        key_z, key_y = jax.random.split(jax.random.key(0))
        z = jax.random.normal(key_z, (4096, 10), dtype=jnp.float64).astype(jnp.bfloat16)
        y = jax.random.dirichlet(key_y, jnp.ones(10), (4096,)).astype(jnp.bfloat16)
        cf = _opinions.softmax_minus_labels(z, y).astype(jnp.float64)
        ag = _opinions.autograd(z, y).astype(jnp.float64)
        zr, yr = z.astype(jnp.float64), y.astype(jnp.float64)
        ex = _opinions.autograd(zr, yr)
        tol = TOLERANCES["bfloat16"]
        within = jnp.abs(cf - ag) <= tol.atol + tol.rtol * jnp.abs(ag)
        farther = jnp.abs(cf - ex) > jnp.abs(ag - ex)
        literal_miss = float(jnp.mean(~within & farther))
        judged = _rule.elementwise(cf, ag, ex, zr, yr, _dtypes.facts("bfloat16"), tol.rtol, tol.atol)
    assert 0.045 < literal_miss < 0.07  # README: "about 6% of elements"
    assert bool(jnp.all(judged.agree))


def test_a_steep_softmax_does_not_put_the_reference_in_doubt():
    """At logits of 10⁶ (or a temperature of 10⁻⁵) the float64 loss is rounded to about 10⁻¹⁰,
    which a central difference divides by its step: it was 'in doubt' (disagree, exit 1) for a
    right closed form. The rounding is allowed for, in z/T's units; a wrong rule still is not."""
    import verify
    from derivation import Loss

    steep = verify.check(classes=[2, 10], dtypes=["float64"], scales=[1e6, 1e8, 1e12],
                         labels=["onehot"], samples=8)
    assert [c.verdict for c in steep.cells] == ["agree"] * 6
    assert all(c.autograd_check.finite_difference <= 1e-6 for c in steep.cells)
    cold = verify.check(classes=[10], dtypes=["float64"], scales=[1.0, 10.0], labels=["onehot"],
                        samples=8, loss=Loss(temperature=1e-5))
    assert cold.cells and all(c.verdict == "agree" for c in cold.cells), cold.to_text()
    assert verdict(finite_difference=1e-3).verdict == "disagree"  # beyond the noise: in doubt
