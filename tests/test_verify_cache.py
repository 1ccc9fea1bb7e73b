"""The persistent cache of compiled programs: on by default for the CLI, off with --no-cache or
SOFTMAX_CE_NO_CACHE, versioned, and never a reason for a run to fail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from verify import _cache

SMALL = ["verify", "--classes", "3", "--dtypes", "float32", "--scales", "1", "--labels",
         "onehot", "--samples", "8", "--format", "json"]


def run(cache_dir, *flags, **env):
    environment = {**os.environ, "SOFTMAX_CE_CACHE_DIR": str(cache_dir), **env}
    for name in ("JAX_COMPILATION_CACHE_DIR", "SOFTMAX_CE_NO_CACHE"):
        environment.pop(name, None)
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "verify._cli", *SMALL, *flags],
                          capture_output=True, text=True, env=environment, timeout=300)


def entries(cache_dir):
    return sorted(p for p in Path(cache_dir).rglob("*") if p.is_file())


def test_the_cache_is_versioned_and_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("SOFTMAX_CE_CACHE_DIR", str(tmp_path))
    import jax
    import jaxlib

    name = _cache.directory().name
    assert name.startswith("xla-softmax-ce") and f"-jax{jax.__version__}-" in name
    assert name.endswith(f"-jaxlib{jaxlib.__version__}")
    assert _cache.directory().parent == tmp_path
    for value, off in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv("SOFTMAX_CE_NO_CACHE", value)
        assert _cache.disabled() is off
    monkeypatch.setenv("SOFTMAX_CE_NO_CACHE", "1")
    assert _cache.enable() is None


def test_programs_are_kept_and_corrupt_entries_are_recompiled(tmp_path):
    first = run(tmp_path)
    assert first.returncode == 0 and first.stderr == ""
    written = entries(tmp_path)
    assert written  # the programs were kept
    for path in written:
        path.write_bytes(b"not a compiled program")
    corrupt = run(tmp_path)
    assert corrupt.returncode == 0, corrupt.stderr
    assert corrupt.stdout == first.stdout and corrupt.stderr == ""


def test_a_program_jax_handed_back_is_not_kept_half(tmp_path):
    """With JAX's cache holding a program and this package's not (its entries removed, or an
    edited checkout keyed anew), JAX hands the program back; serialized again it would lose its
    compiled code, and the next run would fail running it. It is not kept: every run works."""
    first = run(tmp_path)
    assert first.returncode == 0, first.stderr
    (programs,) = Path(tmp_path).glob("*/programs")
    shutil.rmtree(programs)
    for _ in range(2):
        again = run(tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout == first.stdout and again.stderr == ""


def test_no_cache_writes_nothing(tmp_path):
    proc = run(tmp_path, "--no-cache")
    assert proc.returncode == 0 and '"ok": true' in proc.stdout
    assert entries(tmp_path) == []


def test_a_cache_directory_that_cannot_be_made_does_not_fail_the_run(tmp_path):
    in_the_way = tmp_path / "cache"
    in_the_way.write_text("a file where the cache directory would go")
    proc = run(in_the_way)
    assert proc.returncode == 0 and proc.stderr == ""
    assert '"ok": true' in proc.stdout


def test_enable_gives_up_quietly_where_it_cannot_write(monkeypatch, tmp_path):
    in_the_way = tmp_path / "file"
    in_the_way.write_text("")
    monkeypatch.setenv("SOFTMAX_CE_CACHE_DIR", str(in_the_way / "below-a-file"))
    assert _cache.enable() is None


def test_a_kept_program_loads_whole_and_a_corrupt_one_not_at_all(monkeypatch, tmp_path):
    import jax
    import jax.numpy as jnp
    import numpy as np

    monkeypatch.setitem(_cache._PROGRAMS, "dir", tmp_path)
    compiled = jax.jit(lambda x: 2 * x + 1).lower(jnp.ones(3)).compile()
    _cache.store(("a test program",), compiled)
    loaded = _cache.load(("a test program",))
    assert np.array_equal(loaded(jnp.arange(3.0)), [1.0, 3.0, 5.0])
    assert _cache.load(("another key",)) is None
    (entry,) = tmp_path.iterdir()
    data = bytearray(entry.read_bytes())
    data[-1] ^= 1  # one bit of the program flipped: its checksum no longer matches
    entry.write_bytes(bytes(data))
    assert _cache.load(("a test program",)) is None


def test_a_program_kept_by_other_code_of_the_same_version_is_not_loaded(monkeypatch, tmp_path):
    """An edited checkout (an editable install) keeps its version number: the key holds the
    package's sources, so a program traced from the old code is never loaded for the new."""
    import jax
    import jax.numpy as jnp

    monkeypatch.setitem(_cache._PROGRAMS, "dir", tmp_path)
    compiled = jax.jit(lambda x: 2 * x + 1).lower(jnp.ones(3)).compile()
    _cache.store(("a test program",), compiled)
    assert _cache.load(("a test program",)) is not None
    for package in ("verify", "derivation"):
        with monkeypatch.context() as edited:
            real = _cache.sources
            edited.setattr(_cache, "sources", lambda name, edited_one=package: (
                "edited" if name == edited_one else real(name)))
            assert _cache.load(("a test program",)) is None, package
    assert len(_cache.sources("verify")) == 64 and _cache.sources("verify") != _cache.sources(
        "derivation")


