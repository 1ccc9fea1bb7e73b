"""The ``softmax-ce`` command line: derive, verify, report.

JAX is imported only by ``verify`` and ``report``, inside the command, after every flag has been
validated: ``--help``, ``--version`` and ``derive`` never import it. Bad input exits 2 with one
line ``error: --flag: ...`` on stderr and writes nothing; a failed check exits 1.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import _kernel_options, _limits, _loss_options, _options
from ._files import check_writable, staged

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Derive the softmax cross-entropy gradient step by step, and verify a "
                       "closed form against jax.grad.")

DERIVE_FORMATS = ("text", "markdown", "latex", "json")
VERIFY_FORMATS = ("text", "markdown", "json")
INTERRUPTED = 130
"""The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it)."""


class InputError(Exception):
    """Bad input: printed as ``error: <message>``, exit code 2."""


def _version() -> str:
    from importlib.metadata import version

    return version("softmax-ce")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"softmax-ce {_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(version: Annotated[Optional[bool], typer.Option(  # noqa: UP007 - typer needs Optional
        "--version", callback=_version_callback, is_eager=True,
        help="Print the version and exit.")] = None) -> None:
    """softmax-ce: an autograd-verified derivation checker."""


def _flag(call: Callable[..., object], *args: object) -> object:
    """Run a validator; its ValueError/TypeError ("name: ...") becomes ``--name: ...``."""
    try:
        return call(*args)
    except (ValueError, TypeError) as error:
        raise InputError(f"--{error}") from None


def _choice(flag: str, value: str, accepted: tuple[str, ...]) -> str:
    if value in accepted:
        return value
    close = [a for a in accepted if a.lower() == value.strip().lower()]  # JSON, MEAN
    close = close or difflib.get_close_matches(value, accepted, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(f"--{flag}: unknown format {value!r}{hint} (accepted: {', '.join(accepted)})")


def _writable(flag: str, path: Path | None, *, directory: bool = False) -> Path | None:
    """Fail before any work if ``path`` cannot be written as it will be (:func:`check_writable`);
    every command that writes a file checks it this way."""
    if path is None:
        return None
    try:
        check_writable(path, directory=directory)
    except ValueError as error:
        raise InputError(f"--{flag}: {error}") from None
    return path


Content = str | bytes | Callable[[Path], object]
"""What an output file holds: text, bytes, or a writer given the (temporary) path to write."""


def _save(files: list[tuple[str, Path, Content]], folder: tuple[str, Path] | None = None) -> None:
    """Writes every ``(flag, path, content)`` whole, or none of them: a full disk, a vanished
    directory or a Ctrl-C leaves no partial file (``error: --flag: cannot write ...``, exit 2)."""
    flag, target = folder if folder is not None else files[0][:2]
    try:
        with staged() as stage:
            if folder is not None:
                stage.directory(folder[1])
            for flag, target, content in files:
                if callable(content):
                    content(stage.temporary(target))
                else:
                    stage.write(target, content)
    except OSError as error:
        why = error.strerror or str(error) or type(error).__name__
        raise InputError(f"--{flag}: cannot write {str(target)!r}: {why}; nothing was "
                         "written") from None


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        _save([("out", out, text)])


def _derive_classes(value: str | None) -> int | None:
    if value is None or value.strip().lower() in {"c", "any"}:
        return None
    number = _options._integer(value)  # noqa: SLF001 - the same integer parsing as verify's flags
    if number is None or number < 1:
        raise InputError(f"--classes: expected an integer >= 1 (or leave it out for any number "
                         f"of classes c), got {value!r}")
    return number


@app.command()
def derive(
    classes: Annotated[Optional[str], typer.Option(  # noqa: UP007
        help="Number of classes; leave out for any number c (a symbol).")] = None,
    labels: Annotated[str, typer.Option(help="onehot or soft (any labels that sum to one).")] = (
        "onehot"),
    format: Annotated[str, typer.Option("--format", help="text, markdown, latex or json.")] = (
        "text"),
    out: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout.")] = (  # noqa: UP007
        None),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    label_smoothing: _loss_options.LabelSmoothing = None, weight: _loss_options.Weight = None,
    ignore_index: _loss_options.IgnoreIndex = None, reduction: _loss_options.Reduction = None,
    z_loss: _loss_options.ZLoss = None, softcap: _loss_options.Softcap = None,
    temperature: _loss_options.Temperature = None, targets: _loss_options.Targets = None,
) -> None:
    """Derive ∂C/∂z step by step, by several routes, every step machine-checked."""
    from derivation._derive import check_request, validate_labels

    size = _derive_classes(classes)
    _flag(_limits.check_derive_classes, size)
    kind = _flag(validate_labels, labels)
    loss = _flag(_loss_options.parse_loss, label_smoothing, weight, ignore_index, reduction,
                 z_loss, softcap, temperature, targets)
    _flag(check_request, size, kind, loss)
    fmt = _choice("format", format, DERIVE_FORMATS)
    target = _writable("out", out)
    import derivation

    variant = {} if loss.is_plain else {"loss": loss}
    with progress_bar(quiet, "checking steps") as progress:
        d = derivation.derive(classes=size, labels=kind, progress=progress, **variant)
    render = {"text": d.to_text, "markdown": d.to_markdown, "latex": d.to_latex,
              "json": d.to_json}[fmt]
    _emit(render(), target)
    raise typer.Exit(0 if d.holds else 1)


@contextlib.contextmanager
def progress_bar(quiet: bool, what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback ``(done, total)``: a bar on stderr once the work has run about a
    second, never when stderr is not a terminal or with ``--quiet``."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    started = time.perf_counter()
    bar: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        def update(done: int, total: int) -> None:
            if "progress" not in bar:
                if time.perf_counter() - started < 1.0:
                    return
                progress = stack.enter_context(
                    Progress(console=Console(stderr=True), transient=True))
                bar["progress"], bar["task"] = progress, progress.add_task(what, total=total)
            bar["progress"].update(bar["task"], completed=done, total=total)  # type: ignore[attr-defined]

        yield update


def _verify_options(classes: str, dtypes: str, scales: str, labels: str, samples: str, seed: str,
                    rtol: str | None, atol: str | None) -> dict[str, object]:
    return {
        "classes": _flag(_options.validate_classes, classes),
        "dtypes": _flag(_options.validate_dtypes, dtypes),
        "scales": _flag(_options.validate_scales, scales),
        "labels": _flag(_options.validate_labels, labels),
        "samples": _flag(_options.validate_samples, samples),
        "seed": _flag(_options.validate_seed, seed),
        "rtol": _flag(_options.validate_tolerance, "rtol", rtol),
        "atol": _flag(_options.validate_tolerance, "atol", atol),
    }


def _import_closed_form(spec: str | None) -> Callable[..., object] | None:
    """``package.module:function`` (or ``module:Class.function``) → the function, imported and
    looked up by name, never evaluated as code."""
    if spec is None:
        return None
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InputError(f"--closed-form: expected module:function, got {spec!r}")
    import importlib

    sys.path.insert(0, os.getcwd())  # a module beside the user, as `python -m` would find it
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure to import is the user's input
        if _interrupted(error):  # Ctrl-C inside an extension's import: not the module's fault
            raise
        raise InputError(f"--closed-form: cannot import {module_name!r}: {error}") from None
    finally:
        sys.path.pop(0)
    function: object = module
    for name in attribute.split("."):  # a dotted path reaches a class's static method
        if not hasattr(function, name):
            raise InputError(f"--closed-form: {module_name!r} has no function {attribute!r}")
        function = getattr(function, name)
    if not callable(function):
        raise InputError(f"--closed-form: {spec!r} is not callable (it is a "
                         f"{type(function).__name__}); expected a function (z, y) -> gradient")
    return function


def _out_of_memory(error: BaseException) -> bool:
    """An allocation that failed: Python's MemoryError, or XLA's RESOURCE_EXHAUSTED."""
    text = str(error)
    return isinstance(error, MemoryError) or (
        type(error).__name__ in {"JaxRuntimeError", "XlaRuntimeError"}
        and ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text))


_TRACED_CONTROL_FLOW = (
    "ConcretizationTypeError", "TracerBoolConversionError", "TracerIntegerConversionError",
)


def _closed_form_error(spec: str | None, error: Exception) -> InputError:
    """The engine's ``closed_form: ...`` error as one line; JAX's own multi-paragraph errors
    about traced values become what to do instead."""
    cause = error.__cause__
    names = {klass.__name__ for klass in type(cause).__mro__} if cause is not None else set()
    if names & set(_TRACED_CONTROL_FLOW):
        return InputError(f"--closed-form: {spec} uses Python control flow (if, while, and/or, "
                          "int(), bool()) on a traced value; use jnp.where(condition, a, b) "
                          "instead")
    if "TracerArrayConversionError" in names:
        return InputError(f"--closed-form: {spec} passes a traced value to NumPy; use jax.numpy "
                          "(jnp) functions instead")
    message = str(error).removeprefix("closed_form:")
    if cause is not None and "\n" in str(cause):
        message = message.replace(str(cause), str(cause).strip().splitlines()[0])
    return InputError(f"--closed-form: {' '.join(message.split())}")


_CLASSES = ",".join(map(str, _options.DEFAULT_CLASSES))
_DTYPES = ",".join(_options.DTYPES)
_SCALES = ",".join(f"{s:g}" for s in _options.DEFAULT_SCALES)
_LABELS = ",".join(_options.LABEL_KINDS)


def _import_jax() -> None:
    """Imports JAX with Ctrl-C held back until it is done: a KeyboardInterrupt inside the import
    of its extensions aborted the process (``std::terminate``), surfaced as an ImportError, or
    was lost in a callback. Meanwhile SIGINT is only noted; it is raised once JAX is in."""
    import signal
    import threading

    if ("jax" in sys.modules or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        import jax  # noqa: F401 - imported already, not this thread's signals, or not Python's
        return  # Ctrl-C (ignored in a background job, or someone else's handler): left alone
    noted: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        import jax  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if noted:
        raise KeyboardInterrupt


def _compilation_cache(no_cache: bool) -> None:
    """JAX imported (:func:`_import_jax`), and the persistent cache of compiled programs
    (``verify._cache``) on, unless ``--no-cache``."""
    _import_jax()
    if not no_cache:
        from ._cache import enable

        enable()


_NO_CACHE_HELP = "Compile afresh: neither read nor write the cache of compiled programs."
_NO_CACHE_HELP_REPORT = ("Derive and compile afresh: neither read nor write the cache of "
                         "compiled programs and checked derivations.")


@app.command()
def verify(
    classes: Annotated[str, typer.Option(help="Class counts, comma-separated.")] = _CLASSES,
    dtypes: Annotated[str, typer.Option(help="Dtypes, comma-separated.")] = _DTYPES,
    scales: Annotated[str, typer.Option(help="Logit scales, comma-separated.")] = _SCALES,
    labels: Annotated[str, typer.Option(help="Label kinds, comma-separated.")] = _LABELS,
    samples: Annotated[str, typer.Option(help="Rows per cell.")] = str(
        _options.DEFAULT_SAMPLES),
    seed: Annotated[str, typer.Option(help="Seed of every random draw.")] = str(
        _options.DEFAULT_SEED),
    rtol: Annotated[Optional[str], typer.Option(help="Relative tolerance (default: per dtype).")] = None,  # noqa: UP007, E501
    atol: Annotated[Optional[str], typer.Option(help="Absolute tolerance (default: per dtype).")] = None,  # noqa: UP007, E501
    format: Annotated[str, typer.Option("--format", help="text, markdown or json.")] = "text",
    out: Annotated[Optional[Path], typer.Option(help="Write the report to this file.")] = None,  # noqa: UP007
    plot: Annotated[Optional[Path], typer.Option(help="Write the agreement heatmap (PNG).")] = None,  # noqa: UP007, E501
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    closed_form: Annotated[Optional[str], typer.Option(  # noqa: UP007
        "--closed-form", help="Your own gradient, as module:function taking (z, y) "
                              "(default: softmax(z) - y); with loss flags or --framework, "
                              "(z, targets, grad_output).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help=_NO_CACHE_HELP)] = False,
    label_smoothing: _loss_options.LabelSmoothing = None, weight: _loss_options.Weight = None,
    ignore_index: _loss_options.IgnoreIndex = None, reduction: _loss_options.Reduction = None,
    z_loss: _loss_options.ZLoss = None, softcap: _loss_options.Softcap = None,
    temperature: _loss_options.Temperature = None, targets: _loss_options.Targets = None,
    framework: Annotated[str, typer.Option(help="What --closed-form is written in: jax, torch "
                                                "or numpy.")] = "jax",
    device: Annotated[str, typer.Option(help="Where a torch --closed-form runs: cpu or "
                                             "cuda.")] = "cpu",
    shape: Annotated[Optional[str], typer.Option(help="Logits B,T,V (batch, sequence, "  # noqa: UP007
                                                      "vocabulary) or R,V, in place of "
                                                      "--classes and --samples.")] = None,
) -> None:
    """Check σ(z) − y (or your closed form) against jax.grad over a grid of class counts,
    dtypes, scales and labels."""
    options = _verify_options(classes, dtypes, scales, labels, samples, seed, rtol, atol)
    options |= _flag(_kernel_options.kernel_options, framework, device, closed_form, shape)  # type: ignore[operator]
    loss = _flag(_loss_options.parse_loss, label_smoothing, weight, ignore_index, reduction,
                 z_loss, softcap, temperature, targets)
    if options["shape"] is None:  # a shape's memory is checked below, for what it draws
        _flag(_limits.check_grid, options["classes"], options["samples"], options["dtypes"],
              None, not loss.is_plain)  # available: read here; a variant's cell is one batch
    _flag(_loss_options.check_labels, loss, options["labels"])  # not ignored silently
    counts = options["classes"] if options["shape"] is None else (options["shape"][-1],)
    for count in counts:  # a shape's last axis is its class count
        _flag(loss.weight_for, count)
    _flag(_kernel_options.check_shape_memory, options["shape"], not loss.is_plain,
          options["dtypes"])
    fmt = _choice("format", format, VERIFY_FORMATS)
    target = _writable("out", out)
    picture = _writable("plot", plot)
    if picture is not None and picture.suffix.lower() != ".png":
        raise InputError(f"--plot: expected a .png file, got {str(picture)!r}")
    if target is not None and picture is not None and os.path.realpath(target) == \
            os.path.realpath(picture):
        raise InputError(f"--plot: {str(picture)!r} is also --out; give each its own file")
    _import_jax()  # before a closed form's module, which may import it (or start threads)
    function = _import_closed_form(closed_form)
    _compilation_cache(no_cache)
    import verify as checker

    with progress_bar(quiet, "verifying cells") as progress:
        try:
            variant = {} if loss.is_plain else {"loss": loss}
            report = checker.check(function, progress=progress, **variant, **options)
        except (ValueError, TypeError) as error:
            if str(error).startswith(("shape:", "framework:")):  # checked against the grid
                raise InputError(f"--{error}") from None
            field = str(error).split(":", 1)[0]
            if field in _loss_options.FLAGS:  # a loss parameter the dtypes cannot hold
                raise InputError(f"--{_loss_options.FLAGS[field]}:{str(error).split(':', 1)[1]}"
                                 ) from None
            if str(error).startswith(("classes:", "samples:")):  # the grid's memory estimate
                flag = "--shape: " if options["shape"] is not None else "--"
                raise InputError(f"{flag}{error}") from None
            if not str(error).startswith("closed_form:"):  # every other argument was validated
                raise
            raise _closed_form_error(closed_form, error) from None
        except Exception as error:  # noqa: BLE001 - the estimate's last line of defence
            if not _out_of_memory(error):
                raise
            if shape is not None:
                raise InputError(f"--shape: the check ran out of memory ({type(error).__name__})"
                                 " although its estimate fit; lower --shape") from None
            raise InputError(f"--classes: the grid ran out of memory ({type(error).__name__}) "
                             "although its estimate fit; lower --classes or --samples") from None
    render = {"text": report.to_text, "markdown": report.to_markdown, "json": report.to_json}[fmt]
    text = render()
    files: list[tuple[str, Path, Content]] = [] if target is None else [("out", target, text)]
    if picture is not None:
        files.append(("plot", picture, lambda path: checker.plot(report, path)))
    if files:
        _save(files)
    if target is None:
        _emit(text, None)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="Directory for report.md and its pictures.")] = Path(
        "softmax-ce-report"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help=_NO_CACHE_HELP_REPORT)] = False,
) -> None:
    """Write the derivation and the agreement map as one Markdown report with a heatmap PNG."""
    folder = _writable("out", out, directory=True)
    from ._derivations import Deriving

    deriving = Deriving(no_cache)  # SymPy in a process of its own, before JAX is imported here
    try:
        _compilation_cache(no_cache)
        from concurrent.futures import ThreadPoolExecutor

        import verify as checker

        from . import _plot

        with progress_bar(quiet, "verifying cells") as progress, ThreadPoolExecutor(1) as pool:
            # The check compiles in threads that release the GIL: matplotlib is imported here
            # meanwhile.
            checking = pool.submit(checker.check, None, progress=progress)
            _plot.load()
            agreement = checking.result()
        (general, general_holds), (three, three_holds) = deriving.result()
    finally:
        deriving.stop()
    picture = folder / "agreement.png"
    text = "\n".join([
        "# softmax-ce report", "",
        f"softmax-ce {_version()}: the gradient of categorical cross-entropy through a softmax, "
        "derived with every step machine-checked, and σ(z) − y checked against jax.grad.", "",
        general, three,
        "## Where σ(z) − y agrees with jax.grad", "",
        f"![max ULP error per cell]({picture.name})", "",
        agreement.to_markdown(),
    ])
    _save([("out", picture, lambda path: checker.plot(agreement, path)),
           ("out", folder / "report.md", text)], folder=("out", folder))
    typer.echo(str(folder / "report.md"))
    raise typer.Exit(0 if general_holds and three_holds and agreement.ok else 1)


@app.command("check")
def check_text_command(
    file: Annotated[str, typer.Argument(help="A Markdown or LaTeX file, or - for stdin.")],
    assume: Annotated[Optional[list[str]], typer.Option(  # noqa: UP007
        "--assume", help="A relation in force for the whole text, e.g. 'n \\neq p'.")] = None,
    format: Annotated[str, typer.Option("--format", help="text, markdown or json.")] = "text",
    out: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout.")] = (  # noqa: UP007
        None),
) -> None:
    """Check a derivation as written: every step of its Markdown/LaTeX math."""
    from ._check_text_cli import CheckInputError, run

    try:
        code = run(file, list(assume or ()), format, _writable("out", out))
    except CheckInputError as error:
        raise InputError(str(error)) from None
    except OSError as error:  # writing --out, checked writable: a full disk, a vanished directory
        raise InputError(f"--out: cannot write {str(out)!r}: {error.strerror or error}; nothing "
                         "was written") from None
    raise typer.Exit(code)


def _interrupted(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt caused ``error`` (or an error that caused it; an error
    raised ``from None`` was not caused by the one it was raised during)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="softmax-ce", standalone_mode=False)
    except InputError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except typer.TyperException as error:  # usage errors: unknown option, missing value, ...
        message = error.format_message()
        if not message:  # a bare ``softmax-ce``: the help was shown, nothing went wrong
            return 0
        sys.stderr.write(f"error: {message}\n")
        return 2
    except typer.Exit as done:
        code = done.exit_code
    except typer.Abort:
        code = INTERRUPTED
    except Exception as error:  # Ctrl-C inside an import: an extension's ImportError, say
        if not _interrupted(error):
            raise
        code = INTERRUPTED
    if code == INTERRUPTED:  # typer turns Ctrl-C into exit code 130, silently
        sys.stderr.write("error: interrupted; nothing was written\n")
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
