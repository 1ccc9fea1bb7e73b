"""Writing a file whole or not at all (no JAX here: the CLI uses it too)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write to a temporary file in the same directory, then rename it over ``path``: a reader
    sees the old file or the new one, never half of it. The file gets the permissions a plain
    ``open(path, "w")`` would (0666 less the umask), not the temporary file's 0600."""
    target = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
