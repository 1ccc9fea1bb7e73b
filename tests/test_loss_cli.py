"""The loss flags on the command line: ``derive`` with a variant, and bad values (exit 2, one
``error:`` line naming the flag, nothing written)."""

import json

import pytest

import derivation
from derivation import Loss
from verify._cli import main
from verify._loss_options import parse_loss


def test_flags_give_the_loss_and_none_give_the_plain_one():
    assert parse_loss() == Loss()
    assert parse_loss("0.1", "1,2,3", "-100", "mean", "1e-4", "30", "2", "indices") == Loss(
        0.1, (1.0, 2.0, 3.0), -100, "mean", 1e-4, 30.0, 2.0, "indices")


def test_every_flag_of_a_loss_reads_back_to_it():
    loss = Loss(0.1, (1.0, 2.5), -100, "none", 1e-4, 30.0, 2.0, "indices")
    flags = dict(zip(loss.flags()[::2], loss.flags()[1::2]))
    assert parse_loss(*(flags.get(f"--{name}") for name in (
        "label-smoothing", "weight", "ignore-index", "reduction", "z-loss", "softcap",
        "temperature", "targets"))) == loss


def test_derive_with_a_variant_writes_its_derivation_with_the_loss_object(capsys, tmp_path):
    out = tmp_path / "d.json"
    code = main(["derive", "--label-smoothing", "0.2", "--reduction", "mean", "--targets",
                 "indices", "--ignore-index", "-100", "--format", "json", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert code == 0 and doc["holds"]
    assert doc["loss"] == {"label_smoothing": 0.2, "ignore_index": -100, "reduction": "mean",
                           "targets": "indices"}
    loss = Loss(0.2, None, -100, "mean", targets="indices")
    assert out.read_text() == derivation.derive(loss=loss).to_json()


@pytest.mark.parametrize("argv, message", [
    (["--label-smoothing", "1.5"], "--label-smoothing: expected a number in [0, 1], got 1.5"),
    (["--label-smoothing", "abc"], "--label-smoothing: expected a number in [0, 1], got 'abc'"),
    (["--weight", "1,x"], "--weight: expected positive numbers separated by commas, got 'x'"),
    (["--weight", "1,-2"], "--weight: entry 1 is -2.0; expected positive finite numbers"),
    (["--ignore-index", "3"], "--ignore-index: applies to index targets only; add --targets "
                              "indices"),
    (["--ignore-index", "x", "--targets", "indices"], "--ignore-index: expected an integer"),
    (["--reduction", "avg"], "--reduction: unknown value 'avg' (accepted: mean, sum, none)"),
    (["--z-loss", "-1"], "--z-loss: expected a finite number >= 0, got -1.0"),
    (["--softcap", "0"], "--softcap: expected a finite number > 0 or None, got 0.0"),
    (["--temperature", "inf"], "--temperature: expected a finite number > 0, got 'inf'"),
    (["--targets", "index"], "--targets: unknown value 'index'; did you mean 'indices'?"),
])
def test_a_bad_flag_is_one_error_line_and_exit_2(capsys, tmp_path, argv, message):
    out = tmp_path / "never.txt"
    code = main(["derive", *argv, "--out", str(out)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert not out.exists() and captured.out == ""
