"""The report's derivations are derived once per version of the code: kept in the cache, read
back whole, derived afresh when the derivation's sources change or an entry is corrupt."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import derivation
from verify import _cache, _derivations


@pytest.fixture
def kept(monkeypatch, tmp_path):
    monkeypatch.setitem(_cache._PROGRAMS, "dir", tmp_path)  # noqa: SLF001 - the cache's folder
    return tmp_path


class Derived:
    def __init__(self, classes):
        self.holds = classes != 5

    def to_markdown(self):
        return "## a derivation\n\nσ − y ✓\n"


@pytest.fixture
def derivations(monkeypatch):
    """Stands in for derivation.derive (the cache's logic does not depend on what it derives):
    the class counts it was called with."""
    calls = []

    def derive(classes=None):
        calls.append(classes)
        return Derived(classes)

    monkeypatch.setattr(derivation, "derive", derive)
    return calls


def test_a_kept_derivation_is_read_back_not_derived(kept, monkeypatch):
    first = _derivations.markdown(2)  # the real derivation, checked
    assert first[1] is True and first[0].startswith("## ")
    monkeypatch.setattr(derivation, "derive", None)  # would fail if called
    assert _derivations.markdown(2) == first


def test_changed_sources_or_a_corrupt_entry_derive_afresh(kept, monkeypatch, derivations):
    assert _derivations.markdown(5) == ("## a derivation\n\nσ − y ✓\n", False)
    assert _derivations.markdown(5) == ("## a derivation\n\nσ − y ✓\n", False)
    assert derivations == [5]
    (entry,) = [p for p in Path(kept).iterdir() if p.suffix == ".txt"]
    entry.write_bytes(entry.read_bytes()[:-1] + b"!")  # its digest no longer matches
    _derivations.markdown(5)
    assert derivations == [5, 5]
    monkeypatch.setattr(_cache, "sources", lambda package: f"other sources of {package}")
    _derivations.markdown(5)
    assert derivations == [5, 5, 5]


def test_nothing_is_kept_with_the_cache_off(monkeypatch, derivations):
    monkeypatch.setitem(_cache._PROGRAMS, "dir", None)  # noqa: SLF001
    _derivations.markdown(3)
    _derivations.markdown(3)
    assert derivations == [3, 3]


def _derive_in_a_process(cache: Path) -> tuple[list, set[str]]:
    """``python -m verify._derivations`` as the report starts it: what it prints, and which of
    JAX and SymPy it imported."""
    code = ("import runpy, sys; runpy.run_module('verify._derivations', run_name='__main__'); "
            "print(sorted(m for m in ('jax', 'sympy') if m in sys.modules), file=sys.stderr)")
    env = {**os.environ, "SOFTMAX_CE_CACHE_DIR": str(cache)}
    env.pop("SOFTMAX_CE_NO_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), set(ast.literal_eval(proc.stderr.strip().splitlines()[-1]))


def test_the_reports_derivations_are_derived_beside_jax_not_with_it(tmp_path, monkeypatch):
    """The report's process derives in a process that never imports JAX (it runs while the
    report imports JAX and compiles); kept in the cache, the next one imports no SymPy
    either, and both print what deriving here gives. Started from a folder that holds another
    ``verify``, the process still runs the report's own."""
    cache = tmp_path / "cache"
    first, imported = _derive_in_a_process(cache)
    assert imported == {"sympy"}
    again, imported = _derive_in_a_process(cache)
    assert imported == set() and again == first
    general, three = first
    assert general == [derivation.derive().to_markdown(), True]
    assert three[1] is True and "c = 3" in three[0]

    other = tmp_path / "other-checkout" / "verify"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    (other / "_derivations.py").write_text("print('[[\"not ours\", true], [\"nor this\", true]]')")
    monkeypatch.chdir(other.parent)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(other.parent))])
    monkeypatch.setenv("SOFTMAX_CE_CACHE_DIR", str(cache))
    assert _derivations.Deriving(no_cache=False).result() == [tuple(d) for d in first]


def test_a_derivations_process_that_fails_is_derived_here(monkeypatch, derivations):
    monkeypatch.setitem(_cache._PROGRAMS, "dir", None)  # noqa: SLF001 - derived, not read back
    monkeypatch.setattr(_derivations.sys, "executable", "/bin/false")  # exits 1 at once
    assert _derivations.Deriving(no_cache=True).result() == [
        ("## a derivation\n\nσ − y ✓\n", True)] * 2
    assert derivations == [None, 3]
    monkeypatch.setattr(_derivations.sys, "executable", "/no/such/python")  # cannot start
    assert _derivations.Deriving(no_cache=True).result()[0][1] is True


def test_a_derivations_process_is_ended_when_the_report_stops():
    deriving = _derivations.Deriving(no_cache=True)
    deriving.stop()
    assert deriving._process.poll() is not None  # noqa: SLF001
