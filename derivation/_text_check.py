"""Stage 4 of the text checker: check each step, and ``check_text``, the pipeline's entry point.

extract (:mod:`._text_extract`) → parse (:mod:`._text_parse`) → meaning
(:mod:`._text_meaning`) → check (here) → report (:mod:`._text_report`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from . import _check
from ._budget import OverBudget, budget
from ._symbols import c as classes_symbol
from ._text_assume import SUBSTITUTE, Assumed
from ._text_extract import extract
from ._text_hints import catalogue, hint
from ._text_meaning import DERIVATIVE, EQUAL, INLINE, Claim, understand

HOLDS, FAILS, UNCHECKED = "holds", "fails", "unchecked"
STEP_SECONDS = 20.0
"""Time budget of one step (its check, hint and suggestions), in seconds."""


class NoMath(ValueError):
    """The text has no mathematics in it to check."""


@dataclass(frozen=True, slots=True)
class TextStep:
    """One step of a written derivation and how its check went.

    ``index`` counts steps from 1; ``line`` is the source line; ``text`` the step as written;
    ``status`` ``holds``, ``fails`` or ``unchecked``; ``check`` ``symbolic``, ``numeric`` or
    ``None``; ``assumptions`` the relations in force; ``counterexample`` values where the two
    sides differ; ``hint`` one line on the difference; ``holds_if`` assumptions that would make
    a failed step hold; ``detail`` how the check went, or why there was none.
    """

    index: int
    line: int
    text: str
    status: str
    check: str | None
    assumptions: tuple[str, ...]
    counterexample: dict[str, object] | None
    hint: str
    holds_if: tuple[str, ...]
    detail: str

    def to_json(self) -> dict:
        return {"index": self.index, "line": self.line, "text": self.text,
                "status": self.status, "check": self.check,
                "assumptions": list(self.assumptions), "counterexample": self.counterexample,
                "hint": self.hint, "holds_if": list(self.holds_if), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class TextCheck:
    """A written derivation, checked: ``steps`` in the order they stand."""

    source: str
    steps: tuple[TextStep, ...]
    inline: tuple[int, ...] = ()
    """Lines of equations in inline math that define nothing: not steps, so not checked."""

    @property
    def holds(self) -> bool:
        """Every step was checked and holds (and there is at least one)."""
        return bool(self.steps) and all(s.status == HOLDS for s in self.steps)

    @property
    def first_failure(self) -> TextStep | None:
        return next((s for s in self.steps if s.status != HOLDS), None)

    def to_text(self) -> str:
        from ._text_report import to_text

        return to_text(self)

    def to_markdown(self) -> str:
        from ._text_report import to_markdown

        return to_markdown(self)

    def to_json(self) -> str:
        from ._text_report import to_json

        return to_json(self)


def _prepared(expr: sp.Basic, assumed: tuple[Assumed, ...], wrt: sp.Basic | None) -> sp.Basic:
    for a in assumed:
        if wrt is not None and isinstance(a.lhs, sp.Indexed) and isinstance(wrt, sp.Indexed) \
                and a.lhs.base == wrt.base:
            continue  # never substitute the variable differentiated by
        expr = a.substitute(expr)
    return expr


def _outcome(claim: Claim, assumed: tuple[Assumed, ...]) -> _check.Outcome:
    if claim.kind == DERIVATIVE and isinstance(claim.wrt, sp.Indexed):
        # ∂s_i/∂a_j "when i = j" is the partial by a_j taken at i = j: substituting first
        # would make s_j move with the index differentiated by, which is another function
        index = claim.wrt.indices[0]
        assumed = tuple(a.as_condition() if index in (a.lhs, a.rhs) else a for a in assumed)
    engine = tuple(e for e in (a.for_engine() for a in assumed) if e is not None)
    if claim.kind == DERIVATIVE and isinstance(claim.wrt, sp.Symbol) and any(
            claim.wrt in a.lhs.free_symbols for a in assumed if a.kind == SUBSTITUTE):
        # d/dx x^3 "for x = 1" is the derivative taken at 1: differentiated first, then the
        # point put in (put in first, x^3 became 1, whose derivative is 0)
        derived = sp.diff(_check.evaluated(claim.before), claim.wrt)
        outcome = _check.equal(_prepared(derived, assumed, None),
                               _prepared(claim.after, assumed, None), classes_symbol, engine)
        return replace(outcome, detail=outcome.detail.replace(
            "the previous line", f"the derivative by {sp.sstr(claim.wrt)}"))
    before = _prepared(claim.before, assumed, claim.wrt)
    after = _prepared(claim.after, assumed, claim.wrt)
    if claim.kind == DERIVATIVE:
        return _check.derivative(before, after, claim.wrt, classes_symbol, engine)
    return _check.equal(before, after, classes_symbol, engine)


def _plain(counterexample: dict | None) -> dict | None:
    if counterexample is None:
        return None
    return {k: (v if isinstance(v, (int, float)) else str(v)) for k, v in counterexample.items()}


def _check_claim(index: int, claim: Claim) -> TextStep:
    written = tuple(a.text for a in claim.assumed)

    def step(status: str, check: str | None, detail: str, counterexample=None, hint_="",
             holds_if=()) -> TextStep:
        return TextStep(index, claim.line, claim.text, status, check, written,
                        _plain(counterexample), hint_, tuple(holds_if), detail)

    if claim.kind not in (EQUAL, DERIVATIVE):
        return step(UNCHECKED, None, claim.reason)
    both = _vector_and_number(claim)
    if both:
        return step(UNCHECKED, None, f"not checked: {both} stands both for one number ({both}) "
                                     f"and for a vector ({both}_i) in this step (a name defined "
                                     "earlier for one meaning is still in force)")
    try:
        with budget(STEP_SECONDS):
            # derivatives inside the lines carried out once, for the check and its hints alike
            claim = replace(claim, before=_check.evaluated(claim.before),
                            after=_check.evaluated(claim.after))
            outcome = _outcome(claim, claim.assumed)
            if claim.against:
                outcome = replace(outcome, detail=outcome.detail.replace("the previous line",
                                                                         claim.against))
            if outcome.holds:
                return step(HOLDS, outcome.status, outcome.detail)
            if outcome.status != _check.FAILED:
                return step(UNCHECKED, None, outcome.detail)
            if claim.against:  # a definition of the softmax notation that is not the softmax
                return step(FAILS, None, outcome.detail, outcome.counterexample,
                            f"this notation means {claim.against}; the steps below use this "
                            "line's definition, but a different function needs a name of its "
                            "own (q_i = …)")
            return step(FAILS, None, outcome.detail, outcome.counterexample,
                        *_explain(claim))
    except OverBudget as error:
        return step(UNCHECKED, None, f"unchecked: {error}")
    except RecursionError:
        return step(UNCHECKED, None, "unchecked: the expression is nested too deeply")
    except Exception as error:  # noqa: BLE001 - SymPy/mpmath on extreme input: not a verdict
        return step(UNCHECKED, None, f"unchecked: the check could not be carried out "
                                     f"({type(error).__name__}: {str(error)[:120]})")


def _vector_and_number(claim: Claim) -> str:
    """A name that is a plain symbol and a vector's name in the same step, or ''."""
    exprs = [e for e in (claim.before, claim.after, claim.wrt) if e is not None]
    bases = {str(b.label) for e in exprs for b in e.atoms(sp.IndexedBase)}
    if not bases:
        return ""
    outside = [e.xreplace({x: sp.Dummy() for x in e.atoms(sp.Indexed)}) for e in exprs]
    plain = {x.name for e in outside for x in e.free_symbols if isinstance(x, sp.Symbol)}
    return min(plain & bases, default="")


