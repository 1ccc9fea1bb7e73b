"""A persistent cache of compiled programs, so that a second ``softmax-ce verify`` compiles
nothing.

JAX's persistent compilation cache, kept in the user's cache directory (``platformdirs``) under a
folder named for the versions of softmax-ce, JAX and jaxlib: a new version never reads an old
version's programs. Beside it, this package keeps its own programs — the reference's and its own
closed form's, a loss variant's too — serialized whole under a key it computes without tracing
them (:func:`load`, :func:`store`), so that a warm run does not even trace and lower them; each
entry carries the SHA-256 of its contents and the key names the machine's CPU, SymPy's version
and the SHA-256 of this package's and ``derivation``'s source files, so that a corrupt entry,
one written on another machine, or one written by other code under the same version (an edited
checkout) is never loaded. A program JAX's own cache handed back is not kept
(:func:`load_or_compile`): serialized a second time, an executable loses its compiled code.
The expressions of a loss variant's theory are kept beside them (:func:`store_expressions`:
pickled SymPy of this package's own derivation, never a user's text), so that a new grid of the
same loss does not derive it again.
``SOFTMAX_CE_CACHE_DIR`` moves it; ``SOFTMAX_CE_NO_CACHE=1`` (or the CLI's ``--no-cache``) turns
it off. A cache that cannot be used — a directory that cannot be created or
written, corrupt entries — never fails a run: it is left alone (JAX recompiles what it cannot
read or write, and its warnings about it are silenced).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
import threading
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

NO_CACHE = "SOFTMAX_CE_NO_CACHE"
CACHE_DIR = "SOFTMAX_CE_CACHE_DIR"

_PROGRAMS: dict[str, Path | None] = {"dir": None}
"""Where :func:`store` keeps programs: set by :func:`enable`."""


def disabled() -> bool:
    """``SOFTMAX_CE_NO_CACHE`` is set to something other than ``""``, ``0``, ``false`` or ``no``."""
    return os.environ.get(NO_CACHE, "").strip().lower() not in ("", "0", "false", "no")


def _version(package: str) -> str:
    """An installed package's version, read from its metadata (without importing it), or from
    the package itself where it has none (a source tree on the path)."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        pass
    try:
        return str(importlib.import_module(package).__version__)
    except (ImportError, AttributeError):
        return "unknown"


def directory() -> Path:
    """Where this version's programs are cached (the versions read without importing JAX)."""
    import platformdirs

    root = os.environ.get(CACHE_DIR) or platformdirs.user_cache_dir("softmax-ce")
    name = (f"xla-softmax-ce{_version('softmax-ce')}-jax{_version('jax')}"
            f"-jaxlib{_version('jaxlib')}")
    return Path(root) / name


def enable() -> Path | None:
    """Turns the persistent cache on, unless disabled; returns its directory, or None when it
    is off or cannot be used. Call before anything compiles."""
    path = enable_texts()
    if path is None:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    # Every program is worth keeping: ours compile in a fraction of a second each.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # An entry that cannot be read or written is recompiled; JAX says so as a warning, which a
    # user can do nothing about: keep it out of their terminal.
    warnings.filterwarnings("ignore", message="Error (reading|writing) persistent compilation")
    return path


def enable_texts() -> Path | None:
    """Turns on the keeping of this package's texts (:func:`load_text`) and programs, unless
    disabled, without importing JAX (a process that derives and compiles nothing calls this
    alone); returns the directory, or None when it is off or cannot be used."""
    if disabled():
        return None
    try:
        path = directory()
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    _PROGRAMS["dir"] = path / "programs"
    return path


@cache
def sources(package: str) -> str:
    """The SHA-256 of a package's source files (names and bytes), found without importing it:
    part of every key, so that an edited checkout (an editable install) never loads a program
    or a text kept by other code under the same version."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    digest = hashlib.sha256()
    if folder is not None:
        try:
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix in (".py", ".lark"):
                    digest.update(str(path.relative_to(folder)).encode() + b"\0"
                                  + path.read_bytes())
        except OSError:  # a file that cannot be read (or is being saved): a key of this process
            return f"unreadable sources {os.getpid()}"
    return digest.hexdigest()


@cache
def _sympy_version() -> str:
    """SymPy's version, read without importing it: a variant's programs hold expressions it
    simplified, so a new SymPy may trace them differently."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sympy")
    except PackageNotFoundError:
        return "no sympy"


