"""Faults injected into the command line: every output path against a read-only directory, a
missing one, a file in the way, a full disk and a Ctrl-C; every numeric flag against 0, negative,
NaN, inf, huge and non-numeric values; grids too large for the memory.

The contract: bad input or an output that cannot be written exits 2 with one line ``error: ...``
on stderr and no traceback; a Ctrl-C exits 130 with one line; either way no file is left
behind, whole or partial. The CLI runs in-process (``verify._cli.main``) on one-cell grids, and
in a real process only where a process matters (a signal, the peak memory).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import derivation
import verify
from verify import _files, _limits
from verify._cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "derivations" / "jacobian-and-sigmoid.md"
TINY = ["--classes", "2", "--dtypes", "float32", "--scales", "1", "--labels", "onehot",
        "--samples", "1", "--quiet"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, pattern: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


def entries(folder: Path) -> list[str]:
    """Everything under ``folder``, hidden temporary files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


@pytest.fixture(autouse=True)
def tiny_report(monkeypatch):
    """``report`` verifies the default grid: here, one cell."""
    real = verify.check

    def one_cell(closed_form=None, **options):
        if "classes" not in options:  # report's call: the default grid
            options.update(classes=(2,), dtypes=("float32",), scales=(1.0,),
                           labels=("onehot",), samples=1)
        return real(closed_form, **options)

    monkeypatch.setattr(verify, "check", one_cell)


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if anything is computed: the fault must be found before the work."""
    def started(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(verify, "check", started)
    monkeypatch.setattr(derivation, "derive", started)
    monkeypatch.setattr(derivation, "check_text", started)


# --- output paths -------------------------------------------------------------------------------

# name -> (argv for an output directory, the flag named in errors, the path the output goes to)
OUTPUTS = {
    "verify --out": (lambda d: ["verify", *TINY, "--format", "json", "--out", str(d / "r.json")],
                     "--out", lambda d: d / "r.json"),
    "verify --plot": (lambda d: ["verify", *TINY, "--plot", str(d / "map.png")],
                      "--plot", lambda d: d / "map.png"),
    "derive --out": (lambda d: ["derive", "--classes", "2", "--quiet", "--out", str(d / "d.txt")],
                     "--out", lambda d: d / "d.txt"),
    "report --out": (lambda d: ["report", "--quiet", "--out", str(d / "rep")],
                     "--out", lambda d: d / "rep"),
    "check --out": (lambda d: ["check", str(EXAMPLE), "--out", str(d / "c.txt")],
                    "--out", lambda d: d / "c.txt"),
}


def _mount(folder: Path, options: str) -> bool:
    """Mounts a tmpfs on ``folder`` when this process may (root with CAP_SYS_ADMIN)."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _blocks_writes(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return True
    (folder / "probe").unlink()
    return False


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A directory no file can be created in: chmod 0555 where that blocks writes (not root),
    else a read-only tmpfs where one can be mounted, else file creation in it mocked to fail
    with EACCES. Each way is checked to block writes, so the test never passes vacuously."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = False
    folder.chmod(0o555)
    if not _blocks_writes(folder):
        folder.chmod(0o755)
        mounted = _mount(folder, "ro,size=64k")
    if not _blocks_writes(folder):
        real = _files.tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve() == folder.resolve():
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(_files.tempfile, "mkstemp", refuse)
        with pytest.raises(PermissionError):
            _files.tempfile.mkstemp(dir=folder)
    yield folder
    if mounted:
        _umount(folder)
    folder.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A directory whose file system is full: a tiny tmpfs filled up where one can be mounted,
    else ``os.replace`` into it mocked to fail with ENOSPC. Yields (folder, filler names)."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = _mount(folder, "size=64k")
    if mounted:
        with open(folder / "filler", "wb", buffering=0) as handle, \
                contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
        with pytest.raises(OSError):
            (folder / "more").write_bytes(b"\0" * 8192)
        with contextlib.suppress(FileNotFoundError):
            (folder / "more").unlink()
    else:
        real = os.replace

        def no_space(source, target, *args, **kwargs):
            if folder in Path(target).parents:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(source, target, *args, **kwargs)

        monkeypatch.setattr(_files.os, "replace", no_space)
    yield folder, (["filler"] if mounted else [])
    if mounted:
        _umount(folder)


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_missing_directory_is_refused_before_any_work(output, tmp_path, capsys, no_work):
    argv, flag, target = OUTPUTS[output]
    folder = tmp_path / "missing"
    code, out, err = run(capsys, *argv(folder))
    assert code == 2 and out == ""
    assert_one_error_line(err, rf"^error: {flag}: cannot write '{re.escape(str(target(folder)))}'"
                               rf": directory '{re.escape(str(folder))}' does not exist$")
    assert not folder.exists()


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_file_in_the_way_is_refused_before_any_work(output, tmp_path, capsys, no_work):
    argv, flag, target = OUTPUTS[output]
    in_the_way = tmp_path / "f.txt"
    in_the_way.write_text("mine")
    code, out, err = run(capsys, *argv(in_the_way))
    assert code == 2 and out == ""
    assert_one_error_line(err, rf"^error: {flag}: cannot write '{re.escape(str(target(in_the_way)))}"
                               rf"': '{re.escape(str(in_the_way))}' is a file, not a directory$")
    assert in_the_way.read_text() == "mine" and entries(tmp_path) == ["f.txt"]