def _explain(claim: Claim) -> tuple[str, tuple[str, ...]]:
    """The hint, and the catalogue's assumptions that make the step hold."""
    holds_if = []
    for candidate in catalogue(claim.before, claim.after, claim.wrt):
        trial = _outcome(claim, claim.assumed + (candidate,))
        if trial.holds and trial.points and not trial.skipped:  # evaluated, and defined
            holds_if.append(candidate.text)
    def holds(a: sp.Basic, b: sp.Basic) -> bool:
        trial = Claim(claim.line, claim.text, EQUAL, a, b, None, claim.assumed)
        return _outcome(trial, claim.assumed).holds

    if claim.kind == DERIVATIVE:  # compared with SymPy's derivative of what was defined
        for name, by_other in claim.by_others:
            if holds(by_other, claim.after):
                return (f"chain rule: this line is the derivative by {name}, not by "
                        f"{sp.sstr(claim.wrt)}; multiply by the derivative of {name} by "
                        f"{sp.sstr(claim.wrt)}"), tuple(holds_if)
        derived = sp.diff(_check.evaluated(claim.before), claim.wrt)
        return hint(derived, claim.after, holds, what="the derivative"), tuple(holds_if)
    return hint(claim.before, claim.after, holds, claim.functions, claim.previous_tag), \
        tuple(holds_if)


def check_text(text: str, *, source: str = "<text>", assume: tuple[str, ...] | list[str] = ()
               ) -> TextCheck:
    r"""Check a derivation as people write it: Markdown or LaTeX with its math in ``$…$``,
    ``$$…$$``, ``\[…\]`` or ``equation``/``align``/``aligned``/``gather`` environments.

    Every step (a line claimed equal to the one before it, or to the derivative of a defined
    name) is checked as :func:`check_chain` checks a link; a failing one gets a counterexample,
    a hint when the difference is simple, and the assumptions that would make it hold.

    Args:
        text: the document.
        source: its name, for the report.
        assume: relations in force for the whole text (as a ``given:`` line), e.g.
            ``["n \\neq p"]``.

    Returns:
        A frozen :class:`TextCheck`.

    Raises:
        TypeError: ``text`` (or a relation of ``assume``) is not a string.
        NoMath: there is no mathematics in the text.

    Example:
        >>> import derivation
        >>> t = derivation.check_text("$$\\frac{d}{dx} x^2 = 2x$$")
        >>> t.holds, t.steps[0].status
        (True, 'holds')
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string, got {type(text).__name__}")
    if isinstance(assume, str):
        assume = (assume,)
    for relation in assume:
        if not isinstance(relation, str):
            raise TypeError(f"assume: expected LaTeX relations as strings (e.g. 'n \\neq p'), "
                            f"got {relation!r}")
    found = extract(text)
    if not found.rows:
        raise NoMath(f"{source}: no mathematics found (expected $…$, $$…$$, \\[…\\] or an "
                     "equation/align environment)")
    claims = understand(found, tuple(assume), source)
    inline = tuple(dict.fromkeys(claim.line for claim in claims if claim.kind == INLINE))
    claims = [claim for claim in claims if claim.kind != INLINE]
    steps = tuple(_check_claim(index, claim) for index, claim in enumerate(claims, start=1))
    return TextCheck(source, steps, inline)
