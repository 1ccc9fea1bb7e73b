"""The distribution: a wheel carrying both packages, the version, and the import-time contract."""

import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import derivation
import verify

ROOT = Path(__file__).parent.parent


def test_every_public_name_imports():
    for package in (derivation, verify):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    assert {"derive", "check_chain", "Derivation", "Route", "Step"} <= set(derivation.__all__)
    assert {"check", "Report", "Cell"} <= set(verify.__all__)


def test_wheel_carries_both_packages_and_their_type_markers(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("softmax_ce-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("derivation", "verify"):
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names
    assert not any(name.startswith(("tests/", "notebooks/", "benchmarks/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "softmax-ce = verify._cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_version_agrees_with_the_metadata():
    out = subprocess.run([sys.executable, "-m", "verify._cli", "--version"], check=True,
                         capture_output=True, text=True).stdout
    assert out == f"softmax-ce {version('softmax-ce')}\n"


def _modules_after(*argv: str) -> set[str]:
    code = ("import sys\nfrom verify._cli import main\ncode = main(list(sys.argv[1:]))\n"
            "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=True).stdout
    return set(out.strip().splitlines()[-1].split())


def test_help_and_version_import_neither_jax_nor_sympy():
    for argv in (["--help"], ["--version"], ["derive", "--help"]):
        loaded = _modules_after(*argv)
        assert "jax" not in loaded and "jaxlib" not in loaded, argv
        assert "sympy" not in loaded, argv


def test_derive_does_not_import_jax():
    loaded = _modules_after("derive", "--classes", "2", "--format", "json")
    assert "sympy" in loaded  # the derivation did run
    assert "jax" not in loaded and "jaxlib" not in loaded


def test_importing_verify_does_not_import_jax():
    out = subprocess.run([sys.executable, "-c", "import sys, verify; print('jax' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_verify_does_not_import_sympy():
    # The plain loss's theory is kept as lambdified code (verify._theory_plain): a run of the
    # check imports neither SymPy nor the derivation's steps.
    loaded = _modules_after("verify", "--classes", "3", "--dtypes", "float32", "--scales", "1",
                            "--labels", "soft", "--samples", "4", "-q", "--format", "json")
    assert "jax" in loaded
    assert "sympy" not in loaded