def test_report_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, no_work):
    (tmp_path / "rep").write_text("mine")
    code, _, err = run(capsys, "report", "--out", str(tmp_path / "rep"))
    assert code == 2
    assert_one_error_line(err, r"--out: '.*rep' exists and is not a directory$")


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_read_only_directory_is_refused_before_any_work(output, read_only, capsys, no_work):
    argv, flag, target = OUTPUTS[output]
    code, out, err = run(capsys, *argv(read_only))
    assert code == 2 and out == ""
    assert_one_error_line(err, rf"^error: {flag}: cannot write '{re.escape(str(target(read_only)))}"
                               rf"': directory '{re.escape(str(read_only))}' is not writable "
                               r"\((Permission denied|Read-only file system)\)$")
    assert entries(read_only) == []


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_full_disk_leaves_no_file(output, full_disk, capsys):
    folder, filler = full_disk
    argv, flag, target = OUTPUTS[output]
    code, out, err = run(capsys, *argv(folder))
    assert code == 2 and out == ""
    assert_one_error_line(err, rf"^error: {flag}: cannot write '.*': No space left on device; "
                               r"nothing was written$")
    assert entries(folder) == filler


@pytest.mark.parametrize("output", OUTPUTS)
def test_ctrl_c_mid_run_exits_130_and_writes_nothing(output, tmp_path, capsys, monkeypatch):
    argv, _, _ = OUTPUTS[output]
    real_check, real_derive = verify.check, derivation.derive

    def interrupt(done, total):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify, "check", lambda *a, **k: real_check(*a, **{**k, "progress": interrupt}))
    monkeypatch.setattr(derivation, "derive",
                        lambda *a, **k: real_derive(*a, **{**k, "progress": interrupt}))
    monkeypatch.setattr(derivation, "check_text", lambda *a, **k: interrupt(0, 1))
    code, out, err = run(capsys, *argv(tmp_path))
    assert code == 130 and out == ""
    assert err == "error: interrupted; nothing was written\n"
    assert entries(tmp_path) == []


@pytest.mark.parametrize("output", OUTPUTS)
def test_ctrl_c_while_writing_leaves_no_file(output, tmp_path, capsys, monkeypatch):
    argv, _, target = OUTPUTS[output]
    real = os.replace

    def interrupted(source, destination, *args, **kwargs):
        if tmp_path in Path(destination).parents:
            raise KeyboardInterrupt
        return real(source, destination, *args, **kwargs)

    monkeypatch.setattr(_files.os, "replace", interrupted)
    code, out, err = run(capsys, *argv(tmp_path))
    assert code == 130 and out == ""
    assert err == "error: interrupted; nothing was written\n"
    assert entries(tmp_path) == []


