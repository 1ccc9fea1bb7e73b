"""verify's public face and its argument checking: every bad value named, with what is accepted,
before anything is computed; and the validation needs no JAX (the CLI runs it first)."""

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import verify
from verify import _options


def test_every_public_name_imports():
    for name in verify.__all__:
        assert getattr(verify, name) is not None
    assert {"check", "plot", "Report", "Cell", "TOLERANCES", "DTYPES", "LABEL_KINDS"} <= set(
        verify.__all__
    )


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'chekc'"):
        verify.chekc  # noqa: B018


def test_the_vocabulary_and_the_tolerance_table_are_the_contracts():
    assert verify.DTYPES == ("float64", "float32", "bfloat16", "float16")
    assert verify.LABEL_KINDS == ("onehot", "smoothed", "soft", "unnormalized")
    table = {dtype: (t.rtol, t.atol) for dtype, t in verify.TOLERANCES.items()}
    assert table == {
        "float64": (1e-7, 1e-7),
        "float32": (1.3e-6, 1e-5),
        "float16": (1e-3, 1e-5),
        "bfloat16": (1.6e-2, 1e-5),
    }
    with pytest.raises(TypeError):
        verify.TOLERANCES["float32"] = verify.Tolerance(0.0, 0.0)  # read-only


def test_validation_and_defaults_need_no_jax():
    code = (
        "import sys\n"
        "from verify import _options\n"
        "o = _options.validate(None, classes='2,10', dtypes='float32', scales='0.1,1')\n"
        "assert o.classes == (2, 10) and o.scales == (0.1, 1.0)\n"
        "try:\n"
        "    _options.validate_dtypes('flaot32')\n"
        "except ValueError as e:\n"
        "    print(e)\n"
        "print('jax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "dtypes: unknown dtype 'flaot32'; did you mean 'float32'? "
        "(accepted: float64, float32, bfloat16, float16)",
        "False",
    ]


BAD = [
    (dict(dtypes="flaot32"), ValueError,
     r"^dtypes: unknown dtype 'flaot32'; did you mean 'float32'\? \(accepted: float64, float32, "
     r"bfloat16, float16\)$"),
    (dict(dtypes=("float32", "int8")), ValueError, r"^dtypes: unknown dtype 'int8' \(accepted: "),
    (dict(dtypes=[]), ValueError, r"^dtypes: expected at least one value, got none$"),
    (dict(dtypes=[32]), TypeError, r"^dtypes: expected dtype names, got 32 \(accepted: "),
    (dict(labels="softt"), ValueError,
     r"^labels: unknown label kind 'softt'; did you mean 'soft'\? \(accepted: onehot, smoothed, "
     r"soft, unnormalized\)$"),
    (dict(classes=0), ValueError, r"^classes: expected integers >= 1, got 0$"),
    (dict(classes=(2, -3)), ValueError, r"^classes: expected integers >= 1, got -3$"),
    (dict(classes=2.5), ValueError, r"^classes: expected integers >= 1, got 2\.5$"),
    (dict(classes=True), ValueError, r"^classes: expected integers >= 1, got True$"),
    (dict(classes="x"), ValueError, r"^classes: expected integers >= 1, got 'x'$"),
    (dict(scales=float("nan")), ValueError, r"^scales: expected finite numbers > 0, got nan$"),
    (dict(scales=(1.0, 0.0)), ValueError, r"^scales: expected finite numbers > 0, got 0\.0$"),
    (dict(scales=-1), ValueError, r"^scales: expected finite numbers > 0, got -1$"),
    (dict(scales=float("inf")), ValueError, r"^scales: expected finite numbers > 0, got inf$"),
    (dict(samples=-3), ValueError, r"^samples: expected an integer >= 1, got -3$"),
    (dict(samples=0), ValueError, r"^samples: expected an integer >= 1, got 0$"),
    (dict(samples=2.0), ValueError, r"^samples: expected an integer >= 1, got 2\.0$"),
    (dict(seed=-1), ValueError, r"^seed: expected an integer in \[0, 4294967295\], got -1$"),
    (dict(seed=2**32), ValueError, r"^seed: expected an integer in \[0, 4294967295\], got "),
    (dict(rtol=-1.0), ValueError, r"^rtol: expected a finite number >= 0, got -1\.0$"),
    (dict(atol="x"), ValueError, r"^atol: expected a finite number >= 0, got 'x'$"),
    (dict(atol=float("nan")), ValueError, r"^atol: expected a finite number >= 0, got nan$"),
]  # fmt: skip


@pytest.mark.parametrize("arguments, error, message", BAD)
def test_bad_arguments_are_named_before_anything_is_computed(arguments, error, message):
    with pytest.raises(error, match=message):
        verify.check(**arguments)


def test_a_closed_form_that_is_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match=r"^closed_form: expected a callable \(z, y\) -> gradient"):
        verify.check(42)


