r"""Directives: ``assume: R1, R2, …`` and ``given: R1, …``, each R a LaTeX relation.

``given:`` holds from its line to the end of the document; ``assume:`` from its line until the
next ``assume:`` line (an empty ``assume:`` ends it). What each relation does to a check:

* ``y_i = \delta_{ip}`` (an entry with a free index on the left): every entry of y is replaced;
* ``n = p``, ``T = 2`` (a name on the left): the name is replaced;
* ``\sum_{i=1}^{c} y_i = 1``: the entries of y are drawn positive and summing to one, and the
  sum is replaced by 1 in symbolic checks;
* ``n \neq p``, ``T > 0``, ``a \leq b``: numeric points where it is false are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ._assumptions import Assumption
from ._symbols import apart_from
from ._text_extract import Directive, Row
from ._text_parse import parse_row

SUBSTITUTE, CONDITION, NORMALISE = "substitute", "condition", "normalise"
_RELATIONS = {"=": "==", "<": "<", ">": ">", r"\neq": "!=", r"\ne": "!=", r"\leq": "<=",
              r"\le": "<=", r"\leqslant": "<=", r"\geq": ">=", r"\ge": ">=", r"\geqslant": ">="}
_CONSTRUCT = {"==": sp.Eq, "!=": sp.Ne, "<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}


@dataclass(frozen=True)
class Assumed:
    """One relation in force: ``text`` as written, ``kind`` (substitute, condition,
    normalise), its sides and operator (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``)."""

    text: str
    kind: str
    lhs: sp.Basic
    rhs: sp.Basic
    op: str

    def expressions(self) -> list[sp.Basic]:
        return [self.lhs, self.rhs]

    def normalised(self, mapping: dict) -> Assumed:
        return Assumed(self.text, self.kind, self.lhs.xreplace(mapping),
                       self.rhs.xreplace(mapping), self.op)

    def substitute(self, expr: sp.Basic) -> sp.Basic:
        """``expr`` with the relation applied (substitutions only; others return it as is)."""
        if self.kind != SUBSTITUTE:
            return expr
        if isinstance(self.lhs, sp.Indexed):
            base, index = self.lhs.base, self.lhs.indices[0]
            expr = apart_from(expr, self.rhs - index)  # Σ_p y_p under y_i = δ_{ip}: p renamed
            return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == base,
                                lambda e: self.rhs.xreplace({index: e.indices[0]}))
        return expr.xreplace({self.lhs: self.rhs})

    def as_condition(self) -> Assumed:
        """An equality of two indices (``i = j``) as a condition points are drawn to satisfy,
        rather than a substitution; others as they are."""
        if (self.kind == SUBSTITUTE and isinstance(self.lhs, sp.Symbol) and self.lhs.is_integer
                and isinstance(self.rhs, sp.Symbol) and self.rhs.is_integer):
            return Assumed(self.text, CONDITION, self.lhs, self.rhs, "==")
        return self

    def for_engine(self) -> Assumption | None:
        """The relation as the check engine takes it (points drawn to satisfy it)."""
        if self.kind == CONDITION:
            relation = _CONSTRUCT[self.op](self.lhs, self.rhs, evaluate=False)
            return Assumption(f"relation:{self.text}", self.text, lambda e, c: e, relation)
        if self.kind == NORMALISE:
            summed = self.lhs

            def to_one(e: sp.Basic, classes: object) -> sp.Basic:
                return e.replace(lambda x: isinstance(x, sp.Sum) and _same_sum(x, summed),
                                 lambda x: sp.Integer(1))
            return Assumption(f"normalise:{self.text}", self.text, to_one,
                              normalises=summed.function.base)
        return None


def _same_sum(a: sp.Sum, b: sp.Sum) -> bool:
    if len(a.limits) != 1 or len(b.limits) != 1:
        return False
    (i, lo, hi), (j, lo2, hi2) = a.limits[0], b.limits[0]
    return lo == lo2 and hi == hi2 and a.function.xreplace({i: j}) == b.function


@dataclass(frozen=True)
class ReadDirective:
    line: int
    kind: str
    text: str
    relations: tuple[Assumed, ...]
    error: str = ""


def _split(text: str) -> list[tuple[int, str]]:
    """Top-level comma-separated parts, with their offsets."""
    parts, depth, start = [], 0, 0
    for pos, ch in enumerate(text + ","):
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch == "," and depth <= 0:
            if text[start:pos].strip():
                parts.append((start, text[start:pos]))
            start = pos + 1
    if text[start:].strip():  # a bracket left open: the rest is one part (and an error)
        parts.append((start, text[start:]))
    return parts


def classify(text: str, lhs: sp.Basic, rel: str, rhs: sp.Basic) -> Assumed:
    """What a relation does to a check; ``ValueError`` naming what is accepted otherwise."""
    op = _RELATIONS[rel]
    if op != "==":
        return Assumed(text, CONDITION, lhs, rhs, op)
    if isinstance(lhs, sp.Indexed) and len(lhs.indices) == 1 and lhs.indices[0].is_Symbol:
        return Assumed(text, SUBSTITUTE, lhs, rhs, op)
    if isinstance(lhs, sp.Symbol):
        return Assumed(text, SUBSTITUTE, lhs, rhs, op)
    if (isinstance(lhs, sp.Sum) and rhs == 1 and len(lhs.limits) == 1
            and isinstance(lhs.function, sp.Indexed) and lhs.function.indices == (lhs.limits[0][0],)):
        return Assumed(text, NORMALISE, lhs, rhs, op)
    raise ValueError(f"cannot use '{text}' as an assumption (accepted: x_i = …, name = …, "
                     f"\\sum_{{i=1}}^{{c}} y_i = 1, and relations with \\neq, <, \\leq, >, \\geq)")


def read_directive(directive: Directive | None, text: str | None = None) -> ReadDirective:
    """Read a directive's relations (``directive`` None: a ``--assume`` for the whole text)."""
    line = 0 if directive is None else directive.line
    kind = "given" if directive is None else directive.kind
    body = text if directive is None else directive.text
    relations: list[Assumed] = []
    for offset, part in _split(body):
        row = Row(max(line, 1), 1 + offset, part.strip(), True, 0)
        parsed = parse_row(row)
        where = f"line {line}" if line else "--assume"
        if parsed.relation is None:
            return ReadDirective(line, kind, body, (), f"{kind}: could not read '{part.strip()}' "
                                 f"({where}): {parsed.error}")
        r = parsed.relation
        if r.first is None or len(r.rest) != 1:
            return ReadDirective(line, kind, body, (), f"{kind}: '{part.strip()}' ({where}) is "
                                 "not one relation (write e.g. n \\neq p)")
        try:
            relations.append(classify(part.strip(), r.first, r.rest[0][0], r.rest[0][1]))
        except ValueError as error:
            return ReadDirective(line, kind, body, (), f"{kind}: {error} ({where})")
    return ReadDirective(line, kind, body, tuple(relations))


def directives_in_force(directives: list[ReadDirective], line: int,
                        mapping: dict) -> tuple[Assumed, ...]:
    """The relations in force at ``line``: every ``given:`` up to it, and the last ``assume:``."""
    given = [a for d in directives if d.kind == "given" and d.line <= line for a in d.relations]
    assumes = [d for d in directives if d.kind == "assume" and d.line <= line]
    current = list(assumes[-1].relations) if assumes else []
    return tuple(dict.fromkeys(a.normalised(mapping) for a in given + current))

