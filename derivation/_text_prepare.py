"""Before a row is parsed: what carries no mathematics is blanked out, offsets kept.

Spacing (``\\quad``, ``\\,``, ``&``, ``\\nonumber``), sizing (``\\left``, ``\\bigl``),
``\\text{…}``, labels and the equation tag (``\\tag{3}``, or a trailing ``(3)`` after spacing)
become spaces, so that an error's column is the column in the source; a definition's ``:=``
(``\\coloneqq``) is ``=``. Brackets are matched here, before the grammar, so that an
unclosed one is reported where it was opened, and nesting is bounded.
"""

from __future__ import annotations

import re

MAX_DEPTH = 60
"""Brackets nested deeper than this are not read."""


class ReadError(ValueError):
    """A row that cannot be read; ``column`` (0-based offset in the row) says where."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset



_SPACING = re.compile(r"\\(quad|qquad|displaystyle|textstyle|limits|nolimits|nonumber|notag|"
                      r"enspace|thinspace|medspace|thickspace|negthinspace)(?![a-zA-Z])"
                      r"|\\[,;:!> ]|~|&")
_SIZERS = re.compile(r"\\(left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)"
                     r"(?![a-zA-Z])(\.)?")
_TEXT = re.compile(r"\\(text|textrm|textit|textbf|mbox|label|operatorname\*?|tag\*?)\s*\{")
_SOFTMAX = re.compile(r"\\(mathrm|operatorname\*?|text|textrm|mathit)\s*\{\s*softmax\s*\}")
_NAMED = re.compile(r"\\operatorname\*?\s*\{\s*[a-zA-Z]{2,}\s*\}(?=\s*(?:\\(?:left|bigl|Bigl|biggl"
                    r"|Biggl|big|Big|bigg|Bigg)(?![a-zA-Z]))?\s*\()")
"""A function named in more than one letter, applied: kept whole for the grammar."""
_DEFINED_AS = re.compile(r":=|\\coloneqq(?![a-zA-Z])|\\triangleq(?![a-zA-Z])")
_TRAILING_TAG = re.compile(r"(?:\s{2,}|^)\(([0-9]+[a-z]?)\)\s*$")
_TRAILING_PUNCT = re.compile(r"[,.;:]\s*$")
_UNICODE = str.maketrans({"−": "-", "·": "*", "×": "*", "≠": "=", "≤": "<", "≥": ">"})


def _matching_brace(text: str, start: int) -> int:
    """Offset just past the ``}`` that closes the ``{`` at ``start`` (or the end)."""
    depth = 0
    for pos in range(start, len(text)):
        if text[pos] == "{" and text[pos - 1] != "\\":
            depth += 1
        elif text[pos] == "}" and text[pos - 1] != "\\":
            depth -= 1
            if depth == 0:
                return pos + 1
    return len(text)


def prepare(text: str) -> tuple[str, str]:
    """The row with spacing, sizing, ``\\text{…}`` and its tag blanked out; and the tag."""
    if "≠" in text or "≤" in text or "≥" in text:
        text = text.replace("≠", r"\ne").replace("≤", r"\le").replace("≥", r"\ge")
    text = text.translate(_UNICODE)
    text = _DEFINED_AS.sub(lambda m: "=".rjust(len(m.group(0))), text)  # a definition's sign
    tag = ""
    text = _SOFTMAX.sub(lambda m: r"\softmax".ljust(len(m.group(0))), text)
    out = list(text)

    def blank(a: int, b: int) -> None:
        out[a:b] = [" " if ch != "\n" else ch for ch in out[a:b]]

    for m in _TEXT.finditer(text):
        end = _matching_brace(text, m.end() - 1)
        if m.group(1).startswith("tag"):
            tag = f"({text[m.end():end - 1].strip()})"
        if m.group(1).startswith("operatorname") and _NAMED.match(text, m.start()):
            continue  # \operatorname{lse}(z): a function's name, read whole by the grammar
        if m.group(1).startswith("operatorname"):
            blank(m.start(), m.end())
            blank(end - 1, end)
        else:
            blank(m.start(), end)
    text = "".join(out)
    text = _SPACING.sub(lambda m: " " * len(m.group(0)), text)
    text = _SIZERS.sub(lambda m: " " * len(m.group(0)), text)
    if not tag:
        found = _TRAILING_TAG.search(text)
        if found:
            tag = f"({found.group(1)})"
            text = text[:found.start()] + " " * (len(text) - found.start())
    text = _TRAILING_PUNCT.sub(lambda m: " " * len(m.group(0)), text)
    return text, tag


def brackets(text: str) -> None:
    """Unbalanced or too deeply nested brackets, as a compiler reports them."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[tuple[str, int]] = []
    for pos, ch in enumerate(text):
        if ch in pairs and (ch != "{" or text[pos - 1:pos] != "\\"):
            stack.append((ch, pos))
            if len(stack) > MAX_DEPTH:
                raise ReadError(f"brackets nested more than {MAX_DEPTH} deep", pos)
        elif ch in pairs.values() and (ch != "}" or text[pos - 1:pos] != "\\"):
            if not stack:
                raise ReadError(f"unexpected '{ch}' with no bracket open", pos)
            opener, at = stack.pop()
            if pairs[opener] != ch:
                raise ReadError(f"expected '{pairs[opener]}' to close '{opener}' (opened at "
                                f"{{at:{at}}}), found '{ch}'", pos)
    if stack:
        opener, at = stack[-1]
        before = text[max(at - 12, 0):].strip()[:24]
        raise ReadError(f"expected '{pairs[opener]}' after '{before}' (opened at {{at:{at}}})",
                        len(text.rstrip()))
