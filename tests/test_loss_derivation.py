"""``derive(loss=...)``: the variant's route holds step by step, ends at the expected gradient,
reduces to σ − y when the options are neutral, and a wrong line in it is caught."""

import json

import pytest
import sympy as sp

import derivation
from derivation import Loss
from derivation._loss_routes import Variant, variant_route
from derivation._loss_symbols import D, T, cap, eps, g, lam, mask, w
from derivation._symbols import c, i, k, m, sigma, total, y, z

ALL = Loss(0.1, (1.0, 2.0, 3.0), -100, "mean", 1e-3, 5.0, 2.0, "indices")


def _zero(expr):
    return sp.expand(sp.together(expr)) == 0


def test_loss_none_and_plain_give_exactly_todays_derivation():
    today = derivation.derive()
    assert derivation.derive(loss=Loss()).to_json() == today.to_json()
    assert derivation.derive(loss=None).to_markdown() == today.to_markdown()
    assert derivation.derive(classes=3, labels="soft", loss=Loss()).to_json() == (
        derivation.derive(classes=3, labels="soft").to_json())


@pytest.mark.parametrize("loss, expected", [
    (Loss(label_smoothing=0.1), g * (sigma[k] - (1 - eps) * y[k] - eps / c)),
    (Loss(weight=(1, 2, 3)), g * (sigma[k] * total(w[i] * y[i], i, c) - w[k] * y[k])),
    (Loss(z_loss=0.1), g * ((1 + 2 * lam * sp.log(total(sp.exp(z[m]), m, c))) * sigma[k] - y[k])),
    (Loss(temperature=2.0), g / T * (sp.exp(z[k] / T) / total(sp.exp(z[m] / T), m, c) - y[k])),
    (Loss(softcap=5.0), g * (1 - sp.tanh(z[k] / cap) ** 2) * (
        sp.exp(cap * sp.tanh(z[k] / cap)) / total(sp.exp(cap * sp.tanh(z[m] / cap)), m, c)
        - y[k])),
    (Loss(ignore_index=-100, targets="indices", reduction="mean"),
     g * mask / D * (sigma[k] - y[k])),
    (Loss(reduction="none"), g * (sigma[k] - y[k])),
])
def test_each_option_alone_holds_and_ends_at_its_gradient(loss, expected):
    d = derivation.derive(loss=loss)
    assert d.holds and d.hessian is None and d.loss == loss
    assert all(s.check in ("symbolic", "numeric") for s in d.routes[0].steps)
    assert _zero(d.result - expected), d.result


def test_every_option_together_holds_and_neutral_values_give_sigma_minus_y():
    assert derivation.derive(classes=3, loss=ALL).holds
    uncapped = Loss(0.1, (1.0, 2.0, 3.0), -100, "mean", 1e-3, None, 2.0, "indices")
    general = derivation.derive(loss=uncapped).result
    neutral = general.xreplace({eps: 0, lam: 0, g: 1, mask: 1, D: 1, T: 1}).replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == w, lambda e: sp.Integer(1))
    softmax = sp.exp(z[k]) / total(sp.exp(z[m]), m, c)
    assert _zero(neutral - (softmax * total(y[i], i, c) - y[k]))
    assert not _zero(general - (softmax * total(y[i], i, c) - y[k]))


def test_the_text_says_what_each_option_adds():
    text = derivation.derive(loss=ALL).to_text()
    for option in ("label_smoothing", "weight", "z_loss", "temperature", "softcap",
                   "ignore_index", "reduction", "grad_output"):
        assert f"- {option}: " in text
    assert "adds 2λ·lse·σ_k" in text and "σ_k − y_k" in text


def test_json_has_the_loss_object_and_every_expr_reads_back():
    doc = json.loads(derivation.derive(loss=ALL).to_json())
    assert doc["loss"] == ALL.to_json() and doc["hessian"] is None and doc["holds"]
    route = derivation.derive(loss=ALL).routes[0]
    for step, shown in zip(route.steps, doc["routes"][0]["steps"]):
        assert sp.sympify(shown["expr"], locals=derivation.symbols()) == step.expr
    assert r"\mathrm{cap}" in doc["result"]["latex"]


def test_a_wrong_line_in_the_route_is_caught(monkeypatch):
    """z·tanh(z/cap) differentiated as if it were cap·tanh(z/cap) (unsloth-zoo #593's slip,
    here in the chain rule): the differentiation step fails with a counterexample."""
    monkeypatch.setattr(Variant, "du", lambda self, at: sp.Integer(1))
    route = variant_route(Loss(softcap=5.0), c)
    failed = [s for s in route.steps if s.check == "failed"]
    assert not route.holds and failed and failed[0].rule.startswith("differentiate")
    assert failed[0].counterexample


def test_bad_loss_argument():
    with pytest.raises(ValueError, match="loss: expected a derivation.Loss or None"):
        derivation.derive(loss={"label_smoothing": 0.1})


def test_derive_refuses_what_it_cannot_honour_as_verify_does():
    """derive took 3 weights for 2 classes (and printed them unused), soft labels with index
    targets, and classes = 10^30 from Python (where it ran without end)."""
    from derivation._derive import MAX_CLASSES
    from verify import _limits

    assert MAX_CLASSES == _limits.MAX_DERIVE_CLASSES
    cases = [(dict(classes=10**30), "^classes: 1,000,000,000,"),
             (dict(classes=2, loss=Loss(weight=(1.0, 2.0, 3.0))),
              r"^weight: 3 weights given, but the derivation has 2 classes"),
             (dict(labels="soft", loss=Loss(targets="indices")),
              "^labels: soft is not used with index targets")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            derivation.derive(**kwargs)
