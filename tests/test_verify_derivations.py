"""The report's derivations are derived once per version of the code: kept in the cache, read
back whole, derived afresh when the derivation's sources change or an entry is corrupt."""

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