def test_sources_that_cannot_be_read_give_a_key_of_this_process_not_an_error(monkeypatch):
    """A source file that cannot be read (permissions, an editor saving it) never fails a run:
    the key is one no other process wrote, so nothing kept is loaded."""
    def unreadable(self):
        raise PermissionError(13, "Permission denied", str(self))

    _cache.sources.cache_clear()
    try:
        monkeypatch.setattr(Path, "read_bytes", unreadable)
        key = _cache.sources("verify")
        assert key == f"unreadable sources {os.getpid()}"
    finally:
        monkeypatch.undo()
        _cache.sources.cache_clear()
    assert len(_cache.sources("verify")) == 64


VARIANT_RUN = """
import json, sys
from verify import _cache, _variant_cells
import verify
_cache.enable()
report = verify.check(loss=verify.Loss(label_smoothing=0.1, ignore_index=-100, reduction="mean",
                                       targets="indices"),
                      classes=[5], dtypes=["float32"], scales=[1.0], samples=8)
print(json.dumps({"sympy": "sympy" in sys.modules, "traces": _variant_cells.TRACES,
                  "report": report.to_json()}))
"""


def test_a_warm_variant_check_traces_nothing_and_derives_nothing(tmp_path):
    """A loss variant's reference program and its derived closed form are kept as the plain
    ones are: a second process loads them, so it neither traces them nor imports SymPy to
    derive the closed form, and its report is the same, byte for byte."""
    import json

    environment = {**os.environ, "SOFTMAX_CE_CACHE_DIR": str(tmp_path)}
    for name in ("JAX_COMPILATION_CACHE_DIR", "SOFTMAX_CE_NO_CACHE"):
        environment.pop(name, None)
    cold, warm = (json.loads(subprocess.run(
        [sys.executable, "-c", VARIANT_RUN], capture_output=True, text=True, env=environment,
        timeout=300, check=True).stdout) for _ in range(2))
    assert cold["sympy"] and cold["traces"] == {"reference": 1, "closed_form": 1}
    assert not warm["sympy"] and warm["traces"] == {"reference": 0, "closed_form": 0}
    assert warm["report"] == cold["report"]


def test_a_loss_theory_is_kept_and_read_back_equal(monkeypatch, tmp_path):
    """A variant's theory (SymPy) is derived once where the cache is on: a later process reads
    back the same expressions instead of deriving them again; a corrupt entry is derived."""
    import sympy

    import derivation._loss_theory
    from derivation import Loss
    from verify import _loss

    monkeypatch.setitem(_cache._PROGRAMS, "dir", tmp_path)
    loss = derivation._loss_theory.structure(Loss(
        label_smoothing=0.1, ignore_index=-100, reduction="mean", z_loss=1e-3, targets="indices"))
    derived = _loss._theory(loss)
    (entry,) = tmp_path.glob("*.sympy")

    def not_again(_):
        raise AssertionError("derived again")

    with monkeypatch.context() as kept:
        kept.setattr(derivation._loss_theory, "loss_theory", not_again)
        read_back = _loss._theory(loss)
    assert [sympy.srepr(e) for e in read_back] == [sympy.srepr(e) for e in derived]
    assert all(a == b for a, b in zip(read_back, derived, strict=True))
    entry.write_bytes(entry.read_bytes()[:-1])  # cut short: no longer whole
    with monkeypatch.context() as kept, pytest.raises(AssertionError, match="derived again"):
        kept.setattr(derivation._loss_theory, "loss_theory", not_again)
        _loss._theory(loss)


