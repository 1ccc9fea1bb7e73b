"""``verify.check(closed_form, loss=Loss(...))``: the derivation's closed form agrees across the
swept grid, predicted residuals are ``expected``, a batch with every row ignored is an explained
cell (never a silent agree), and the JSON and CLI carry the loss."""

import json

import jax.numpy as jnp
import pytest

import verify
from derivation import Loss
from verify._cli import main

EVERYTHING = Loss(0.1, (0.5, 2.0, 1.0, 3.0), -100, "mean", 1e-3, 5.0, 2.0, "indices")
GRID = {"classes": (4,), "dtypes": ("float32", "bfloat16"), "scales": (1.0,), "samples": 8}


@pytest.fixture(scope="module")
def everything():
    return verify.check(loss=EVERYTHING, **GRID)


def test_the_derived_closed_form_agrees_in_every_swept_cell(everything):
    assert everything.ok and everything.loss == EVERYTHING
    keys = [(c.dtype, c.labels, c.grad_output) for c in everything.cells]
    assert keys == [(d, kind, g) for d in ("float32", "bfloat16")
                    for kind in ("indices", "ignored", "all-ignored") for g in ("1", "0.75")]
    assert {c.verdict for c in everything.cells} == {"agree"}
    assert everything.claim.startswith("derived closed form (label_smoothing=0.1")


def test_every_row_ignored_is_an_explained_cell(everything):
    for cell in everything.cells:
        if cell.labels == "all-ignored":
            assert cell.explanation.startswith(
                "every row ignored (PyTorch's mean is NaN and its gradient zero); ")
        elif cell.labels == "ignored":
            assert cell.explanation.startswith("3 of 12 rows ignored; ")


def test_a_kernel_that_divides_zero_by_zero_disagrees_where_every_row_is_ignored():
    loss = Loss(ignore_index=-100, reduction="mean", targets="indices")

    def nan_when_empty(z, targets, grad_output):
        kept = (targets != -100).astype(z.dtype)[:, None]
        onehot = jnp.eye(z.shape[-1], dtype=z.dtype)[jnp.clip(targets, 0)]
        probabilities = jnp.exp(z - jnp.max(z, -1, keepdims=True))
        probabilities = probabilities / jnp.sum(probabilities, -1, keepdims=True)
        return grad_output * kept * (probabilities - onehot) / jnp.sum(kept)

    report = verify.check(nan_when_empty, loss=loss, classes=(4,), dtypes=("float32",),
                          scales=(1.0,), samples=8)
    bad = {c.labels for c in report.cells if c.verdict == "disagree"}
    assert bad == {"all-ignored"} and not report.ok


def test_probability_targets_that_miss_one_are_expected_with_the_predicted_residual():
    loss = Loss(label_smoothing=0.2, z_loss=1e-2, temperature=1.5)
    report = verify.check(loss=loss, classes=(5,), dtypes=("float32",), scales=(1.0,),
                          labels=("soft", "unnormalized"), samples=8)
    assert report.ok
    for cell in report.cells:
        assert cell.verdict == ("expected" if cell.labels == "unnormalized" else "agree")
        if cell.verdict == "expected":
            assert 0.9 < cell.residual_match < 1.1


def test_json_has_the_loss_and_each_cells_upstream_gradient_and_is_deterministic(everything):
    doc = json.loads(everything.to_json())
    assert doc["loss"] == EVERYTHING.to_json()
    assert [c["grad_output"] for c in doc["cells"]][:2] == ["1", "0.75"]
    assert list(doc["cells"][0])[:5] == ["classes", "dtype", "scale", "labels", "grad_output"]
    again = verify.check(loss=EVERYTHING, **GRID)
    assert again.to_json() == everything.to_json()
    assert "--targets indices" in doc["cells"][0]["reproduce"]


def test_the_plain_loss_is_the_plain_check():
    small = {"classes": (3,), "dtypes": ("float32",), "scales": (1.0,), "samples": 8}
    assert verify.check(loss=Loss(), **small).to_json() == verify.check(**small).to_json()
    assert "loss" not in json.loads(verify.check(**small).to_json())


def test_verify_cli_takes_the_loss_flags(capsys, tmp_path):
    out = tmp_path / "r.json"
    code = main(["verify", "--classes", "4", "--dtypes", "float32", "--scales", "1",
                 "--samples", "8", "--quiet", "--format", "json", "--out", str(out),
                 "--label-smoothing", "0.1", "--reduction", "none", "--targets", "indices"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["loss"] == {"label_smoothing": 0.1, "reduction": "none", "targets": "indices"}
    assert [c["grad_output"] for c in doc["cells"]] == [
        "1", "±(0.5 to 2) in steps of 1/8, drawn by row"]


@pytest.mark.parametrize("argv, message", [
    (["--weight", "1,2"], "error: --weight: 2 weights given, but the check has 3 classes"),
    (["--softcap", "-1"], "error: --softcap: expected a finite number > 0 or None, got -1.0"),
])
def test_verify_cli_bad_loss_flags_exit_2(capsys, argv, message):
    code = main(["verify", "--classes", "3", "--quiet", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message)


@pytest.mark.parametrize("loss", [EVERYTHING, Loss(reduction="mean"),
                                  Loss(ignore_index=2, reduction="mean", targets="indices")])
def test_the_drivers_denominator_is_the_reference_losses(loss):
    import jax
    import numpy as np

    from verify import _loss, _variant

    labels = np.eye(4)[[0, 3, 2, 1, 2]]
    for kind in ("indices", "ignored", "all-ignored"):
        y = _variant.encode(loss, labels, kind, seed=0)
        with jax.enable_x64(True):
            targets = _variant.decode(loss, jnp.asarray(y))
            want = float(_loss.denominator(loss, targets, 4, jnp.float64))
        assert _variant.denominator(loss, y) == want
        assert (np.asarray(targets) == _variant.decoded(loss, y)).all()


def test_a_plain_closed_form_that_mixes_rows_gets_a_batch_counterexample():
    import jax

    def batch_sum(z, y):  # Σy over the whole batch, not the row
        return jax.nn.softmax(z, axis=-1) * (jnp.sum(y) / z.shape[0]) - y

    report = verify.check(batch_sum, classes=(4,), dtypes=("float32",), scales=(1.0,),
                          labels=("unnormalized", "soft"), samples=8)
    bad, good = report.cells
    assert (bad.verdict, good.verdict) == ("disagree", "agree")
    assert ": 2 of the cell's rows, c = 4" in bad.counterexample
    assert "reference = jax.grad(loss)(z.astype(jnp.float64), y.astype(jnp.float64))" in (
        bad.counterexample)


@pytest.mark.parametrize("loss, labels", [
    (Loss(label_smoothing=0.1, z_loss=1e-4, reduction="none"), ("soft",)),
    (Loss(0.1, None, -100, "mean", 1e-4, 30.0, 1.5, "indices"), None),  # kinds of its own
])
def test_the_derived_closed_form_agrees_at_large_logits_and_in_bfloat16(loss, labels):
    """Regressions: σ as exp(u − lse) lost bits at |u| ≈ 400 in float32, and the closed form
    evaluated in bfloat16 throughout was farther than jax.grad at c = 1000."""
    given = {} if labels is None else {"labels": labels}
    report = verify.check(loss=loss, classes=(1000,), dtypes=("float32", "bfloat16"),
                          scales=(10.0, 100.0), samples=16, **given)
    assert report.ok and {c.verdict for c in report.cells} <= {"agree", "expected"}
