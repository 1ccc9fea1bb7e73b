"""The check engine under someone else's symbols and SymPy objects: each cause of a crash, a false
reject or a false accept found by trying check_chain as a new user would, now a test."""

import pytest
import sympy as sp

import derivation
from derivation import _check

x, yy, zz = sp.symbols("x y z", real=True)
cc, ss = sp.symbols("c sigma", real=True)
pos = sp.Symbol("x", positive=True)
i = sp.Symbol("i", integer=True, positive=True)
n = sp.Symbol("n", integer=True, positive=True)
c = derivation.symbols()["c"]
Y = sp.IndexedBase("y")


@pytest.mark.parametrize("other", [yy, zz, cc, ss])
def test_a_users_symbol_named_like_the_packages_is_its_own(other):
    r = derivation.check_chain([sp.log(x * other), sp.log(x) + sp.log(other)])
    # log(xy) = log x + log y fails for negative reals: found, not a crash
    assert r.failed_step == 1 and r.links[0].status == "failed"
    r = derivation.check_chain([(x + other) ** 2, x**2 + 2 * x * other + other**2])
    assert r.holds


def test_an_unevaluated_derivative_is_carried_out():
    r = derivation.check_chain([sp.Derivative(x**2, x), 2 * x])
    assert r.holds
    assert derivation.check_chain([sp.Derivative(x**2, x), 3 * x]).failed_step == 1


def test_piecewise_subs_integral_limit_and_matrices_are_checked():
    assert derivation.check_chain([sp.Piecewise((x, x > 0), (-x, True)), sp.Abs(x)]).holds
    assert derivation.check_chain([sp.Piecewise((x, x > 0), (x, True)), sp.Abs(x)]).failed_step
    assert derivation.check_chain([sp.Subs(x**2, x, 3), sp.Integer(9)]).holds
    t = sp.Symbol("t", real=True)
    assert derivation.check_chain([sp.Integral(t, (t, 0, x)), x**2 / 2]).holds
    assert derivation.check_chain([sp.Limit(sp.sin(x) / x, x, 0), sp.Integer(1)]).holds
    m = sp.ImmutableMatrix([[x, 1], [0, x]])
    assert derivation.check_chain([m * m, sp.ImmutableMatrix([[x**2, 2 * x], [0, x**2]])]).holds
    r = derivation.check_chain([m * m, sp.ImmutableMatrix([[x**2, x], [0, x**2]])])
    assert r.failed_step == 1 and "entry (1, 2)" in r.links[0].detail


@pytest.mark.parametrize("expr, why", [
    (sp.Function("f")(x), "undefined function"),
    (sp.Eq(x, 1), "relation or truth value"),
    (sp.true, "relation or truth value"),
])
def test_what_has_no_value_is_unchecked_with_the_reason(expr, why):
    r = derivation.check_chain([expr, x])
    assert r.failed_step == 1
    assert r.links[0].status == "unchecked" and why in r.links[0].detail


def test_an_undefined_function_may_still_be_proved_symbolically():
    f = sp.Function("f")
    assert derivation.check_chain([f(x) + f(x), 2 * f(x)]).links[0].status == "symbolic"


def test_infinity_is_undefined_not_a_crash():
    r = derivation.check_chain([sp.oo, sp.oo])
    assert r.failed_step == 1 and r.links[0].status == "undefined"
    assert derivation.check_chain([sp.Sum(1 / i**2, (i, 1, sp.oo)), sp.pi**2 / 6]).holds


def test_points_where_an_expression_is_undefined_are_skipped():
    r = derivation.check_chain([c / (c - 1) - 1 / (c - 1), sp.Integer(1)])
    assert r.holds and "skipped" in r.links[0].detail
    assert derivation.check_chain([1 / (n - 1), 1 / (n - 1)]).holds


