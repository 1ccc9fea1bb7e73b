"""Stage 1 of the text checker: find the mathematics in Markdown or LaTeX source.

Math stands in ``$…$`` (inline), ``$$…$$``, ``\\[…\\]`` and the ``equation``, ``align``,
``aligned``, ``gather`` (and starred) environments (display). A display block is cut into rows
at ``\\\\``; every row keeps the line and column where it starts. Prose is ignored, except for
directives (``assume:``/``given:`` lines, also inside ``%`` or ``<!-- -->`` comments, never in code
blocks) and an equation number written right after inline math, as in ``$…$ (2)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

MAX_ROW = 4000
"""Rows longer than this many characters are not read (reported as such)."""
MAX_ROWS = 2000
"""At most this many rows of mathematics are read from one document (the rest is reported)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One row of mathematics: ``text`` starts at ``line``:``column`` (1-based) of the source.

    ``display`` is false for inline math in prose; ``block`` numbers the math block the row
    belongs to; ``tag`` is an equation number written after inline math (display rows carry
    theirs inside ``text``)."""

    line: int
    column: int
    text: str
    display: bool
    block: int
    tag: str = ""
    condition: str = ""
    """The condition of a ``cases`` entry the row comes from, or written in words after it
    (``\\quad \\text{for } i = j``): ``i = j``, LaTeX; or ``""``."""
    where: bool = False
    """A definition written in words after the row it serves (``\\quad \\text{where } s = …``),
    placed before that row: it defines, and the chain of lines goes on past it."""


@dataclass(frozen=True, slots=True)
class Directive:
    """``assume: R1, R2`` or ``given: R1`` at ``line``; ``text`` is what follows the colon."""

    line: int
    column: int
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Extracted:
    """The rows and directives of a document; ``truncated`` when it had more than
    :data:`MAX_ROWS` rows."""

    rows: tuple[Row, ...]
    directives: tuple[Directive, ...]
    truncated: bool = False


_DIRECTIVE = re.compile(
    r"^([ \t]*)(?:%+[ \t]*|<!--[ \t]*)?(assume|given)[ \t]*:(.*?)(?:-->)?[ \t]*$",
    re.MULTILINE | re.IGNORECASE)
"""A directive starts its line (after spaces), or stands in a comment."""
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|[0-9]+[.)])[ \t]+")
_BLOCK_START = re.compile(r"#{1,6}(\s|$)|(-[ \t]*){3,}$|(\*[ \t]*){3,}$|(_[ \t]*){3,}$|```|~~~")
"""A heading, a thematic break or a fence: what a paragraph never continues across."""
_LATEX_DOCUMENT = re.compile(r"^[ ]{0,3}\\(documentclass|begin\{document\})", re.MULTILINE)


def _width(indent: str) -> int:
    return len(indent.expandtabs(4))


def _in_markdown_code(text: str, directive: re.Match[str]) -> bool:
    """Whether a directive line stands in Markdown's indented code (CommonMark, in short): four
    spaces or more beyond the text it is in — a list item's text starts after its marker —,
    not continuing a paragraph right above it; LaTeX documents have no such code."""
    width = _width(directive.group(1))
    if width < 4 or directive.group(0).lstrip().startswith(("%", "<!--")) \
            or _LATEX_DOCUMENT.search(text):
        return False
    blank = False
    for line in reversed(text[:directive.start()].split("\n")[:-1]):
        if not line.strip():
            blank = True
            continue
        indent = _width(line) - _width(line.lstrip())
        if not blank and indent < 4:  # right above: a paragraph goes on, a heading does not
            return _BLOCK_START.match(line.lstrip()) is not None
        if indent < width:
            item = _LIST_ITEM.match(line)
            return item is None or width >= _width(item.group(0)) + 4
    return True


_ENVIRONMENTS = "equation|align|aligned|gather|gathered|eqnarray|multline|split"
_OPENERS = re.compile(
    r"(?<!\\)\$\$|\\\[|\\\(|\\begin\{(" + _ENVIRONMENTS + r")(\*?)\}|(?<![\\$])\$(?!\$)")
_TAG_AFTER = re.compile(r"[ \t]*\(([0-9]+[a-z]?)\)")
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_LATEX_COMMENT = re.compile(r"(?<!\\)%.*$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ROW_BREAK = re.compile(r"\\\\(\[[^\]]*\])?|,(?=\s*\\q?quad\b)")
"""A row ends at ``\\\\`` (with an optional spacing ``[2pt]``), or at a comma before ``\\quad``
(``a = b, \\quad c = d``: two equations on one line)."""


def _blank(text: str, pattern: re.Pattern[str]) -> str:
    """Replace each match by spaces (newlines kept), so that every offset stays where it was."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