def test_verify_out_and_plot_are_written_together_or_not_at_all(tmp_path, capsys, monkeypatch):
    """The report is complete but the picture's disk is full: neither file appears."""
    real = os.replace

    def no_space_for_pictures(source, target, *args, **kwargs):
        if str(target).endswith(".png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(_files.os, "replace", no_space_for_pictures)
    code, _, err = run(capsys, "verify", *TINY, "--out", str(tmp_path / "r.json"), "--plot",
                       str(tmp_path / "map.png"))
    assert code == 2
    assert_one_error_line(err, r"No space left on device; nothing was written$")
    assert entries(tmp_path) == []


def test_an_existing_output_survives_a_failed_write(tmp_path, capsys, monkeypatch):
    target = tmp_path / "d.txt"
    target.write_text("the old report")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_files.os, "replace", no_space)
    assert run(capsys, "derive", "--classes", "2", "--out", str(target))[0] == 2
    assert target.read_text() == "the old report" and entries(tmp_path) == ["d.txt"]


def test_ctrl_c_in_a_real_process_exits_130_and_writes_nothing(tmp_path):
    """A real SIGINT while ``derive --classes 300`` is checking its steps (several seconds)."""
    target = tmp_path / "d.json"
    proc = subprocess.Popen([sys.executable, "-m", "verify._cli", "derive", "--classes", "300",
                             "--format", "json", "--out", str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == ""
    assert err == "error: interrupted; nothing was written\n"
    assert entries(tmp_path) == []


def test_ctrl_c_while_jax_is_imported_is_an_interruption_too(tmp_path, capsys, monkeypatch):
    """A SIGINT inside an extension's import reaches the command as an ImportError caused by
    KeyboardInterrupt (NumPy's, JAX's): it was a traceback; it is an interruption. The report's
    derivations process, started just before, is ended."""
    from verify import _cli, _derivations

    started = []

    class Deriving(_derivations.Deriving):
        def __init__(self, no_cache):
            super().__init__(no_cache)
            started.append(self)

    def importing(no_cache):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("numpy._core.multiarray failed to import") from interrupt

    monkeypatch.setattr(_derivations, "Deriving", Deriving)
    monkeypatch.setattr(_cli, "_compilation_cache", importing)
    assert _cli.main(["report", "-q", "--out", str(tmp_path)]) == 130
    out, err = capsys.readouterr()
    assert out == "" and err == "error: interrupted; nothing was written\n"
    assert entries(tmp_path) == [] and started[0]._process.poll() is not None  # noqa: SLF001
    monkeypatch.setattr(_cli, "_compilation_cache", lambda no_cache: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # any other error is not taken for one
        _cli.main(["report", "-q", "--out", str(tmp_path)])


STAND_IN_JAX = """
import builtins, os, signal
os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C halfway through the import
for _ in range(10_000):  # bytecode runs: a SIGINT not held back is raised here
    pass
builtins.WHOLE = True
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a process sends itself SIGINT (POSIX)")
def test_ctrl_c_during_jaxs_import_is_held_until_the_import_is_whole(tmp_path):
    """JAX's extensions do not survive a KeyboardInterrupt inside their import (the process
    aborted, or the interrupt was lost): it is held back and raised once the import is done,
    with other threads running too (NumPy's and torch's, as a kernel's module starts them)."""
    (tmp_path / "jax.py").write_text(STAND_IN_JAX)
    code = ("import builtins, sys; sys.path.insert(0, sys.argv[1]); import numpy, torch\n"
            "from verify import _cli\n"
            "try:\n    _cli._import_jax()\nexcept KeyboardInterrupt:\n"
            "    print('interrupted after the import:', getattr(builtins, 'WHOLE', False))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout == "interrupted after the import: True\n", proc.stderr
    ignored = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
               "sys.path.insert(0, sys.argv[1]); from verify import _cli; _cli._import_jax(); "
               "print('ignored, as a background job ignores it')")
    proc = subprocess.run([sys.executable, "-c", ignored, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout == "ignored, as a background job ignores it\n", proc.stderr


# --- numeric flags ------------------------------------------------------------------------------

HUGE = str(10**30)
# (command and flag, value, None when accepted, else the pattern of the error line)
NUMERIC = [
    *[(("verify", "--classes"), value, pattern) for value, pattern in [
        ("0", r"expected integers >= 1, got '0'"), ("-1", r"expected integers >= 1, got '-1'"),
        ("nan", r"expected integers >= 1, got 'nan'"), ("inf", r"expected integers >= 1, got 'inf'"),
        (HUGE, r"needs about .* of memory"), ("abc", r"expected integers >= 1, got 'abc'")]],
    *[(("verify", "--samples"), value, pattern) for value, pattern in [
        ("0", r"expected an integer >= 1, got '0'"), ("-1", r"expected an integer >= 1, got '-1'"),
        ("nan", r"expected an integer >= 1, got 'nan'"),
        ("inf", r"expected an integer >= 1, got 'inf'"),
        (HUGE, r"needs about .* of memory"), ("abc", r"expected an integer >= 1, got 'abc'")]],
    *[(("verify", "--seed"), value, pattern) for value, pattern in [
        ("0", None), ("-1", r"expected an integer in \[0, 4294967295\], got '-1'"),
        ("nan", r"got 'nan'"), ("inf", r"got 'inf'"), (HUGE, rf"got '{HUGE}'"), ("abc", r"got 'abc'")]],
    *[(("verify", "--scales"), value, pattern) for value, pattern in [
        ("0", r"expected finite numbers > 0, got '0'"), ("-1", r"expected finite numbers > 0, got '-1'"),
        ("nan", r"got 'nan'"), ("inf", r"got 'inf'"), ("1e400", r"got '1e400'"),
        ("1e300", None), ("abc", r"got 'abc'")]],
    *[(("verify", flag), value, pattern) for flag in ("--rtol", "--atol") for value, pattern in [
        ("0", None), ("-1", r"expected a finite number >= 0, got '-1'"), ("nan", r"got 'nan'"),
        ("inf", r"got 'inf'"), ("1e400", r"got '1e400'"), ("1e300", None), ("abc", r"got 'abc'")]],
    *[(("derive", "--classes"), value, pattern) for value, pattern in [
        ("0", r"expected an integer >= 1 .*got '0'"), ("-1", r"expected an integer >= 1 .*got '-1'"),
        ("nan", r"got 'nan'"), ("inf", r"got 'inf'"), (HUGE, r"is above 1,024"), ("abc", r"got 'abc'")]],
]


@pytest.mark.parametrize("where, value, pattern", NUMERIC,
                         ids=[f"{' '.join(w)} {v[:8]}" for w, v, _ in NUMERIC])
def test_every_numeric_flag_at_its_edges(where, value, pattern, tmp_path, capsys, monkeypatch):
    command, flag = where
    base = ["--quiet"]
    if command == "verify":  # the tiny grid without the flag under test
        pairs = dict(zip(TINY[:-1:2], TINY[1:-1:2]))
        pairs.pop(flag, None)
        base += [item for pair in pairs.items() for item in pair]
    if pattern is not None:
        monkeypatch.setattr(verify, "check", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr(derivation, "derive", lambda *a, **k: pytest.fail("work started"))
    target = tmp_path / "out.json"
    code, out, err = run(capsys, command, *base, flag, value, "--format", "json", "--out",
                         str(target))
    if pattern is None:  # accepted: the run happens and its report is written
        assert code in (0, 1) and err == "" and out == ""
        assert json.loads(target.read_text())["schema"] == "softmax-ce.verify/1"
    else:
        assert code == 2 and out == ""
        assert_one_error_line(err, rf"^error: {flag}: .*{pattern}")
        assert entries(tmp_path) == []


# --- sizes: memory ------------------------------------------------------------------------------

GB = 10**9


def test_a_grid_that_cannot_fit_is_refused_with_what_it_needs_and_what_to_lower(
        capsys, monkeypatch, no_work):
    monkeypatch.setattr(_limits, "available_bytes", lambda: 2 * GB)
    code, out, err = run(capsys, "verify", "--classes", "2,1000000", "--samples", "1000")
    assert code == 2 and out == ""
    c, s = _limits.largest_classes(1000, 2 * GB, 4), _limits.largest_samples(10**6, 2 * GB, 4)
    assert_one_error_line(err, rf"^error: --classes: classes 1,000,000 with samples 1,000 needs "
                               rf"about 50.1 GB of memory \(1,004 rows × 1,000,000 classes\); "
                               rf"2 GB is available: lower classes to at most {c:,}$")
    assert (c, s) == (2_509, 0)  # not even one sample of a million classes fits in 2 GB
    code, _, err = run(capsys, "verify", "--classes", "100000", "--samples", "1000", "--dtypes",
                       "float32")
    assert code == 2 and err.endswith("lower classes to at most 23,397 or samples to at most "
                                      "230\n"), err


def test_the_api_refuses_the_same_grid(monkeypatch):
    monkeypatch.setattr(_limits, "available_bytes", lambda: 2 * GB)
    with pytest.raises(ValueError, match=r"^samples: classes 1,000 with samples 1,000,000,000 "
                                         r"needs about 48 TB"):
        verify.check(classes=(2, 10, 1000), samples=10**9)


def test_without_a_known_memory_size_nothing_is_refused(monkeypatch):
    monkeypatch.setattr(_limits, "available_bytes", lambda: None)
    _limits.check_grid([10**9], 10**9)


def test_an_allocation_that_fails_anyway_is_one_error_line(capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(verify, "check", out_of_memory)
    code, _, err = run(capsys, "verify", *TINY)
    assert code == 2
    assert_one_error_line(err, r"^error: --classes: the grid ran out of memory \(MemoryError\)")


@given(samples=st.integers(1, 10**6), memory=st.integers(0, 10**13), dtypes=st.integers(1, 4))
def test_the_largest_grid_that_fits_is_exactly_the_boundary(samples, memory, dtypes):
    rows = samples + _limits.ADVERSARIAL_ROWS
    c = _limits.largest_classes(samples, memory, dtypes)
    if c >= 1:
        assert _limits.verify_bytes(rows, [c], dtypes) <= memory
    assert _limits.verify_bytes(rows, [c + 1], dtypes) > memory


@given(classes=st.integers(1, 10**8), memory=st.integers(0, 10**13), dtypes=st.integers(1, 4))
def test_the_largest_samples_that_fit_are_exactly_the_boundary(classes, memory, dtypes):
    s = _limits.largest_samples(classes, memory, dtypes)
    if s >= 1:
        assert _limits.verify_bytes(s + _limits.ADVERSARIAL_ROWS, [classes], dtypes) <= memory
    assert _limits.verify_bytes(s + 1 + _limits.ADVERSARIAL_ROWS, [classes], dtypes) > memory


def test_every_dtype_counts_and_none_named_means_all_four():
    one = _limits.verify_bytes(1000, [2000], ["float32"])  # 2M elements: full chunks
    assert _limits.verify_bytes(1000, [2000], ["float32", "bfloat16"]) - one == (
        _limits.CHUNK_BYTES * _limits.CHUNK_ELEMENTS)
    assert _limits.verify_bytes(1000, [2000]) == _limits.verify_bytes(1000, [2000], 4)
    small = _limits.verify_bytes(5, [10], ["float32", "bfloat16"])  # one chunk of 128 rows
    assert small == _limits.BASE_BYTES + 48 * 5 * 10 + 320 * 2 * 128 * 10


def test_available_memory_is_read_from_meminfo_with_a_fallback(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   1234567 kB\n")
    assert _limits._meminfo_available(meminfo) == 1234567 * 1024
    assert _limits._meminfo_available(tmp_path / "none") is None
    monkeypatch.setattr(_limits, "_meminfo_available", lambda: None)
    monkeypatch.setattr(_limits, "_cgroup_room", lambda: None)
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert math.isclose(_limits.available_bytes(), pages, rel_tol=0.5)


PEAK = """
import verify
def peak():  # VmHWM starts afresh at exec; ru_maxrss would keep the forking parent's size
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
verify.check(classes=2, dtypes="float32", scales=1, labels="onehot", samples=1)
small = peak()
verify.check(classes={c}, dtypes="float32", scales=1, labels="soft", samples={samples})
print(small, peak())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc")
def test_the_memory_estimate_bounds_the_measured_peak():
    """In a fresh process: the peak of a one-cell grid is under its estimate, and the peak of a
    grid of 128 × 32,768 draws (soft labels, the costliest) under its estimate and above 40% of
    it, so the bound says something."""
    c, samples = 2**15, 124
    proc = subprocess.run([sys.executable, "-c", PEAK.format(c=c, samples=samples)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    small, large = map(int, proc.stdout.split())
    small_estimate = _limits.verify_bytes(5, [2], ["float32"])
    large_estimate = _limits.verify_bytes(samples + 4, [c], ["float32"])
    assert small <= small_estimate, (small, small_estimate)  # less with compiled programs cached
    assert large <= large_estimate <= 2.5 * large, (large, large_estimate)


VARIANT_PEAK = """
import verify
def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
loss = verify.Loss(label_smoothing=0.1, reduction="mean")
verify.check(classes=2, dtypes="float32", scales=1, labels="soft", samples=1, loss=loss)
small = peak()
verify.check(classes={c}, dtypes="float32", scales=1, labels="soft", samples={samples}, loss=loss)
print(small, peak())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc")
def test_a_loss_variants_memory_estimate_bounds_its_measured_peak():
    """A variant's cell is one batch (no chunks): in a fresh process the peak of 128 × 32,768
    logits is under the variant estimate and above 75% of it."""
    c, samples = 2**15, 124
    proc = subprocess.run([sys.executable, "-c", VARIANT_PEAK.format(c=c, samples=samples)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    small, large = map(int, proc.stdout.split())
    assert small <= _limits.verify_bytes(5, [2], ["float32"], variant=True)
    estimate = _limits.verify_bytes(samples + 4, [c], ["float32"], variant=True)
    assert large <= estimate <= large / 0.75, (large, estimate)


@given(samples=st.integers(1, 10**6), memory=st.integers(0, 10**13), dtypes=st.integers(1, 4))
def test_the_largest_variant_grid_that_fits_is_exactly_the_boundary(samples, memory, dtypes):
    rows = samples + _limits.ADVERSARIAL_ROWS
    c = _limits.largest_classes(samples, memory, dtypes, variant=True)
    if c >= 1:
        assert _limits.verify_bytes(rows, [c], dtypes, variant=True) <= memory
    assert _limits.verify_bytes(rows, [c + 1], dtypes, variant=True) > memory
    s = _limits.largest_samples(max(c, 1), memory, dtypes, variant=True)
    if s >= 1:
        assert _limits.verify_bytes(s + 4, [max(c, 1)], dtypes, variant=True) <= memory
    assert _limits.verify_bytes(s + 5, [max(c, 1)], dtypes, variant=True) > memory


def test_a_loss_variants_grid_is_refused_by_its_own_estimate(capsys, monkeypatch, no_work):
    """1.5 GiB free: 8,192 rows × 1,000 classes fit the plain pipeline, not a variant's batch."""
    free = 3 * 2**29
    monkeypatch.setattr(_limits, "available_bytes", lambda: free)
    grid = ("--classes", "1000", "--samples", "8188", "--dtypes", "float32")
    assert _limits.verify_bytes(8192, [1000], ["float32"]) <= free
    needed = _limits.verify_bytes(8192, [1000], ["float32"], variant=True)
    assert needed > free
    code, out, err = run(capsys, "verify", *grid, "--label-smoothing", "0.1")
    assert code == 2 and out == ""
    assert_one_error_line(err, rf"^error: --samples: classes 1,000 with samples 8,188 needs about "
                               rf"{re.escape(_limits.size(needed))} of memory .*lower classes to at "
                               r"most [\d,]+ or samples to at most [\d,]+$")
    from verify._check import check  # verify.check is the no_work stand-in here

    with pytest.raises(ValueError, match=r"^samples: classes 1,000 with samples 8,188 needs"):
        check(classes=1000, samples=8188, dtypes="float32", loss=verify.Loss(label_smoothing=0.1))


# --- sizes: derive ------------------------------------------------------------------------------

def test_derive_refuses_more_classes_than_it_can_write_out_in_minutes(capsys, no_work):
    code, out, err = run(capsys, "derive", "--classes", "1025")
    assert code == 2 and out == ""
    assert_one_error_line(err, r"^error: --classes: 1,025 is above 1,024, the most a derivation "
                               r"written out class by class finishes in minutes .*leave out "
                               r"--classes to derive for a symbolic number of classes c")
    _limits.check_derive_classes(_limits.MAX_DERIVE_CLASSES)  # the limit itself is accepted


def test_derive_reports_progress_once_per_checked_step():
    for labels in ("onehot", "soft"):
        calls: list[tuple[int, int]] = []
        d = derivation.derive(classes=2, labels=labels, progress=lambda *a: calls.append(a))
        steps = sum(len(r.steps) for r in d.routes) + len(d.hessian.steps)
        assert calls == [(i, steps) for i in range(1, steps + 1)]


def test_derive_shows_a_progress_bar_past_a_second(capsys, monkeypatch):
    from verify import _cli

    clock = itertools.count()  # a second per reading: the bar starts at the first step
    monkeypatch.setattr(_cli.time, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["derive", "--classes", "2", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["holds"] is True
    assert "checking steps" in err


def test_the_readme_states_the_limits_the_code_computes():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    text = " ".join(readme[readme.index("## Limits"):readme.index("## Layout")].split())
    sixteen = 16 * GB
    assert (f"With 16 GB available, the default 256 samples and four dtypes go up to c = "
            f"{_limits.largest_classes(256, sixteen, 4):,} classes, and the default c = 1,000 up "
            f"to {_limits.largest_samples(1000, sixteen, 4):,} samples.") in text
    mib = _limits.verify_bytes(512, [65536], 4) / 2**20
    assert f"65,536 classes × 512 rows (every dtype, three label kinds) peaked at 2,604 MiB " \
           f"against an estimate of {mib:,.0f} MiB" in text
    assert (_limits.BASE_BYTES, _limits.DRAW_BYTES, _limits.CHUNK_BYTES) == (512 * 2**20, 48, 320)
    assert "512 MiB + 48 bytes × rows × c + 320 bytes × d × max(c, 2²⁰)" in text
    assert _limits.VARIANT_BYTES == 128 and _limits.VARIANT_PIPELINED_ELEMENTS == 2**18
    assert "512 MiB + (48 + 128 × d) bytes × (rows × c + min(rows × c, 2¹⁸))" in text
    variant = _limits.verify_bytes(64, [262_144], 1, variant=True) / 2**20
    assert f"64 × 262,144 bfloat16 logits peaked at 2,861 MiB against {variant:,.0f} MiB" in text
    assert f"N above {_limits.MAX_DERIVE_CLASSES:,} is refused" in text
    from verify import _kernel_options

    whole = " ".join(readme.split())
    assert (_kernel_options.MAX_SHAPE_LOGITS, _kernel_options.MAX_VOCABULARY) == (2**36, 2**20)
    assert 16 * 8192 * 262_144 == 2**35
    assert ("A shape may hold up to 2^36 logits (16 × 8,192 × 262,144 is 2^35), the vocabulary up "
            "to 2^20.") in whole


def test_the_readme_states_when_an_explanation_gives_a_ratio():
    from verify import _judge

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    text = " ".join(readme[readme.index("## Limits"):readme.index("## Layout")].split())
    assert (_judge.RESOLVED_SE, _judge.FAR_BEYOND) == (0.25, 10.0)
    assert "the ratio has a standard error of at most 0.25" in text
    assert "a disagreement more than 10 times the predicted residual" in text


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path, capsys):
    """--out at a link replaced the link by a file and left its target old."""
    (tmp_path / "kept").mkdir()
    target = tmp_path / "kept" / "derivation.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, out, err = run(capsys, "derive", "--classes", "2", "--format", "json", "--out",
                         str(link))
    assert (code, err) == (0, "")
    assert link.is_symlink() and json.loads(target.read_text())["holds"] is True


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_written_into_never_replaced(tmp_path, capsys):
    """A FIFO (as /dev/null or /dev/stdout, no regular file) was replaced by a renamed file:
    as root, --out /dev/null replaced the machine's /dev/null. It is written into."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, out, err = run(capsys, "derive", "--classes", "2", "--format", "json", "--out",
                         str(fifo))
    reader.join(timeout=20)
    if reader.is_alive():  # nothing was written into it: let the reader go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert (code, err) == (0, "")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(read[0])["holds"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary left beside


def test_out_and_plot_at_one_path_are_refused_before_any_work(tmp_path, capsys, no_work):
    """The heatmap silently overwrote the report written at the same path."""
    same = str(tmp_path / "same.png")
    code, out, err = run(capsys, "verify", "--out", same, "--plot", same)
    assert code == 2 and out == ""
    assert err == f"error: --plot: {same!r} is also --out; give each its own file\n"
    assert list(tmp_path.iterdir()) == []


def test_a_shape_past_the_largest_is_refused_before_any_work(capsys, no_work):
    """B·T·V past 2^36 logits streamed for hours, or (past NumPy's index range) raised a
    traceback from deep inside the draw."""
    code, out, err = run(capsys, "verify", "--dtypes", "float32", "--shape",
                         "99999999999,99999999999,10")
    assert (code, out) == (2, "")
    assert err == ("error: --shape: '99999999999,99999999999,10' is "
                   "99,999,999,998,000,000,000,010 logits, above the largest accepted, "
                   "68,719,476,736 (2^36)\n")


def test_a_z_loss_past_the_dtype_is_refused(capsys):
    """--z-loss 1e308 (inf in float32) ran, every cell NaN on both sides and 'disagree'; the
    other options were refused so."""
    code, out, err = run(capsys, "verify", "--dtypes", "float32", "--z-loss", "1e308")
    assert (code, out) == (2, "")
    assert err == ("error: --z-loss: 1e+308 rounds to inf in float32; expected a value that "
                   "stays finite there (at most 3.40282e+38)\n")


def test_a_scale_near_float64s_largest_is_undefined_without_a_warning(capsys):
    """A scale of 1e308 printed NumPy's overflow warnings on the user's terminal."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run(capsys, "verify", "--classes", "10", "--dtypes", "float32",
                             "--labels", "onehot", "--samples", "4", "-q", "--scales", "1e308",
                             "--format", "json")
    assert (code, err) == (0, "")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught
    assert {cell["verdict"] for cell in json.loads(out)["cells"]} == {"undefined"}


def test_a_memory_refusal_asks_only_for_what_can_be_done():
    """One dtype was told to 'check fewer dtypes at once'; a machine with less free memory than
    the runtime takes was told to lower a grid of which 'not even one row fits'."""
    with pytest.raises(ValueError, match=r"is available: lower the shape's batch or sequence, "
                                         r"or free memory$"):
        _limits.check_streamed(320, 8192, ["float32"], available=300 * 2**20)
    with pytest.raises(ValueError, match=r"is available: check fewer dtypes at once$"):
        _limits.check_streamed(320, 8192, ["float32", "bfloat16"], available=300 * 2**20)
    with pytest.raises(ValueError, match=r"less than the runtime alone takes \(about 537 MB\): "
                                         r"free memory$"):
        _limits.check_grid([10], 256, ["float32"], available=400 * 2**20)