@cache
def _machine() -> str:
    """The CPU that compiled programs are specific to."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def _entry(key: tuple[Any, ...], compiled: bool = True) -> Path | None:
    """Where the entry of ``key`` lives; a compiled program's key names JAX, its backend and
    the CPU too (a text's or SymPy expressions' does not: they are read without importing
    JAX, and are the same on any machine)."""
    folder = _PROGRAMS["dir"]
    if folder is None:
        return None
    code = (sources("verify"), sources("derivation"), _sympy_version())
    if compiled:  # the JAX imported (its folder is named from the installed one's metadata)
        import jax
        import jaxlib

        code += (jax.__version__, jaxlib.__version__, jax.default_backend(), _machine())
    text = repr((key, code))
    return folder / (hashlib.sha256(text.encode()).hexdigest() + ".bin")


def _read(path: Path | None) -> bytes | None:
    """The payload of an entry written by :func:`_write`, or None (none, or not whole)."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, payload = data[:32], data[32:]
    return payload if hashlib.sha256(payload).digest() == digest else None


def _write(path: Path | None, payload: bytes) -> None:
    """Writes ``payload`` and its SHA-256 under a temporary name, then renames it: an entry is
    whole or absent. Failures are ignored (a cache that cannot be written is no cache)."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(hashlib.sha256(payload).digest() + payload)
        partial.replace(path)
    except OSError:
        return


def load(key: tuple[Any, ...]) -> Any | None:
    """The compiled program stored under ``key``, or None (none stored, not enabled, corrupt,
    or not loadable)."""
    payload = _read(_entry(key))
    if payload is None:
        return None
    try:
        from jax.experimental import serialize_executable

        return serialize_executable.deserialize_and_load(*pickle.loads(payload))
    except Exception:  # noqa: BLE001 - any failure is a cache miss: the caller compiles
        return None


_JAX_HITS = threading.local()
"""Per thread: how many programs JAX's own persistent cache handed back instead of compiling."""
_LISTENING = threading.Lock()


def _count_jax_hits(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _JAX_HITS.count = getattr(_JAX_HITS, "count", 0) + 1


@cache
def _listen() -> None:
    import jax.monitoring

    jax.monitoring.register_event_listener(_count_jax_hits)


def load_or_compile(key: tuple[Any, ...] | None, compile_: Callable[[], Any]) -> Any:
    """The program kept under ``key``, else ``compile_()``, kept under ``key`` (None: not kept)
    when it was compiled here. A program JAX's own cache handed back is not kept: serialized
    again, its compiled code is gone (the entry loads, then fails to run with ``NOT_FOUND:
    Function ... not found``); JAX hands it back again next time."""
    if key is not None and (loaded := load(key)) is not None:
        return loaded
    with _LISTENING:
        _listen()
    hits = getattr(_JAX_HITS, "count", 0)
    compiled = compile_()  # in this thread: JAX counts its cache hits in it
    if key is not None and getattr(_JAX_HITS, "count", 0) == hits:
        store(key, compiled)
    return compiled


def store(key: tuple[Any, ...], compiled: Any) -> None:
    """Keeps a compiled program under ``key`` (whole or not at all); failures are ignored."""
    path = _entry(key)
    if path is None:
        return
    try:
        from jax.experimental import serialize_executable

        payload = pickle.dumps(serialize_executable.serialize(compiled))
    except Exception:  # noqa: BLE001 - a program that cannot be serialized is not kept
        return
    _write(path, payload)


def load_text(kind: str, key: tuple[Any, ...]) -> str | None:
    """The text stored under ``(kind, key)`` by :func:`store_text`, or None (none stored, not
    enabled, or corrupt)."""
    path = _entry((kind, *key), compiled=False)
    payload = _read(None if path is None else path.with_suffix(".txt"))
    try:
        return None if payload is None else payload.decode()
    except UnicodeDecodeError:
        return None


def store_text(kind: str, key: tuple[Any, ...], text: str) -> None:
    """Keeps ``text`` under ``(kind, key)`` (whole or not at all); failures are ignored."""
    path = _entry((kind, *key), compiled=False)
    _write(None if path is None else path.with_suffix(".txt"), text.encode())


def load_expressions(kind: str, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The SymPy expressions stored under ``(kind, key)`` by :func:`store_expressions`, or
    None (none stored, not enabled, corrupt)."""
    path = _entry((kind, *key), compiled=False)
    payload = _read(None if path is None else path.with_suffix(".sympy"))
    if payload is None:
        return None
    try:
        expressions = pickle.loads(payload)  # this package's own derivation, kept by it
    except Exception:  # noqa: BLE001 - any failure is a cache miss: the caller derives
        return None
    return expressions if isinstance(expressions, tuple) else None


def store_expressions(kind: str, key: tuple[Any, ...], expressions: tuple[Any, ...]) -> None:
    """Keeps SymPy expressions of a derivation under ``(kind, key)`` (pickled, whole or not at
    all); failures are ignored."""
    path = _entry((kind, *key), compiled=False)
    try:
        payload = pickle.dumps(expressions)
    except Exception:  # noqa: BLE001 - what cannot be pickled is not kept
        return
    _write(None if path is None else path.with_suffix(".sympy"), payload)
