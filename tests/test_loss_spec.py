"""``Loss``: defaults, validation messages, JSON fields, and the same class in both packages."""

import json
import subprocess
import sys

import pytest

import derivation
import verify
from derivation import Loss


def test_the_same_class_in_both_packages_and_verify_loss_imports_no_jax():
    assert verify.Loss is derivation.Loss
    code = "import sys, verify; verify.Loss(); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_defaults_are_the_contracts_and_plain():
    loss = Loss()
    assert (loss.label_smoothing, loss.weight, loss.ignore_index, loss.reduction, loss.z_loss,
            loss.softcap, loss.temperature, loss.targets) == (
        0.0, None, None, "sum", 0.0, None, 1.0, "probabilities")
    assert loss.is_plain and loss.to_json() == {} and loss.flags() == []
    assert loss.describe() == "plain"


def test_to_json_has_only_the_fields_off_their_defaults():
    loss = Loss(label_smoothing=0.1, weight=[1, 2.5], ignore_index=-100, reduction="mean",
                z_loss=1e-4, softcap=30, temperature=2, targets="indices")
    assert loss.to_json() == {"label_smoothing": 0.1, "weight": [1.0, 2.5],
                              "ignore_index": -100, "reduction": "mean", "z_loss": 0.0001,
                              "softcap": 30.0, "temperature": 2.0, "targets": "indices"}
    assert json.loads(json.dumps(loss.to_json())) == loss.to_json()
    assert loss.weight == (1.0, 2.5) and not loss.is_plain
    assert Loss(reduction="mean").to_json() == {"reduction": "mean"}
    assert Loss(label_smoothing=0).to_json() == {}
    assert loss.flags() == ["--label-smoothing", "0.1", "--weight", "1.0,2.5", "--ignore-index",
                            "-100", "--reduction", "mean", "--z-loss", "0.0001", "--softcap",
                            "30.0", "--temperature", "2.0", "--targets", "indices"]


def test_frozen_and_hashable():
    loss = Loss(weight=(1, 2))
    with pytest.raises(AttributeError):
        loss.z_loss = 1.0
    assert hash(loss) == hash(Loss(weight=[1.0, 2.0]))


@pytest.mark.parametrize("kwargs, message", [
    ({"label_smoothing": 1.5}, r"label_smoothing: expected a number in \[0, 1\], got 1.5"),
    ({"label_smoothing": -0.1}, r"label_smoothing: .* got -0.1"),
    ({"label_smoothing": float("nan")}, r"label_smoothing: .* got nan"),
    ({"label_smoothing": "0.1"}, r"label_smoothing: .* got '0.1'"),
    ({"weight": [1, 0]}, r"weight: entry 1 is 0; expected positive finite numbers"),
    ({"weight": [1, float("inf")]}, r"weight: expected positive finite numbers, got inf"),
    ({"weight": []}, r"weight: expected at least one"),
    ({"weight": "1,2"}, r"weight: expected a sequence"),
    ({"reduction": "avg"}, r"reduction: unknown value 'avg'.*\(accepted: mean, sum, none\)"),
    ({"reduction": "means"}, r"did you mean 'mean'\?"),
    ({"z_loss": -1}, r"z_loss: expected a finite number >= 0, got -1"),
    ({"softcap": 0}, r"softcap: expected a finite number > 0 or None, got 0"),
    ({"temperature": 0.0}, r"temperature: expected a finite number > 0, got 0.0"),
    ({"temperature": True}, r"temperature: .* got True"),
    ({"targets": "labels"}, r"targets: unknown value 'labels'.*indices, probabilities"),
    ({"ignore_index": -100}, r"ignore_index: applies to index targets only"),
    ({"ignore_index": 1.5, "targets": "indices"}, r"ignore_index: expected an integer or None"),
])
def test_a_bad_field_is_a_value_error_naming_it_and_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Loss(**kwargs)


def test_weight_for_checks_the_number_of_classes():
    assert Loss().weight_for(3) == (1.0, 1.0, 1.0)
    assert Loss(weight=[1, 2, 3]).weight_for(3) == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="weight: 2 weights given, but the check has 3 classes"):
        Loss(weight=[1, 2]).weight_for(3)
