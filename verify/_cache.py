"""A persistent cache of compiled programs, so that a second ``softmax-ce verify`` compiles
nothing.

JAX's persistent compilation cache, kept in the user's cache directory (``platformdirs``) under a
folder named for the versions of softmax-ce, JAX and jaxlib: a new version never reads an old
version's programs. ``SOFTMAX_CE_CACHE_DIR`` moves it; ``SOFTMAX_CE_NO_CACHE=1`` (or the CLI's
``--no-cache``) turns it off. A cache that cannot be used — a directory that cannot be created or
written, corrupt entries — never fails a run: it is left alone (JAX recompiles what it cannot
read or write, and its warnings about it are silenced).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

NO_CACHE = "SOFTMAX_CE_NO_CACHE"
CACHE_DIR = "SOFTMAX_CE_CACHE_DIR"


def disabled() -> bool:
    """``SOFTMAX_CE_NO_CACHE`` is set to something other than ``""``, ``0``, ``false`` or ``no``."""
    return os.environ.get(NO_CACHE, "").strip().lower() not in ("", "0", "false", "no")


def directory() -> Path:
    """Where this version's programs are cached."""
    from importlib.metadata import version

    import jax
    import jaxlib
    import platformdirs

    root = os.environ.get(CACHE_DIR) or platformdirs.user_cache_dir("softmax-ce")
    name = f"xla-softmax-ce{version('softmax-ce')}-jax{jax.__version__}-jaxlib{jaxlib.__version__}"
    return Path(root) / name


def enable() -> Path | None:
    """Turns the persistent cache on, unless disabled; returns its directory, or None when it
    is off or cannot be used. Call before anything compiles."""
    if disabled():
        return None
    import jax

    try:
        path = directory()
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Every program is worth keeping: ours compile in a fraction of a second each.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # An entry that cannot be read or written is recompiled; JAX says so as a warning, which a
    # user can do nothing about: keep it out of their terminal.
    warnings.filterwarnings("ignore", message="Error (reading|writing) persistent compilation")
    return path