class _Lines:
    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        import bisect

        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def _closing(opener: re.Match[str]) -> re.Pattern[str]:
    token = opener.group(0)
    if token == "$$":
        return re.compile(r"(?<!\\)\$\$")
    if token == "$":  # as Pandoc: no space before the closing $, and no digit after it
        return re.compile(r"(?<![\s\\$])\$(?![$\d])")
    if token == r"\[":
        return re.compile(r"\\\]")
    if token == r"\(":
        return re.compile(r"\\\)")
    return re.compile(r"\\end\{" + re.escape(opener.group(1) + opener.group(2)) + r"\}")


_CASES = re.compile(r"\\begin\{cases\}(.*?)\\end\{cases\}", re.DOTALL)
_CONDITION_WORDS = re.compile(r"\\(text|textrm|mbox|mathrm)\s*\{\s*(if|for|when|otherwise|else)?"
                              r"\s*[,.;]?\s*\}|^\s*(if|for|when)\b|[,.;]\s*$")


@dataclass(frozen=True, slots=True)
class _Case:
    start: int
    end: int
    text: str
    condition: str
    at: int
    """Where the entry's value stands (its line is the row's)."""


def _cases(body: str) -> list[_Case]:
    """``X = \\begin{cases} A & \\text{if } i = j \\\\ B & \\text{otherwise} \\end{cases}``: one row
    ``X = A`` under ``i = j`` and one ``X = B`` under ``i \\neq j`` (otherwise: the negation of
    the one other condition, when it is an equality). Offsets are in ``body``."""
    out: list[_Case] = []
    for m in _CASES.finditer(body):
        before = [b.end() for b in _ROW_BREAK.finditer(body, 0, m.start())]
        start = max(before, default=0)
        prefix = body[start:m.start()].strip()
        entries = []
        offset = m.start(1)
        for entry in re.split(r"(\\\\(?:\[[^\]]*\])?)", m.group(1)):
            at, offset = offset, offset + len(entry)
            if not entry.strip() or entry.startswith("\\\\"):
                continue
            value, _, written = entry.partition("&")
            condition = _CONDITION_WORDS.sub(" ", written).strip()
            at += len(value) - len(value.lstrip())
            otherwise = re.search(r"\b(otherwise|else)\b", entry) is not None
            # "otherwise" alone: read below, or left as written (then not read: unchecked)
            entries.append((value.strip(), condition or written.strip() if otherwise
                            else condition, otherwise, at))
        if len(entries) == 2:
            (_, first, _, _), (value, _, otherwise, at) = entries
            if otherwise and first.count("=") == 1 and "\\" not in first:
                entries[1] = (value, first.replace("=", "\\neq"), otherwise, at)
        out += [_Case(start, m.end(), f"{prefix} {value}", condition, at)
                for value, condition, _, at in entries]
    return out


_WORDS = r"\\(?:text|textrm|mbox|mathrm)\s*\{([^}]*)\}"
_CONDITION_AFTER = re.compile(r"(?:[,;]?\s*(?:\\q?quad\b|\\[,;:!>]|~)\s*)+" + _WORDS + r"(.*)$",
                              re.DOTALL)
"""Words, then maybe math, after an equation: ``… \\quad \\text{for } i \\neq k``."""
_IF = re.compile(r"\s*(?:if|for|when|since|because|using|given|assuming)\b(.*)$", re.DOTALL)
"""Words that put the relation after them in force for the line: a case, or the reason it
holds (``\\text{since } \\sum_i y_i = 1``): the line is checked under it."""
_WHERE = re.compile(r"\s*(?:where|with)\s*[,:]?\s*")
_SIMPLE_EQUATION = re.compile(r"[^=<>]*=[^=<>]*$")
"""One equation, no other relation: what a definition in words may be."""
_ANOTHER = re.compile(r"\s*(?:and|i\.\s*e\.|so|hence|thus|therefore|that is)\s*[,:]?\s*")
"""Words between two equations on one line: the second is a line of its own."""
_PLAIN_WORDS = re.compile(r"\s*(all|every|each|any)?\s*[,.:]?\s*")
"""What may follow 'if', 'for' or 'when' in the braces: 'for all i \\neq k' is 'for i \\neq k';
anything else ('if not', 'for all but') changes the condition, which is then not read."""
_CONDITION_ALONE = re.compile(r"^\s*" + _WORDS + r"(.*)$", re.DOTALL)
"""The same after ``, \\quad`` (which ends a row): about the row before."""
_RELATION = re.compile(r"=|\\neq?\b|\\leq?\b|\\geq?\b|[<>]|\\in\b|\\notin\b")


