"""derive(): every route, for symbolic c and c = 2, 3, 5, one-hot and soft labels."""

import functools

import pytest
import sympy as sp

import derivation
from derivation._symbols import c, j, k, m, p, sigma, total, y, z

CLASSES = [None, 2, 3, 5]
LABELS = ["onehot", "soft"]


@functools.lru_cache(maxsize=None)
def derived(classes, labels):
    return derivation.derive(classes=classes, labels=labels)


@pytest.mark.parametrize("labels", LABELS)
@pytest.mark.parametrize("classes", CLASSES)
def test_every_route_holds_and_ends_at_sigma_minus_y(classes, labels):
    d = derived(classes, labels)
    assert d.holds
    assert d.result == sigma[k] - y[k]
    for route in d.routes:
        assert route.holds, route.name
        assert route.steps[-1].expr == sigma[k] - y[k]
        assert all(step.check == "symbolic" for step in route.steps), route.name


@pytest.mark.parametrize("classes", CLASSES)
def test_route_names_depend_on_the_labels(classes):
    names = lambda d: [r.name for r in d.routes]  # noqa: E731
    assert names(derived(classes, "onehot")) == [
        "the course's derivation (one-hot label at p)", "log-sum-exp",
        "chain rule through the softmax Jacobian"]
    assert names(derived(classes, "soft")) == ["log-sum-exp",
                                               "chain rule through the softmax Jacobian"]


@pytest.mark.parametrize("classes", CLASSES)
def test_log_sum_exp_route_passes_through_the_gradient_for_any_labels(classes):
    n = c if classes is None else classes
    route = derived(classes, "soft").routes[0]
    assert [s.expr for s in route.steps][-2] == sigma[k] * total(y[i_], i_, n) - y[k]
    assert route.steps[-1].assumptions[-1] == "the labels sum to one: Σᵢ yᵢ = 1"


i_ = sp.Symbol("i", integer=True, positive=True)


@pytest.mark.parametrize("classes", CLASSES)
def test_course_route_has_the_references_equations(classes):
    n = c if classes is None else classes
    route = derived(classes, "onehot").routes[0]
    tagged = {s.tag: s for s in route.steps if s.tag}
    assert set(tagged) == {"(1)", "(2) in (1)", "(3)", "(4)"}
    S = total(sp.exp(z[m]), m, n)
    assert tagged["(1)"].expr == -sp.log(sigma[p])
    assert tagged["(2) in (1)"].expr == -sp.log(sp.exp(z[p]) / S)
    assert tagged["(3)"].expr == sp.exp(z[p]) / S - 1
    assert tagged["(3)"].lhs == "∂C/∂z_p"
    n_ = sp.Symbol("n", integer=True, positive=True)
    assert tagged["(4)"].expr == sp.exp(z[n_]) / S
    assert "case n ≠ p" in " ".join(tagged["(4)"].assumptions)


def test_jacobian_route_shows_the_derivative_by_the_probabilities():
    route = derived(None, "soft").routes[1]
    by_probability = route.steps[1]
    assert by_probability.lhs == "∂C/∂σ_n"
    n_ = sp.Symbol("n", integer=True, positive=True)
    assert by_probability.expr == -y[n_] / sigma[n_]
    assert "not the gradient we want" in by_probability.rule
    jacobian = route.steps[2]
    assert jacobian.expr == sigma[n_] * (sp.KroneckerDelta(n_, k) - sigma[k])


@pytest.mark.parametrize("labels", LABELS)
@pytest.mark.parametrize("classes", CLASSES)
def test_hessian(classes, labels):
    n = c if classes is None else classes
    h = derived(classes, labels).hessian
    assert h.holds
    assert h.result == sigma[k] * sp.KroneckerDelta(j, k) - sigma[j] * sigma[k]
    with_label_sum = h.steps[-2].expr
    assert sp.expand(with_label_sum) == sp.expand(
        total(y[i_], i_, n) * (sigma[k] * sp.KroneckerDelta(j, k) - sigma[j] * sigma[k]))
    assert h.steps[-1].lhs == "∂²C/∂z_j∂z_k"


def test_a_wrong_step_fails_and_the_route_does_not_hold():
    from derivation import _routes
    from derivation._assumptions import SUMS_TO_ONE

    b = _routes._Builder("planted", c)
    b.start(_routes.GRAD, _routes.general_gradient(c), "start", of=_routes.loss(c), wrt=z[k])
    b.rewrite(sigma[k] + y[k], "a sign slip", SUMS_TO_ONE)
    route = b.route(sigma[k] - y[k])
    assert [s.check for s in route.steps] == ["symbolic", "failed"]
    assert not route.holds
    assert route.steps[1].counterexample["c"] == 1  # the first size tried


def test_a_wrong_derivative_names_the_failing_partial():
    from derivation import _check
    from derivation._routes import loss

    wrong = sigma[k] * total(y[i_], i_, 5) - y[k] + sp.KroneckerDelta(k, 4) / 1000
    outcome = _check.derivative(loss(5), wrong, z[k], 5)
    assert outcome.status == "failed"
    assert outcome.counterexample["k"] == 4
    assert "does not hold" in outcome.detail


@pytest.mark.parametrize("bad", [0, -3, 2.5, "3", True])
def test_bad_classes(bad):
    with pytest.raises(ValueError, match=r"^classes: expected an integer >= 1.*got"):
        derivation.derive(classes=bad)


def test_bad_labels_suggests_a_close_match():
    with pytest.raises(ValueError, match=r"labels: unknown label kind 'onehto'; did you mean "
                                         r"'onehot'\? \(accepted: onehot, soft\)"):
        derivation.derive(labels="onehto")
    with pytest.raises(ValueError, match=r"labels: unknown label kind 'x' \(accepted"):
        derivation.derive(labels="x")


def test_theory_is_read_off_the_route():
    th = derivation.theory()
    assert th.gradient == th.sigma * th.label_sum - th.label
    assert th.closed_form == th.sigma - th.label
    assert sp.expand(th.residual - (th.label_sum - 1) * th.sigma) == 0