def test_names_and_numbers_are_normalised():
    o = _options.validate(
        None, classes=(10, "2", 10), dtypes="float32, bfloat16", scales=[1, "0.5"], seed="7"
    )
    assert o.classes == (10, 2)  # duplicates dropped, order kept
    assert o.dtypes == ("float32", "bfloat16")
    assert o.scales == (1.0, 0.5)
    assert o.seed == 7 and o.samples == 256 and o.rtol is None


def test_rtol_and_atol_override_the_table_separately():
    used = _options.tolerances_for(("float32", "bfloat16"), rtol=0.5, atol=None)
    assert used == {
        "float32": _options.Tolerance(rtol=0.5, atol=1e-5),
        "bfloat16": _options.Tolerance(rtol=0.5, atol=1e-5),
    }


@given(st.floats(min_value=1e-300, max_value=1e300))
def test_every_finite_positive_scale_is_accepted_as_is(scale):
    assert _options.validate_scales(scale) == (scale,)


@given(st.floats(max_value=0.0) | st.just(float("nan")) | st.just(float("inf")))
def test_no_other_scale_is(scale):
    with pytest.raises(ValueError, match="^scales: expected finite numbers > 0"):
        _options.validate_scales(scale)


@given(st.integers())
def test_classes_are_the_integers_from_one(count):
    if count >= 1:
        assert _options.validate_classes(count) == (count,)
    else:
        with pytest.raises(ValueError, match=f"^classes: expected integers >= 1, got {count}$"):
            _options.validate_classes(count)


# --- closed forms that cannot be checked --------------------------------------------------------

SMALL = dict(classes=3, dtypes="float32", scales=1.0, labels="onehot", samples=4)


def test_a_closed_form_of_the_wrong_shape_says_expected_and_got():
    def rows_only(z, y):
        return (z - y).sum(axis=-1)

    with pytest.raises(
        ValueError, match=r"^closed_form: expected an array of shape \(rows, c\) = \(8, 3\), "
        r"got \(8,\)$"
    ):
        verify.check(rows_only, **SMALL)


def test_a_closed_form_that_returns_no_array_is_a_type_error():
    with pytest.raises(TypeError, match=r"^closed_form: expected an array of shape .* got tuple$"):
        verify.check(lambda z, y: (z, y), **SMALL)


def test_a_closed_form_that_raises_is_named_with_its_error():
    def broken(z, y):
        raise ZeroDivisionError("no")

    with pytest.raises(
        ValueError, match=r"^closed_form: broken raised ZeroDivisionError: no on float32 arrays "
        r"of shape \(8, 3\); expected a JAX-traceable"
    ):
        verify.check(broken, **SMALL)


def test_a_closed_form_that_is_not_traceable_is_named():
    import numpy as np

    with pytest.raises(ValueError, match=r"^closed_form: .* raised TracerArrayConversionError"):
        verify.check(lambda z, y: np.asarray(z) - y, **SMALL)


def test_what_iterates_as_something_else_or_overflows_is_refused_by_name():
    """bytes iterated as character codes (classes=b"10" checked c = 49 and 48), a dict as its
    keys; an int past float's range raised OverflowError; -0 gave other bytes than 0."""
    import numpy as np

    from derivation import Loss

    for value in (b"10", {10: 1}):
        with pytest.raises(TypeError, match="^classes: expected a value"):
            _options.validate_classes(value)
    assert _options.validate_classes(np.array(10)) == (10,)
    assert _options.validate_scales(np.array([1.0, 10.0])) == (1.0, 10.0)
    with pytest.raises(ValueError, match="^scales: expected finite numbers > 0"):
        _options.validate_scales(10**400)
    for field in ("temperature", "softcap", "z_loss", "label_smoothing"):
        with pytest.raises(ValueError, match=f"^{field}: expected"):
            Loss(**{field: 10**400})
    with pytest.raises(ValueError, match="^weight: expected a sequence"):
        Loss(weight={1: 2.0})
    assert str(_options.validate_tolerance("rtol", -0.0)) == "0.0"


def test_names_in_another_case_are_suggested_and_a_default_closed_form_checks_its_options():
    """FLOAT32 or JAX got no 'did you mean' (difflib ranks by case-sensitive likeness); with no
    closed form, framework 'JAX' was told it 'needs a closed form', and device 'gpu' was
    accepted; assume=[5] raised TypeError from deep inside."""
    import derivation
    from derivation import Loss

    with pytest.raises(ValueError, match=r"^dtypes: unknown dtype 'FLOAT32'; did you mean "
                                         r"'float32'\?"):
        _options.validate_dtypes("FLOAT32")
    with pytest.raises(ValueError, match=r"did you mean 'mean'\?"):
        Loss(reduction="MEAN")
    grid = dict(classes=10, dtypes="float32", scales=1.0, labels="onehot", samples=4)
    with pytest.raises(ValueError, match=r"^framework: unknown framework 'JAX'; did you mean "
                                         r"'jax'\?"):
        verify.check(framework="JAX", **grid)
    with pytest.raises(ValueError, match=r"^device: unknown device 'gpu'"):
        verify.check(device="gpu", **grid)
    with pytest.raises(TypeError, match=r"^assume: expected LaTeX relations as strings"):
        derivation.check_text("$$x = x$$", assume=[5])