_DOMAIN = re.compile(
    r"1\s*\\le(q|qslant)?\s*[a-z]\s*\\le(q|qslant)?\s*\w+"
    r"|[a-z]\s*=\s*1\s*,\s*\\[lc]?dots\s*,\s*\w+"
    r"|[a-z]\s*\\in\s*\\\{\s*1\s*,\s*\\[lc]?dots\s*,\s*\w+\s*\\\}")
"""An index's range (``1 \\le i \\le c``, ``i = 1, \\dots, c``): every index, no condition."""


def _condition(inside: str, words: str) -> str:
    """The relation a condition in words states (``i = k``), or ``""`` where it states none
    (``\\text{for all } k``, ``\\text{for } 1 \\le i \\le c``: every index, no condition);
    with other words than 'all' in the braces, the words kept (the condition is not read)."""
    words = words.strip().rstrip(".,;").strip()
    if not _PLAIN_WORDS.fullmatch(inside):
        return f"\\text{{{inside.strip()}}} {words}"
    return words if _RELATION.search(words) and not _DOMAIN.fullmatch(words) else ""


_LEAD = re.compile(r"(?:\s|&|~|\\q?quad(?![a-zA-Z])|\\[,;:! >])*")
"""Alignment and spacing before a row's first sign."""
_OPERATOR = re.compile(r"(?:[+\-]|\\(?:cdot|times|pm|mp)(?![a-zA-Z]))")
_OPERATOR_LAST = re.compile(r"(?:[+\-]|\\(?:cdot|times|pm|mp))\s*$")
_RELATION_START = re.compile(r"=|<|>|\\(?:neq?|leq?|geq?|leqslant|geqslant|approx)(?![a-zA-Z])")
_TOKENS = re.compile(r"\\[a-zA-Z]+|\\.|[{}()\[\]=<>]")
_RELATION_SIGNS = frozenset({"=", "<", ">", r"\ne", r"\neq", r"\le", r"\leq", r"\ge", r"\geq",
                             r"\leqslant", r"\geqslant", r"\approx", r"\coloneqq"})


def _has_relation(text: str) -> bool:
    """Whether ``text`` has a relation sign outside every bracket (``\\sum_{j=1}`` has none)."""
    depth = 0
    for token in _TOKENS.finditer(text):
        sign = token.group(0)
        if sign in "{([":
            depth += 1
        elif sign in "})]":
            depth -= 1
        elif depth <= 0 and sign in _RELATION_SIGNS:
            return True
    return False


def _continues(before: Row, row: Row) -> bool:
    """Whether ``row`` goes on with the row ``before`` it in a display block, as people break
    a long line: an expression alone, then ``&= …`` on the next line (its value); or a line
    that starts with ``+``, ``-``, ``\\cdot`` (and states no relation), or follows one that ends
    with such a sign (the rest of a right side)."""
    if before.condition or row.condition:
        return False
    head = row.text[_LEAD.match(row.text).end():]
    if _RELATION_START.match(head) and not _has_relation(before.text):
        return True
    if _OPERATOR_LAST.search(before.text):
        return True
    return _OPERATOR.match(head) is not None and not _has_relation(head)


def _joined(block: list[Row]) -> list[Row]:
    """The rows of one display block, a row that continues the one before joined to it (the
    text between them becomes line breaks, so that every offset keeps its line)."""
    out: list[Row] = []
    for row in block:
        at = next((i for i in range(len(out) - 1, -1, -1) if not out[i].where), None)
        if row.where or at is None or not _continues(out[at], row):
            out.append(row)
            continue
        before = out[at]
        gap = max(1, row.line - before.line - before.text.count("\n"))
        text = f"{before.text}{chr(10) * gap}{' ' * (row.column - 1)}{row.text}"
        # the row's own definitions in words now come before the line it joined
        out[at:] = [*out[at + 1:], replace(before, text=text, tag=before.tag or row.tag)]
    return out


def _said(inside: str, math: str) -> tuple[str, str] | None:
    """What words in braces and the math after them say about the equation before them:
    ``("condition", relation)`` (``\\text{for } i = k``; other words before a relation,
    ``\\text{unless } i = k``, are kept: the condition is then not read), ``("definition",
    equation)`` (``\\text{where } s = …``), or None: an aside (``\\text{(chain rule)}``)."""
    condition = _IF.match(inside)
    if condition:
        return "condition", _condition(condition.group(1), math)
    if not _has_relation(math):
        return None
    if _ANOTHER.fullmatch(inside):
        return "row", math
    if _WHERE.fullmatch(inside):
        value = re.sub(r"\\[a-zA-Z]+", "", math.split("=", 1)[-1])  # letters, commands aside
        if re.fullmatch(r"\s*[a-zA-Z]\s*[.,;]?\s*", value) or not _SIMPLE_EQUATION.match(math):
            return "condition", _condition("", math)  # "where i = k", "with i \neq k"
        if re.search(r"[a-df-zA-Z]", value):  # a variable in it (e is Euler's number)
            return "definition", math.strip().rstrip(".,;").strip()
    # a value at a point ("with x = 0"), or other words: a condition not read (unchecked)
    return "condition", f"\\text{{{inside.strip()}}} {math.strip()}"


