"""The routes: each an independent derivation of the same gradient, every step checked.

Every step is produced by a named rule from ``_rules`` (or, on the course's route, written as the
course wrote it) and then checked against the line before it by ``_check``, which knows nothing
of how the line was produced.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from . import _check
from ._assumptions import INDEX_RANGE, K_IS_P, N_NOT_P, ONE_HOT, SUMS_TO_ONE, Assumption
from ._check import Outcome
from ._model import Route, Step
from ._rules import (fold_softmax, labels_sum_to_one, linearity_of_sum, log_of_quotient,
                     sift_kronecker_delta)
from ._symbols import (Classes, i, j, k, locals_, loss, m, n, p, partial, sigma, total,
                       unfold_softmax, y, z)

LOSS = ("C", "C")
GRAD = ("∂C/∂z_k", r"\frac{\partial C}{\partial z_k}")
CLOSED_FORM = sigma[k] - y[k]

Progress = Callable[[], None]
"""Called once after each step is checked (for a progress bar)."""

STEPS = {"course": 9, "log-sum-exp": 8, "jacobian": 7, "hessian": 6}
"""Steps per route, whatever the number of classes (for a progress bar's total)."""


def _as_printed(expr: sp.Basic) -> sp.Basic:
    """The expression as ``sympify(str(expr))`` reads it back (SymPy may order a product built
    by hand differently), so that the line checked is the line the JSON shows."""
    return sp.sympify(sp.sstr(expr), locals=locals_())


def general_gradient(classes: Classes) -> sp.Expr:
    r""":math:`\sigma_k \sum_i y_i - y_k`, the gradient for any labels."""
    return sigma[k] * total(y[i], i, classes) - y[k]


def hessian_result() -> sp.Expr:
    r""":math:`\sigma_k \delta_{jk} - \sigma_j \sigma_k`, the Hessian for labels that sum to one."""
    return sigma[k] * sp.KroneckerDelta(j, k) - sigma[j] * sigma[k]


class _Builder:
    """Accumulates checked steps; ``standing`` assumptions hold for every step after they are
    introduced."""

    def __init__(self, name: str, classes: Classes, progress: Progress | None = None) -> None:
        self.name, self.classes, self.progress = name, classes, progress
        self.standing: tuple[Assumption, ...] = ()
        self.steps: list[Step] = []

    @property
    def last(self) -> sp.Basic:
        return self.steps[-1].expr

    def _add(self, lhs: tuple[str, str], expr: sp.Basic, rule: str, outcome: Outcome,
             used: tuple[Assumption, ...], tag: str, written: sp.Basic | None = None) -> sp.Basic:
        self.steps.append(Step(lhs[0], lhs[1], expr, rule, tuple(a.text for a in used),
                               outcome.status, outcome.detail, outcome.counterexample, tag,
                               written))
        if self.progress is not None:
            self.progress()
        return expr

    def _in_force(self, extra: tuple[Assumption, ...]) -> tuple[Assumption, ...]:
        return tuple(dict.fromkeys(self.standing + extra))

    def start(self, lhs: tuple[str, str], expr: sp.Basic, rule: str, of: sp.Basic,
              wrt: sp.Indexed | None = None, tag: str = "") -> sp.Basic:
        """The first line, checked against the definition ``of`` (or its derivative by ``wrt``)."""
        expr = _as_printed(expr)
        if wrt is None:
            outcome = _check.equal(of, expr, self.classes)
        else:
            outcome = _check.derivative(of, expr, wrt, self.classes)
        return self._add(lhs, expr, rule, outcome, (), tag)

    def rewrite(self, expr: sp.Basic, rule: str, *used: Assumption, tag: str = "",
                lhs: tuple[str, str] | None = None) -> sp.Basic:
        """A line claimed equal to the one before it."""
        expr = _as_printed(expr)
        in_force = self._in_force(used)
        outcome = _check.equal(self.last, expr, self.classes, in_force)
        return self._add(lhs or (self.steps[-1].lhs, self.steps[-1].lhs_latex), expr, rule,
                         outcome, in_force, tag)

    def differentiate(self, lhs: tuple[str, str], expr: sp.Basic, wrt: sp.Indexed, rule: str,
                      *used: Assumption, of: sp.Basic | None = None, tag: str = "",
                      written: sp.Basic | None = None) -> sp.Basic:
        """A line claimed to be the derivative by ``wrt`` of ``of`` (default: the line before).

        ``written``: the line as the source wrote it, unevaluated, for display; it must have
        the value of ``expr``."""
        expr = _as_printed(expr)
        in_force = self._in_force(used)
        outcome = _check.derivative(self.last if of is None else of, expr, wrt, self.classes,
                                    in_force)
        if written is not None and sp.cancel(sp.together(rebuilt(written) - expr)) != 0:
            raise AssertionError("the line as written and the line checked differ")
        return self._add(lhs, expr, rule, outcome, in_force, tag, written)

    def cases(self, lhs: tuple[str, str], expr: sp.Basic, rule: str,
              cases: list[tuple[dict, sp.Basic, Assumption]], tag: str = "") -> sp.Basic:
        """A line that combines cases: with each substitution it must equal that case's line."""
        expr = _as_printed(expr)
        outcomes = [_check.equal(line, expr.xreplace(subs), self.classes,
                                 self._in_force((case,)))
                    for subs, line, case in cases]
        failed = [o for o in outcomes if o.status == _check.FAILED]
        status = (_check.FAILED if failed else
                  _check.SYMBOLIC if all(o.status == _check.SYMBOLIC for o in outcomes) else
                  _check.NUMERIC)
        detail = "; ".join(f"{case.text}: {o.detail}" for (_, _, case), o in zip(cases, outcomes))
        outcome = Outcome(status, detail, failed[0].counterexample if failed else None)
        return self._add(lhs, expr, rule, outcome, self.standing, tag)

    def route(self, result: sp.Basic) -> Route:
        return Route(self.name, tuple(self.steps), result)


def _labels_sum_to_one_rule(labels: str) -> str:
    why = "a one-hot label sums to one" if labels == "onehot" else "soft labels sum to one"
    return f"labels sum to one ({why}): Σᵢ yᵢ = 1"


def log_sum_exp_route(classes: Classes, labels: str, progress: Progress | None = None) -> Route:
    """log σᵢ = zᵢ − log Σ e^{z_m}; differentiate; sift the delta; then Σᵢ yᵢ = 1."""
    b = _Builder("log-sum-exp", classes, progress)
    b.start(LOSS, loss(classes), "definition of categorical cross-entropy", of=loss(classes))
    b.rewrite(unfold_softmax(b.last, classes), "definition of the softmax σᵢ = e^{zᵢ}/Σₘ e^{zₘ}")
    b.rewrite(log_of_quotient(b.last), "log of a quotient, and log e^{zᵢ} = zᵢ")
    b.rewrite(linearity_of_sum(b.last),
              "linearity of the sum: log Σₘ e^{zₘ} does not depend on i, so it leaves the sum")
    b.differentiate(GRAD, partial(b.last, z[k], classes), z[k],
                    "differentiate term by term: ∂zᵢ/∂z_k = δᵢₖ, and the chain rule for "
                    "log Σₘ e^{zₘ}")
    b.rewrite(sift_kronecker_delta(b.last, classes), "sift the Kronecker delta: Σᵢ δᵢₖ fᵢ = f_k",
              INDEX_RANGE)
    b.rewrite(fold_softmax(b.last, classes),
              "definition of the softmax: e^{z_k}/Σₘ e^{zₘ} = σ_k — the gradient for any labels")
    b.rewrite(labels_sum_to_one(b.last, classes), _labels_sum_to_one_rule(labels), SUMS_TO_ONE)
    return b.route(CLOSED_FORM)


def jacobian_route(classes: Classes, labels: str, progress: Progress | None = None) -> Route:
    """∂C/∂σᵢ = −yᵢ/σᵢ and ∂σᵢ/∂z_k = σᵢ(δᵢₖ − σ_k), contracted over i."""
    b = _Builder("chain rule through the softmax Jacobian", classes, progress)
    b.start(LOSS, loss(classes), "definition of categorical cross-entropy", of=loss(classes))
    by_probability = -y[n] / sigma[n]
    b.differentiate(("∂C/∂σ_n", r"\frac{\partial C}{\partial \sigma_n}"), by_probability,
                    sigma[n],
                    "derivative with respect to the probability σ_n, holding the other σ fixed. "
                    "This is not the gradient we want: C depends on the logits z through every σ, "
                    "so the gradient with respect to z needs the softmax Jacobian as well")
    b.start(("∂σ_n/∂z_k", r"\frac{\partial \sigma_n}{\partial z_k}"),
            sigma[n] * (sp.KroneckerDelta(n, k) - sigma[k]),
            "the softmax Jacobian, by the quotient rule on e^{zₙ}/Σₘ e^{zₘ}", of=sigma[n],
            wrt=z[k])
    contraction = total(sp.Mul(by_probability, sigma[n] * (sp.KroneckerDelta(n, k) - sigma[k]))
                        .xreplace({n: i}), i, classes)
    b.differentiate(GRAD, contraction, z[k],
                    "chain rule: ∂C/∂z_k = Σᵢ ∂C/∂σᵢ · ∂σᵢ/∂z_k (σᵢ cancels, σᵢ > 0)",
                    of=loss(classes))
    b.rewrite(linearity_of_sum(b.last), "linearity of the sum: σ_k does not depend on i")
    b.rewrite(sift_kronecker_delta(b.last, classes), "sift the Kronecker delta: Σᵢ δᵢₖ yᵢ = y_k",
              INDEX_RANGE)
    b.rewrite(labels_sum_to_one(b.last, classes), _labels_sum_to_one_rule(labels), SUMS_TO_ONE)
    return b.route(CLOSED_FORM)


def rebuilt(expr: sp.Basic) -> sp.Basic:
    """An unevaluated expression built again with evaluation on (its value, SymPy's form)."""
    return expr.func(*(rebuilt(a) for a in expr.args)) if expr.args else expr


def _quotient_rule_as_written(total_exp: sp.Expr, e_p: sp.Expr) -> sp.Expr:
    """−1/(e^{z_p}/Σ) · (Σ e^{z_p} − e^{z_p} e^{z_p})/Σ², as the course wrote it (unevaluated)."""
    with sp.evaluate(False):
        u = sp.Mul(e_p, sp.Pow(total_exp, -1))
        numerator = sp.Add(sp.Mul(total_exp, e_p), sp.Mul(-1, sp.Mul(e_p, e_p)))
        return sp.Mul(sp.Mul(-1, sp.Pow(u, -1)), sp.Mul(numerator, sp.Pow(sp.Pow(total_exp, 2), -1)))


def course_route(classes: Classes, progress: Progress | None = None) -> Route:
    """The course's route for a one-hot label at p: C = −log σ_p, the quotient rule, two cases.

    Its lines are the reference's equations (1)–(4) and the lines between them. The reference
    writes ŷ for the logits when it differentiates (its name for the softmax output a few lines
    earlier); here the logits are z and the softmax output σ.
    """
    b = _Builder("the course's derivation (one-hot label at p)", classes, progress)
    b.standing = (ONE_HOT,)
    total_exp = total(sp.exp(z[m]), m, classes)
    b.start(LOSS, loss(classes), "categorical cross-entropy (the course's C₀; its ŷᵢ is σᵢ)",
            of=loss(classes))
    b.rewrite(-sp.log(sigma[p]), "one-hot label: only class p contributes", INDEX_RANGE,
              tag="(1)")
    b.rewrite(-sp.log(sp.exp(z[p]) / total_exp), "substitute the softmax (2) into (1)",
              tag="(2) in (1)")
    before_cases = b.last
    d_p = ("∂C/∂z_p", r"\frac{\partial C}{\partial z_p}")
    b.differentiate(d_p, -1 / (sp.exp(z[p]) / total_exp)
                    * (total_exp * sp.exp(z[p]) - sp.exp(z[p]) * sp.exp(z[p])) / total_exp**2,
                    z[p], "case k = p: −log u has derivative −u′/u; quotient rule for "
                    "u = e^{z_p}/Σₘ e^{zₘ}, with ∂/∂z_p Σₘ e^{zₘ} = e^{z_p}", K_IS_P,
                    written=_quotient_rule_as_written(total_exp, sp.exp(z[p])))
    b.rewrite(-(total_exp - sp.exp(z[p])) / total_exp, "cancel e^{z_p} and one Σₘ e^{zₘ}")
    case_p = b.rewrite(sp.exp(z[p]) / total_exp - 1, "split the fraction", tag="(3)")
    d_n = ("∂C/∂z_n", r"\frac{\partial C}{\partial z_n}")
    case_n = b.differentiate(
        d_n, -1 / (sp.exp(z[p]) / total_exp)
        * (total_exp * 0 - sp.exp(z[p]) * sp.exp(z[n])) / total_exp**2,
        z[n], "case k = n ≠ p: the numerator e^{z_p} does not depend on zₙ; quotient rule with "
        "∂/∂zₙ Σₘ e^{zₘ} = e^{zₙ}; e^{z_p} cancels", N_NOT_P, of=before_cases, tag="(4)")
    b.cases(GRAD, sigma[k] - sp.KroneckerDelta(k, p),
            "combine the cases (3) and (4): σ_k − δₖₚ",
            [({k: p}, case_p, K_IS_P), ({k: n}, case_n, N_NOT_P)])
    b.standing = ()
    b.rewrite(CLOSED_FORM, "one-hot label: y_k = δₖₚ", ONE_HOT)
    return b.route(CLOSED_FORM)


def hessian_route(classes: Classes, labels: str, progress: Progress | None = None) -> Route:
    """∂²C/∂z_j∂z_k = (Σᵢ yᵢ)(σ_k δ_jk − σ_j σ_k), from the gradient for any labels."""
    b = _Builder("Hessian", classes, progress)
    b.start(GRAD, general_gradient(classes),
            "the gradient for any labels (the log-sum-exp route)", of=loss(classes), wrt=z[k])
    b.rewrite(unfold_softmax(b.last, classes), "definition of the softmax")
    hess = ("∂²C/∂z_j∂z_k", r"\frac{\partial^2 C}{\partial z_j \partial z_k}")
    b.differentiate(hess, partial(b.last, z[j], classes), z[j],
                    "quotient rule on e^{z_k}/Σₘ e^{zₘ}: ∂e^{z_k}/∂z_j = δ_jk e^{z_k}")
    b.rewrite(sift_kronecker_delta(b.last, classes), "sift the Kronecker delta: Σₘ δₘⱼ e^{zₘ} = e^{z_j}",
              INDEX_RANGE)
    b.rewrite(sp.factor_terms(fold_softmax(sp.expand(b.last), classes)),
              "definition of the softmax: e^{z_j}/Σₘ e^{zₘ} = σ_j")
    b.rewrite(sp.expand(labels_sum_to_one(b.last, classes)), _labels_sum_to_one_rule(labels), SUMS_TO_ONE)
    return b.route(hessian_result())


__all__ = ["course_route", "log_sum_exp_route", "jacobian_route", "hessian_route",
           "general_gradient", "hessian_result", "CLOSED_FORM"]