def test_a_closed_form_without_a_module_is_checked_and_not_kept(monkeypatch, tmp_path):
    """A function made by ``exec`` (or ``sympy.lambdify``) has ``__module__`` None: it is a
    user's function, checked (plain and variant) and never kept under this package's name."""
    import jax

    import verify
    from verify import _opinions

    monkeypatch.setitem(_cache._PROGRAMS, "dir", tmp_path)
    namespace = {}
    exec("import jax\ndef plain(z, y):\n    return jax.nn.softmax(z, axis=-1) - y\n"  # noqa: S102
         "def variant(z, targets, g):\n"
         "    return g * (jax.nn.softmax(z, axis=-1) - jax.nn.one_hot(targets, z.shape[-1],"
         " dtype=z.dtype))\n", namespace)
    assert namespace["plain"].__module__ is None
    grid = dict(classes=[3], dtypes=["float32"], scales=[1.0], samples=8)
    assert verify.check(namespace["plain"], labels=["onehot"], **grid).ok
    assert verify.check(namespace["variant"], loss=verify.Loss(targets="indices"), **grid).ok
    spec = (jax.ShapeDtypeStruct((2, 3), "float32"),) * 2
    assert _opinions._saved_key("closed_form", (namespace["plain"],), spec) is None


def test_a_new_sympy_version_keys_every_entry_anew(monkeypatch, tmp_path):
    """A variant's programs hold expressions SymPy simplified: an entry kept under another
    SymPy version is not loaded (read from its metadata, SymPy is not imported)."""
    import jax
    import jax.numpy as jnp

    monkeypatch.setitem(_cache._PROGRAMS, "dir", tmp_path)
    _cache.store(("a test program",), jax.jit(lambda x: x + 1).lower(jnp.ones(2)).compile())
    assert _cache.load(("a test program",)) is not None
    monkeypatch.setattr(_cache, "_sympy_version", lambda: "0.0 (another)")
    assert _cache.load(("a test program",)) is None


def test_only_this_packages_own_functions_and_losses_are_kept_under_their_names():
    """A wrapper of this package around a user's function (a kernel's bridge, a function seen
    as sequences) takes the user's names; it is never keyed by them, nor by a wrapped
    function of this package's name, since its own fields change what it computes."""
    import jax

    from derivation import Loss
    from verify import _kernel_plan, _opinions, _variant
    from verify._reference import plain

    def mine(z, y):
        return z

    spec = (jax.ShapeDtypeStruct((2, 3), "float32"),)
    loss = Loss(label_smoothing=0.1)
    assert _opinions._saved_key("reference", (plain(), ("float32",), None), spec) is not None
    assert _opinions._saved_key("variant reference", (loss, ("float32",)), spec) is not None
    assert _opinions._saved_key("variant closed form",
                                (_variant.DerivedClosedForm(loss), loss), spec) is not None
    for head in (mine, _kernel_plan.Traced(mine, False, 2),
                 _kernel_plan.Sequenced(_variant.DerivedClosedForm(loss), 2)):
        assert _opinions._saved_key("closed_form", (head,), spec) is None, head
    # σ − y seen as sequences (a check with a shape): kept, by its own fields too
    seen = [_opinions._saved_key("closed_form", (_kernel_plan.Traced(
        _opinions.softmax_minus_labels, False, t),), spec) for t in (2, 3)]
    plain_key = _opinions._saved_key("closed_form", (_opinions.softmax_minus_labels,), spec)
    assert None not in seen and len({repr(k) for k in (*seen, plain_key)}) == 3


def test_the_folder_is_named_without_package_metadata_too(monkeypatch):
    """The folder is named from the packages' metadata (read without importing JAX); a package
    on the path without metadata (a source tree) is named by its ``__version__``, one with
    neither 'unknown', rather than failing the run."""
    from importlib import metadata

    import jax

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert _cache._version("jax") == jax.__version__
    assert _cache._version("softmax-ce") == "unknown"
    assert f"-jax{jax.__version__}-" in _cache.directory().name