def extract(text: str) -> Extracted:
    """Rows of mathematics and directives, in the order they stand in ``text``."""
    work = _blank(text, _FENCE)  # code, not the text: neither math nor directives
    directives = tuple(
        Directive(*_Lines(text).at(m.start(2)), m.group(2).lower(), m.group(3).strip())
        for m in _DIRECTIVE.finditer(work) if not _in_markdown_code(work, m))
    work = _blank(work, _HTML_COMMENT)
    work = _blank(work, _LATEX_COMMENT)
    work = _blank(work, _DIRECTIVE)
    lines = _Lines(text)
    rows: list[Row] = []
    position, block = 0, 0
    while len(rows) < MAX_ROWS:
        opener = _OPENERS.search(work, position)
        if opener is None:
            break
        closer = _closing(opener).search(work, opener.end())
        if closer is None or (opener.group(0) == "$" and work[opener.end():opener.end() + 1]
                              .isspace()):
            position = opener.end()  # a dollar sign in prose, or an opener never closed
            continue
        inline = opener.group(0) in ("$", r"\(")
        if inline and "\n\n" in work[opener.end():closer.start()]:
            position = opener.end()  # a lone dollar sign in prose, not math
            continue
        block += 1
        body_start, body = opener.end(), work[opener.end():closer.start()]
        tag = ""
        if inline:
            after = _TAG_AFTER.match(work, closer.end())
            tag = f"({after.group(1)})" if after else ""
        _nested = re.compile(r"\\(begin|end)\{(" + _ENVIRONMENTS + r")\*?\}")
        body = _nested.sub(lambda m: " " * len(m.group(0)), body)
        for case in _cases(body):
            line, column = lines.at(body_start + case.at)
            rows.append(Row(line, column, case.text, not inline, block, tag, case.condition))
            body = body[:case.start] + re.sub(r"[^\n]", " ", body[case.start:case.end]) \
                + body[case.end:]
        start, pieces = 0, []
        for piece in [*_ROW_BREAK.finditer(body), None]:
            end = len(body) if piece is None else piece.start()
            chunk = body[start:end]
            spacing = re.match(r"\s*(\\q?quad\b)?", chunk).end()  # after ", \quad"
            start, chunk = start + spacing, chunk[spacing:]
            def definition(match: re.Match[str], equation: str) -> Row:
                line, column = lines.at(body_start + start + match.start(2))
                return Row(line, column, equation, not inline, block, tag, where=True)

            alone = _CONDITION_ALONE.match(chunk)
            said = _said(*alone.group(1, 2)) if alone and pieces else None
            if said and said[0] == "row":  # "…, \quad \text{and } h = 2": a line of its own
                said = None
            if said and said[0] == "condition" and not pieces[-1].condition:
                pieces[-1] = replace(pieces[-1], condition=said[1])
                chunk = ""
            elif said and said[0] == "definition":
                pieces.insert(len(pieces) - 1, definition(alone, said[1]))
                chunk = ""
            after = _CONDITION_AFTER.search(chunk)
            said = _said(*after.group(1, 2)) if after else None
            condition = said[1] if said and said[0] == "condition" else ""
            if said and said[0] == "definition":
                pieces.append(definition(after, said[1]))
            second = None
            if said and said[0] == "row":  # "g = x + 1 \quad \text{and} \quad h = 2"
                line, column = lines.at(body_start + start + after.start(2))
                second = Row(line, column, after.group(2).strip(), not inline, block, tag)
            chunk = chunk[:after.start()] if said else chunk
            if chunk.strip():
                lead = len(chunk) - len(chunk.lstrip())
                line, column = lines.at(body_start + start + lead)
                pieces.append(Row(line, column, chunk.strip(), not inline, block, tag,
                                  condition))
            if second is not None:
                pieces.append(second)
            if piece is not None:
                start = piece.end()
        separate = inline or opener.group(1) in ("gather", "gathered")  # one equation a row
        rows += pieces if separate else _joined(pieces)
        position = closer.end()
    truncated = len(rows) > MAX_ROWS or (
        len(rows) == MAX_ROWS and _OPENERS.search(work, position) is not None)
    return Extracted(tuple(rows[:MAX_ROWS]), directives, truncated)
