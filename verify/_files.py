"""Output files: checked before any work, written whole or not at all (no JAX here: the CLI uses
it too).

:func:`check_writable` answers, before anything is computed, whether a path can be written the
way it will be: a temporary file created beside it, then renamed over it. :class:`Staged` writes
every output of a command to temporary files first and renames them only when all of them are
complete, so a full disk or a Ctrl-C leaves no partial file and no half of a set of files.
A symbolic link is written through (its target is the file replaced), and a path that is no
regular file — a device such as ``/dev/null``, a FIFO — is written into, never replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def resolved(path: str | os.PathLike[str]) -> Path:
    """The path a file is written at: a symbolic link's target (as ``open`` writes through it),
    so that the link stays a link."""
    target = Path(path)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def special(path: Path) -> bool:
    """Whether ``path`` exists and is no regular file or directory (a device, a FIFO): it is
    written into, not replaced by a renamed file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` (itself excluded) that exists (``.`` at worst)."""
    for parent in path.parents:
        if parent.exists() or parent == parent.parent:
            return parent
    return Path(".")


def _probe(directory: Path) -> str | None:
    """Why a file cannot be created in ``directory`` (created and removed at once), or None.

    Asking is the only answer that holds for every case: ``os.access`` says yes to root on a
    read-only directory, and cannot see a read-only file system mounted with ACLs or quotas.
    """
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".softmax-ce-probe-")
    except OSError as error:
        return error.strerror or type(error).__name__
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def check_writable(path: str | os.PathLike[str], *, directory: bool = False) -> None:
    """Checks, before any work, that ``path`` can be written as it will be.

    A file is written to a temporary file in its directory and renamed over ``path``: the
    directory must exist, be a directory, and take a new file; ``path`` must not be a directory.
    A directory (``directory=True``) is created if it is missing (its parent must take it) and
    then takes new files.

    Raises:
        ValueError: why not, naming the path, e.g. ``cannot write 'f.txt/r.json': 'f.txt' is a
            file, not a directory``.
    """
    shown = str(path)
    target = Path(path) if directory else resolved(path)
    if not directory and special(target):  # written into: it must take writes, nothing more
        if not os.access(target, os.W_OK):
            raise ValueError(f"cannot write {shown!r}: it is not writable")
        return
    if directory and target.exists() and not target.is_dir():
        raise ValueError(f"{shown!r} exists and is not a directory")
    if not directory and target.is_dir():
        raise ValueError(f"{shown!r} is a directory; expected a file path")
    home = target if directory and target.is_dir() else target.parent
    if not home.exists():
        ancestor = _existing_ancestor(home)
        if not ancestor.is_dir():
            raise ValueError(f"cannot write {shown!r}: {str(ancestor)!r} is a file, not a "
                             "directory")
        raise ValueError(f"cannot write {shown!r}: directory {str(home)!r} does not exist")
    if not home.is_dir():
        raise ValueError(f"cannot write {shown!r}: {str(home)!r} is a file, not a directory")
    why = _probe(home)
    if why is not None:
        raise ValueError(f"cannot write {shown!r}: directory {str(home)!r} is not writable "
                         f"({why})")


def _keep(path: Path) -> Path | None:
    """A hard link to the file at ``path`` under a temporary name, to restore it from; None
    when there is no file or the file system cannot link."""
    if not path.is_file():
        return None
    for attempt in range(100):
        kept = path.with_name(f".{path.name}.{os.getpid()}.{attempt}.old")
        try:
            os.link(path, kept)
        except FileExistsError:
            continue
        except OSError:
            return None
        return kept
    return None


class Staged:
    """Files written together: each to a temporary file beside its target, all renamed over
    their targets by :meth:`commit`, or all removed by :meth:`discard`.

    Use :func:`staged`, which commits when its block ends and discards when it raises (a
    ``KeyboardInterrupt`` included).
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._into: list[tuple[Path, Path]] = []
        """(temporary file, device or FIFO): copied into it on commit, before any rename."""
        self._created: list[Path] = []

    def directory(self, path: str | os.PathLike[str]) -> Path:
        """``path`` as a directory, created now if missing and removed again on discard."""
        folder = Path(path)
        if not folder.is_dir():
            folder.mkdir()
            self._created.append(folder)
        return folder

    def temporary(self, target: str | os.PathLike[str]) -> Path:
        """A new, empty temporary file beside ``target``, renamed over it on commit; for
        writers that take a path."""
        final = resolved(target)
        if special(final):  # a device or a FIFO: staged in the temporary directory
            fd, name = tempfile.mkstemp(prefix=".softmax-ce-", suffix=".tmp")
            os.close(fd)
            self._into.append((Path(name), final))
            return Path(name)
        fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        os.close(fd)
        self._pending.append((Path(name), final))
        return Path(name)

    def write(self, target: str | os.PathLike[str], data: str | bytes) -> None:
        """Writes ``data`` (text as UTF-8) to the temporary file of ``target``."""
        raw = data.encode() if isinstance(data, str) else data
        temporary = self.temporary(target)
        with open(temporary, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self) -> None:
        """Renames every temporary file over its target, with the permissions a plain
        ``open(path, "w")`` gives (0666 less the umask), not the temporary file's 0600.

        If a rename fails, those already done are undone: a new target is removed, an old one
        comes back from the hard link kept of it (where the file system has hard links).
        Devices and FIFOs are written into first (``/dev/full`` fails before any rename).
        """
        while self._into:
            temporary, final = self._into[0]
            with open(temporary, "rb") as source, open(final, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.unlink(temporary)
            self._into.pop(0)
        mode = 0o666 & ~_umask()
        for temporary, _ in self._pending:
            os.chmod(temporary, mode)
        done: list[tuple[Path, Path | None]] = []
        links: list[Path] = []
        try:
            while self._pending:
                temporary, final = self._pending[0]
                kept = _keep(final)
                links += [kept] if kept is not None else []
                os.replace(temporary, final)
                done.append((final, kept))
                self._pending.pop(0)
        except BaseException:
            for final, kept in reversed(done):
                with contextlib.suppress(BaseException):  # undo all, whatever interrupts one
                    if kept is None:
                        os.unlink(final)
                    else:
                        os.replace(kept, final)
            raise
        finally:
            for kept in links:
                with contextlib.suppress(BaseException):
                    os.unlink(kept)
        self._created.clear()

    def discard(self) -> None:
        """Removes every temporary file, and the directories this stage created if empty."""
        for temporary, _ in self._pending + self._into:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        self._pending.clear()
        self._into.clear()
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created.clear()


@contextlib.contextmanager
def staged() -> Iterator[Staged]:
    """A :class:`Staged` set of files: committed when the block ends, discarded if it raises."""
    stage = Staged()
    try:
        yield stage
        stage.commit()
    except BaseException:
        stage.discard()
        raise


def write_atomically(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write to a temporary file in the same directory, then rename it over ``path``: a reader
    sees the old file or the new one, never half of it. The file gets the permissions a plain
    ``open(path, "w")`` would (0666 less the umask), not the temporary file's 0600."""
    with staged() as stage:
        stage.write(path, data)