def test_undefined_at_every_point_is_a_verdict_of_its_own():
    r = derivation.check_chain([1 / (x - x + sp.Symbol("e", zero=True)), x])
    link = r.links[0]
    assert r.failed_step == 1 and link.status == "undefined"
    assert "undefined at every point tried" in link.detail


def test_concrete_indices_are_never_checked_at_too_small_a_c():
    assert derivation.check_chain([sp.Sum(Y[i], (i, 1, 3)), Y[1] + Y[2] + Y[3]]).holds
    assert derivation.check_chain([sp.Sum(Y[i], (i, 1, 3)), Y[1] + Y[2]]).failed_step == 1


def test_a_free_index_is_drawn_from_one_to_c():
    q = sp.Symbol("q", integer=True, positive=True)
    # Σ_{i=1}^{c} δ_iq = 1 holds exactly when 1 ≤ q ≤ c: drawn from 1..5 whatever c, it failed.
    r = derivation.check_chain([sp.Sum(sp.KroneckerDelta(i, q), (i, 1, c)), sp.Integer(1)])
    assert r.holds


@pytest.mark.parametrize("wrong", [
    [sp.log(sp.exp(sp.I * x)), sp.I * x],
    [sp.Abs(pos - 3), 3 - pos],
    [sp.sqrt(x**2), x],
    [sp.atan(sp.tan(x)), x],
])
def test_real_symbols_are_sampled_widely(wrong):
    r = derivation.check_chain(wrong)
    assert r.failed_step == 1 and r.links[0].status == "failed", r.links[0].detail


def test_the_detail_says_how_many_points_were_tried():
    r = derivation.check_chain([(x + 1) ** 2, x**2 + 2 * x + 1])
    assert "numerically at 12 points" in r.links[0].detail


def test_same_chain_same_points():
    chain = [sp.exp(x + yy), sp.exp(x) * sp.exp(yy) + sp.Rational(1, 10**30)]
    assert derivation.check_chain(chain).links == derivation.check_chain(chain).links


def test_outcomes_say_whether_they_hold():
    assert _check.Outcome("numeric", "").holds and not _check.Outcome("unchecked", "").holds


def test_the_courses_quotient_rule_line_is_shown_as_written_and_checked():
    from derivation._render import step_latex
    from derivation._routes import rebuilt

    from derivation._routes import course_route

    course = course_route(c)
    (step,) = [s for s in course.steps if s.written is not None]
    shown = step_latex(step)
    assert r"- \frac{1}{e^{{z}_{p}}" in shown and "2 {z}_{p}" not in shown  # not re-arranged
    from derivation._render import _pretty

    assert "2⋅zₚ" not in _pretty(step) and "-1" in _pretty(step)  # the terminal shows it too
    assert step.check == "symbolic"
    assert sp.cancel(sp.together(rebuilt(step.written) - step.expr)) == 0


def test_differentiating_never_captures_a_sums_variable() -> None:
    """d/dz_k Σ_k e^{z_k} is e^{z_k}, and renaming one sum's variable never lands on another's
    (SymPy alone differentiates one term and keeps the sum: Σ_k e^{z_k})."""
    import sympy as sp

    from derivation._symbols import apart_from, partial
    i, k, n = (sp.Symbol(x, integer=True, positive=True) for x in "ikn")
    z, y = sp.IndexedBase("z"), sp.IndexedBase("y")
    derivative = partial(sp.Sum(sp.exp(z[k]), (k, 1, n)), z[k], n).doit()
    assert derivative.subs({n: 3, k: 2}) == sp.exp(z[2])
    inner = sp.Sum(sp.KroneckerDelta(i, sp.Symbol("i'", integer=True, positive=True)),
                   (sp.Symbol("i'", integer=True, positive=True), 1, n))
    nested = sp.Sum(y[i] * inner, (i, 1, n))
    renamed = apart_from(nested, i)
    assert renamed.limits[0][0] not in (i, inner.limits[0][0])
    values = {n: 3}
    assert renamed.subs(values).doit() == nested.subs(values).doit()
