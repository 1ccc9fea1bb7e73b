"""Stage 2 of the text checker: read one row of LaTeX into SymPy objects.

The grammar is ``latex.lark`` (LALR); the :class:`_ToSympy` transformer builds every object by
its constructor. User text never reaches ``eval``, ``exec``, ``sympify`` or ``parse_expr``.
Names are left as they are written (plain symbols, ``IndexedBase`` for subscripted names); what
they mean (indices, definitions, c) is the next stage's business.
"""

from __future__ import annotations

import fractions
import functools
import re
from dataclasses import dataclass
from importlib import resources

import lark
import sympy as sp

from ._text_extract import MAX_ROW, Row
from ._text_prepare import ReadError, brackets, prepare


@dataclass(frozen=True, slots=True)
class Relation:
    """A row read: ``first`` (``None`` when the row continues the one before, ``&= …``) and
    then ``(relation, expression)`` pairs; ``tag`` is its equation number, e.g. ``(3)``."""

    first: sp.Basic | None
    rest: tuple[tuple[str, sp.Basic], ...]
    tag: str
    cuts: tuple[int, ...] = ()
    """Offsets in the row's text of each relation sign (to show each step as written)."""

    def piece(self, text: str, number: int) -> str:
        """The part of ``text`` that states relation ``number`` (0-based): ``A = B`` for the
        first of ``A = B = C``, ``= C`` for the second."""
        if len(self.cuts) <= 1:
            return text
        start = 0 if number == 0 and self.first is not None else self.cuts[number]
        end = self.cuts[number + 1] if number + 1 < len(self.cuts) else len(text)
        return text[start:end].strip().rstrip(",")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A row and what reading it gave: ``relation``, or ``error`` with its ``line``:``column``."""

    row: Row
    relation: Relation | None
    error: str = ""
    line: int = 0
    column: int = 0


@functools.lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = resources.files("derivation").joinpath("latex.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, parser="lalr", maybe_placeholders=False, propagate_positions=True)


def _where(row: Row, offset: int) -> tuple[int, int]:
    """Source line and column of an offset into the row's text."""
    before = row.text[:offset]
    line = row.line + before.count("\n")
    column = (offset - before.rfind("\n")) if "\n" in before else row.column + offset
    return line, column


def _describe(error: lark.exceptions.LarkError, text: str) -> ReadError:
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        pos = error.pos_in_stream
        command = re.match(r"\\[a-zA-Z]+", text[pos:])
        if command:
            return ReadError(f"unknown command '{command.group(0)}' (not mathematics this "
                             f"reader knows)", pos)
        return ReadError(f"cannot read '{text[pos]}' here", pos)
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token = error.token
        if token.type == "$END":
            return ReadError("the row ends too early: an expression is missing", len(text.rstrip()))
        expected = sorted({_NAMES.get(t, t.lower()) for t in error.expected
                           if not t.startswith("__")})[:6]
        return ReadError(f"unexpected '{token}'; expected {', '.join(expected)}",
                         token.start_pos or 0)
    return ReadError(str(error).splitlines()[0])


_NAMES = {"LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
          "RSQB": "']'", "REL": "a relation", "ADDOP": "'+' or '-'", "LETTER": "a name",
          "NUMBER": "a number", "CIRCUMFLEX": "'^'", "UNDERSCORE": "'_'"}


def parse_row(row: Row) -> Parsed:
    """Read one row; never raises (an unreadable row is a :class:`Parsed` with ``error``)."""
    try:
        if len(row.text) > MAX_ROW:
            raise ReadError(f"the row is {len(row.text)} characters long (at most {MAX_ROW} "
                            "are read)")
        text, tag = prepare(row.text)
        brackets(text)
        if not text.strip():
            raise ReadError("no mathematics in the row")
        try:
            tree = _parser().parse(text)
        except lark.exceptions.LarkError as error:
            raise _describe(error, text) from None
        try:
            reader = _ToSympy()
            first, rest = reader.transform(tree)
        except lark.exceptions.VisitError as error:
            inner = error.orig_exc
            if isinstance(inner, ReadError) and not inner.offset:
                meta = getattr(error.obj, "meta", None)
                inner.offset = getattr(meta, "start_pos", 0) if meta and not meta.empty else 0
            raise inner from None
        cuts = getattr(reader, "cuts", ()) if rest else ()
        return Parsed(row, Relation(first, tuple(rest), tag or row.tag, cuts))
    except ReadError as error:
        line, column = _where(row, error.offset)
        message = re.sub(r"\{at:(\d+)\}",
                         lambda m: "{}:{}".format(*_where(row, int(m.group(1)))), str(error))
        return Parsed(row, None, message, line, column)
    except (RecursionError, MemoryError):
        return Parsed(row, None, "the row is nested too deeply to read", row.line, row.column)
    except (ValueError, TypeError, ArithmeticError, AttributeError) as error:
        return Parsed(row, None, f"cannot be read as mathematics: {error}", row.line, row.column)


