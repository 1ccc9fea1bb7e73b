"""The body of ``softmax-ce check FILE|-``: read a written derivation, check it, report.

Registered in ``_cli`` by a small wrapper. Imports neither JAX nor anything of ``verify``'s
numerics: checking text needs only ``derivation``.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from ._files import write_atomically

FORMATS = ("text", "markdown", "json")
MAX_BYTES = 20 * 2**20
"""Inputs larger than this are refused (bad input, exit 2)."""


class CheckInputError(ValueError):
    """Bad input for ``check``: one ``error:`` line, exit code 2."""


def _format(value: str) -> str:
    if value in FORMATS:
        return value
    close = difflib.get_close_matches(value, FORMATS, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise CheckInputError(f"--format: unknown format {value!r}{hint} (accepted: "
                          f"{', '.join(FORMATS)})")


def _read(file: str) -> tuple[str, str]:
    """The text and its name for the report; ``-`` reads standard input."""
    if not file.strip():
        raise CheckInputError(f"FILE: {file!r} names no file (a Markdown or LaTeX file, or - for "
                              "standard input)")
    if file == "-":
        raw, name = sys.stdin.buffer.read(MAX_BYTES + 1), "<stdin>"
    else:
        path = Path(file)
        if not path.exists():
            raise CheckInputError(f"FILE: {file!r} does not exist (a Markdown or LaTeX file, "
                                  "or - for standard input)")
        if path.is_dir():
            raise CheckInputError(f"FILE: {file!r} is a directory; expected a Markdown or "
                                  "LaTeX file")
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        except OSError as error:
            raise CheckInputError(f"FILE: cannot read {file!r}: {error.strerror}") from None
        name = file
    if len(raw) > MAX_BYTES:
        raise CheckInputError(f"FILE: {name!r} is larger than {MAX_BYTES // 2**20} MiB")
    try:
        return raw.decode("utf-8"), name
    except UnicodeDecodeError as error:
        raise CheckInputError(f"FILE: {name!r} is not UTF-8 text (byte {error.start}); "
                              "expected a Markdown or LaTeX file in UTF-8") from None


STYLES = {"✓": "green", "✗": "bold red", "?": "yellow"}


def _coloured(rendered: str) -> None:
    """The text report on a terminal, each step's mark line coloured by its status (Rich)."""
    from rich.console import Console
    from rich.text import Text

    text = Text(rendered)
    offset = 0
    for line in rendered.splitlines(keepends=True):
        style = STYLES.get(line[:1])
        if style:
            text.stylize(style, offset, offset + len(line.rstrip("\n")))
        elif line.startswith("    hint:") or line.startswith("    holds if"):
            text.stylize("cyan", offset, offset + len(line.rstrip("\n")))
        offset += len(line)
    Console(highlight=False, soft_wrap=True).print(text, end="")


def run(file: str, assume: list[str], fmt: str, out: Path | None) -> int:
    """Check ``file`` and write the report; the exit code (0 holds, 1 not). Raises
    :class:`CheckInputError` for bad input, before anything is written."""
    import derivation

    fmt = _format(fmt)
    text, name = _read(file)
    for relation in assume:
        if not relation.strip():
            raise CheckInputError("--assume: empty relation (expected e.g. 'n \\neq p')")
    try:
        result = derivation.check_text(text, source=name, assume=tuple(assume))
    except derivation.NoMath as error:
        raise CheckInputError(str(error)) from None
    for step in result.steps:
        if step.line == 0 and step.status == "unchecked" and "--assume" in step.detail:
            raise CheckInputError(step.detail)
    if not result.steps:
        raise CheckInputError(f"{name}: no step to check: its math defines names or states "
                              "facts, but no line is claimed equal to another (write A = B, or "
                              "continue a definition with '&= …')")
    rendered = {"text": result.to_text, "markdown": result.to_markdown,
                "json": result.to_json}[fmt]()
    if out is None and fmt == "text" and sys.stdout.isatty():
        _coloured(rendered)
    elif out is None:
        sys.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")
    else:
        write_atomically(out, rendered)
    return 0 if result.holds else 1