# ---- the transformer: each rule to a SymPy constructor ------------------------------------

IMPLICIT_BOUND = sp.Symbol("c_classes")
"""The upper limit of a sum written without one (``\\sum_i``): the number of classes."""


class _Dots:
    """``\\dots`` in a sum, resolved once the sum's terms are all known."""


@dataclass(frozen=True)
class _Partial:
    """``\\partial X`` (X may be absent) in a fraction's numerator or denominator."""

    of: sp.Basic | None


@dataclass(frozen=True)
class _Operator:
    """``\\frac{\\partial}{\\partial v}`` or ``\\frac{d}{dv}``: applied to what follows it
    (``sign`` -1 after a minus: ``-\\frac{\\partial}{\\partial v} \\log p``)."""

    wrt: sp.Basic
    sign: int = 1


class _Terms(list):
    """The terms of a sum in the order written (an ellipsis sum needs the order)."""


def value(x: object) -> sp.Basic:
    """A finished SymPy expression from an intermediate, or a :class:`ReadError`."""
    if isinstance(x, _Terms):
        from ._text_ellipsis import resolve

        return resolve(list(x))
    if isinstance(x, _Dots):
        raise ReadError("an ellipsis '\\dots' stands where an expression should")
    if isinstance(x, _Partial):
        raise ReadError("'\\partial' outside a derivative's fraction")
    if isinstance(x, _Operator):
        raise ReadError("a derivative operator with nothing after it to act on")
    return x


_FUNCTIONS = {"log": sp.log, "ln": sp.log, "exp": sp.exp, "sin": sp.sin, "cos": sp.cos,
              "tan": sp.tan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
              "arctan": sp.atan}


def _name_of(x: sp.Basic) -> str:
    if isinstance(x, sp.Symbol):
        return x.name
    raise ReadError(f"only a name can carry a subscript, not {sp.sstr(x)}")


def _d_over(numerator: sp.Basic, denominator: sp.Basic) -> tuple[sp.Basic | None, sp.Basic] | None:
    """``(X, v)`` when numerator/denominator read ``dX/dv`` (X None for ``d/dv``)."""
    d = sp.Symbol("d")
    den = sp.Mul.make_args(denominator)
    if len(den) != 2 or d not in den:
        return None
    wrt = den[0] if den[1] == d else den[1]
    if numerator == d:
        return None, wrt
    num = sp.Mul.make_args(numerator)
    if d in num and len(num) == 2:
        return (num[0] if num[1] == d else num[1]), wrt
    return None


VECTOR_ACCENTS = re.compile(r"\\(mathbf|boldsymbol|bm|vec)\{(.+)\}")


SOFTMAX_NOTATION = re.compile(r"(sigma|softmax)\((.+)\)")
"""The name of the vector ``σ(z)_i`` or ``softmax(z)_i`` is an entry of: ``sigma(z)``."""


def softmax_entry(call: sp.Basic, index: sp.Basic) -> sp.Basic:
    """``softmax(z)_i`` (in ``\\mathrm`` or ``\\operatorname``) or ``σ(z)_i`` (z bold or not):
    entry ``i`` of a vector named ``sigma(z)``, which means the softmax of z
    (:func:`softmax_meaning`) unless the document defines it otherwise."""
    (argument,) = call.args
    if str(call.func) not in ("softmax", "sigma") or not isinstance(argument, sp.Symbol):
        raise ReadError(f"only a name can carry a subscript, not {sp.sstr(call)}")
    bold = VECTOR_ACCENTS.fullmatch(argument.name)
    vector = bold.group(2).lstrip("\\") if bold else argument.name
    return sp.Indexed(sp.IndexedBase(f"{call.func}({vector})"), index)


def softmax_meaning(entry: sp.Indexed) -> sp.Basic:
    """What ``σ(z)_i`` means when the document does not say: e^{z_i} / Σ_k e^{z_k} over the
    classes (the bound is the document's, as for ``Σ_k``)."""
    vector = sp.IndexedBase(SOFTMAX_NOTATION.fullmatch(str(entry.base)).group(2))
    (index,) = entry.indices
    taken = {s.name for s in index.free_symbols}
    k = sp.Symbol(next(n for n in ("k", "j", "m", "l", "r") if n not in taken))
    return sp.exp(sp.Indexed(vector, index)) / sp.Sum(sp.exp(sp.Indexed(vector, k)),
                                                      (k, 1, IMPLICIT_BOUND))


_SAME_ACCENT = {r"\widehat": r"\hat", r"\widetilde": r"\tilde", r"\overline": r"\bar",
                r"\boldsymbol": r"\mathbf", r"\bm": r"\mathbf"}
"""Accents that differ in print only: ``\\widehat{y}`` is ``\\hat{y}``."""


def _bare(factor: object) -> object:
    """A factor without its written product sign (``\\cdot x`` is x); a division stays."""
    if isinstance(factor, tuple) and factor and factor[0] == "times":
        return factor[1]
    return factor


class _ToSympy(lark.Transformer):
    """One method per grammar rule; each returns a SymPy object (or a marker resolved above)."""

    def relations(self, items):
        first = None if isinstance(items[0], lark.Token) and items[0].type == "REL" else value(items[0])
        start = 0 if first is None else 1
        rest = [(str(items[pos]), value(items[pos + 1])) for pos in range(start, len(items), 2)]
        self.cuts = tuple(items[pos].start_pos for pos in range(start, len(items), 2))
        return first, rest

    def lone(self, items):
        return value(items[0]), []

    def expr(self, items):
        terms = _Terms(items[0] if isinstance(items[0], _Terms) else [items[0]])
        for pos in range(1, len(items), 2):
            op, term = str(items[pos]), items[pos + 1]
            if isinstance(term, _Dots):
                terms.append(term)
            else:
                term = value(term)
                terms.append(term if op == "+" else -term)
        return terms

    def term(self, items):
        return value(self._product(list(items)))

    def _product(self, items: list) -> object:
        """A term's factors multiplied; a derivative operator acts on every factor after it,
        as a reader takes ``\\frac{d}{dx} x^2 \\ln x`` (the derivative of x² ln x)."""
        at = next((pos for pos, x in enumerate(items) if isinstance(_bare(x), _Operator)), None)
        if at is not None:
            if at == len(items) - 1:
                raise ReadError("a derivative operator with nothing after it to act on")
            rest = [_bare(items[at + 1]), *items[at + 2:]]
            operator = _bare(items[at])
            derivative = sp.Derivative(value(self._product(rest)), operator.wrt, evaluate=False)
            if operator.sign == -1:
                derivative = sp.Mul(-1, derivative, evaluate=False)
            if at == 0:
                return derivative
            return self._times(self._product(items[:at]), derivative)
        result = value(items[0])
        for factor in items[1:]:
            result = self._times(result, factor)
        return result

    def _times(self, left, right):
        if isinstance(right, tuple) and right and right[0] == "over":
            return sp.Mul(left, sp.Pow(value(right[1]), -1))
        if isinstance(right, tuple) and right and right[0] == "times":
            return sp.Mul(left, value(right[1]))
        if isinstance(right, (_Dots, _Partial)):
            raise ReadError("an ellipsis or '\\partial' inside a product is not read")
        return sp.Mul(left, value(right))

    def times(self, items):
        return ("times", items[1])

    def over(self, items):
        return ("over", items[1])

    def sign(self, items):
        minus = str(items[0]) != "+"
        if isinstance(items[1], _Operator):  # -d/dv acts on what follows, like d/dv
            return _Operator(items[1].wrt, -items[1].sign if minus else items[1].sign)
        return -value(items[1]) if minus else value(items[1])

    def indicator(self, items):
        """``\\mathbb{1}[i = k]`` is δ_ik, ``\\mathbb{1}[i \\neq k]`` is 1 − δ_ik."""
        _, left, relation, right = items
        left, right = value(left), value(right)
        if not all(x.is_Symbol or (x.is_Integer and x > 0) for x in (left, right)):
            raise ReadError("an indicator is read between class indices only (\\mathbb{1}[i = k],"
                            f" \\mathbb{{1}}[i = 1]), not of {sp.sstr(left)} = {sp.sstr(right)}")
        delta = sp.KroneckerDelta(left, right)
        if str(relation) == "=":
            return delta
        if str(relation) in (r"\neq", r"\ne"):
            return 1 - delta
        raise ReadError(f"an indicator of '{relation}' is not read (only of = and \\neq)")

    def dots(self, items):
        return _Dots()

    def partial(self, items):
        return _Partial(value(items[1]) if len(items) > 1 else None)

    def bigop(self, items):
        kind = str(items[0])
        lower = next((x for x in items[1:-1] if isinstance(x, tuple) and x[0] == "lower"), None)
        upper = next((x for x in items[1:-1] if isinstance(x, tuple) and x[0] == "upper"), None)
        if lower is None:
            raise ReadError(f"'{kind}' without an index below it (write {kind}_{{i=1}}^{{c}})")
        index, low = lower[1], lower[2]
        high = upper[1] if upper is not None else IMPLICIT_BOUND
        body = value(items[-1])
        cls = sp.Sum if kind == r"\sum" else sp.Product
        if len(lower) == 4:  # \sum_{j \neq i}: every class but i
            if cls is sp.Product:
                raise ReadError("a product over 'j \\neq i' is not read (a sum is)")
            body = body * (1 - sp.KroneckerDelta(index, lower[3]))
        return cls(body, (index, low, high))

    def lower(self, items):
        if len(items) == 2:  # \sum_{j=1, j \neq k}, either way round
            lows = [self.lower([x]) for x in items]
            start, skip = sorted(lows, key=len)
            if len(start) != 3 or len(skip) != 4 or start[1] != skip[1]:
                raise ReadError("a sum's index must read 'i = 1', 'j \\neq i' or just 'i', or "
                                "'j = 1, j \\neq i'")
            return (*start, skip[3])
        (x,) = items
        if isinstance(x, tuple) and not x[1]:  # {i}
            x = x[0]
        if isinstance(x, tuple):  # a chain: i = 1
            first, rest = x
            if (isinstance(first, sp.Symbol) and len(rest) == 1
                    and rest[0][0] in ("\\neq", "\\ne")):
                return ("lower", first, sp.Integer(1), rest[0][1])  # j \neq i
            if first is None or len(rest) != 1 or rest[0][0] != "=" or not isinstance(first, sp.Symbol):
                raise ReadError("a sum's index must read 'i = 1', 'j \\neq i' or just 'i'")
            return ("lower", first, rest[0][1])
        if not isinstance(x, sp.Symbol):
            raise ReadError("a sum's index must be a name")
        return ("lower", x, sp.Integer(1))

    def upper(self, items):
        return ("upper", value(items[0]))

    def pow(self, items):
        return sp.Pow(value(items[0]), value(items[1]))

    def subscript(self, items):
        base, indices = items[0], items[1]
        if isinstance(base, sp.core.function.AppliedUndef) and len(indices) == 1:
            return softmax_entry(base, indices[0])
        name = _name_of(base)
        if name == "delta" and len(indices) == 2:
            return sp.KroneckerDelta(*indices)
        if name == "delta":
            raise ReadError("\\delta takes two indices: \\delta_{ij}")
        return sp.Indexed(sp.IndexedBase(name), *indices)

    def subscript_pow(self, items):
        return sp.Pow(self.subscript(items[:2]), value(items[2]))

    def indices(self, items):
        parts = [value(x) for x in items]
        if len(parts) == 1 and parts[0].is_Mul and len(parts[0].args) == 2 and all(
                a.is_Symbol for a in parts[0].args):
            # {ij}: two single-letter indices (read as a product, so in SymPy's order: only
            # \delta, which is symmetric, takes two; an entry with two is left unchecked)
            return tuple(parts[0].args)
        return tuple(parts)

    def name(self, items):
        return sp.Symbol(str(items[0]))

    def greek(self, items):
        return sp.Symbol(str(items[0])[1:])

    def number(self, items):
        exact = fractions.Fraction(str(items[0]))
        return sp.Rational(exact.numerator, exact.denominator)

    def accent(self, items):
        command, letter = str(items[0]), str(items[1])
        if command in (r"\mathrm", r"\mathit"):
            return sp.Symbol(letter.lstrip("\\"))
        command = _SAME_ACCENT.get(command, command)
        return sp.Symbol(f"{command}{{{letter}}}")

    def call(self, items):
        name = str(items[0])
        named = re.fullmatch(r"\\(?:operatorname\*?|mathrm)\s*\{\s*([a-zA-Z]+)\s*\}", name)
        if named and named.group(1) in _FUNCTIONS:  # \mathrm{exp}(x) is \exp(x)
            return _FUNCTIONS[named.group(1)](value(items[1]))
        return sp.Function(named.group(1) if named else name.lstrip("\\"))(value(items[1]))

    def frac(self, items):
        numerator, denominator = items[1], items[2]
        if isinstance(numerator, lark.Token):  # \frac12
            numerator = sp.Integer(int(str(numerator)))
        if isinstance(numerator, _Partial) and isinstance(denominator, _Partial):
            if denominator.of is None:
                raise ReadError("'\\partial' in a denominator needs a variable after it")
            if numerator.of is None:
                return _Operator(denominator.of)
            return sp.Derivative(numerator.of, denominator.of, evaluate=False)
        numerator, denominator = value(numerator), value(denominator)
        d = _d_over(numerator, denominator)
        if d is not None:
            return _Operator(d[1]) if d[0] is None else sp.Derivative(d[0], d[1], evaluate=False)
        return sp.Mul(numerator, sp.Pow(denominator, -1))

    def sqrt(self, items):
        return sp.sqrt(value(items[1]))

    def root(self, items):
        return sp.root(value(items[2]), value(items[1]))

    def func(self, items):
        return _FUNCTIONS[str(items[0])[1:]](value(items[1]))

    def func_pow(self, items):
        return sp.Pow(_FUNCTIONS[str(items[0])[1:]](value(items[2])), value(items[1]))

    def infinity(self, items):
        return sp.oo

    def start(self, items):
        return items[0]
