r"""The gradient of a loss variant, step by step: the reduction, the mask, the weights, label
smoothing, the z-loss term and the chain rule through temperature and soft-capping.

Only the options a :class:`~derivation.Loss` sets appear, each as a symbol (ε, w, λ, cap, T,
m_r, D); with none set the route is the plain log-sum-exp route's. Every line is checked by the
same engine as the plain routes (``_check``): symbolically where the rules reduce the difference
to zero, numerically at 40 digits in every case.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ._assumptions import INDEX_RANGE, ONE_HOT, SUMS_TO_ONE
from ._loss import Loss
from ._loss_symbols import D, R, T, cap, eps, g, lam, mask, w
from ._model import Derivation, Route
from ._routes import _as_printed, _Builder
from ._symbols import Classes, c, i, k, m, sigma, total, y, z

OBJECTIVE = ("L", "L")
GRAD = ("∂L/∂z_k", r"\frac{\partial L}{\partial z_k}")


def _settled(expr: sp.Basic) -> sp.Basic:
    """The expression as ``sympify(str(expr))`` reads it back, read until it no longer changes
    (SymPy may print ``-(1 - ε)·y`` and read back ``(ε − 1)·y``), so that the JSON's ``expr``
    reads back to the very line that was checked."""
    for _ in range(4):
        again = _as_printed(expr)
        if again == expr:
            break
        expr = again
    return expr


class _Settled(_Builder):
    """A builder whose lines are settled first (see :func:`_settled`)."""

    def start(self, lhs, expr, rule, of, wrt=None, tag=""):
        return super().start(lhs, _settled(expr), rule, of, wrt, tag)

    def rewrite(self, expr, rule, *used, tag="", lhs=None):
        return super().rewrite(_settled(expr), rule, *used, tag=tag, lhs=lhs)

    def differentiate(self, lhs, expr, wrt, rule, *used, of=None, tag=""):
        return super().differentiate(lhs, _settled(expr), wrt, rule, *used, of=of, tag=tag)


class Variant:
    """The pieces of one loss variant's expressions, built from which options are set."""

    def __init__(self, loss: Loss, classes: Classes) -> None:
        self.loss, self.classes = loss, classes
        self.smoothing = loss.label_smoothing > 0
        self.weighted = loss.weight is not None
        self.z_loss = loss.z_loss > 0
        self.tempered = loss.temperature != 1.0
        self.capped = loss.softcap is not None
        self.masked = loss.ignore_index is not None
        self.mean = loss.reduction == "mean"

    @property
    def transformed(self) -> bool:
        return self.tempered or self.capped

    def u(self, at: sp.Expr) -> sp.Expr:
        """The logit as the loss sees it: z/T, then cap·tanh(·/cap)."""
        value = z[at] / T if self.tempered else z[at]
        return cap * sp.tanh(value / cap) if self.capped else value

    def du(self, at: sp.Expr) -> sp.Expr:
        r""":math:`\partial u_{at}/\partial z_{at}`: 1/T, times 1 − tanh² when capped."""
        slope = 1 / T if self.tempered else sp.Integer(1)
        if self.capped:
            inner = z[at] / T if self.tempered else z[at]
            slope = slope * (1 - sp.tanh(inner / cap) ** 2)
        return slope

    def weight(self, at: sp.Expr) -> sp.Expr:
        return w[at] if self.weighted else sp.Integer(1)

    def q(self, at: sp.Expr) -> sp.Expr:
        """The smoothed target (1 − ε)·y + ε/c."""
        return (1 - eps) * y[at] + eps / self.classes if self.smoothing else y[at]

    def exp_sum(self) -> sp.Expr:
        return total(sp.exp(self.u(m)), m, self.classes)

    def lse(self) -> sp.Expr:
        return sp.log(self.exp_sum())

    def softmax(self, at: sp.Expr) -> sp.Expr:
        """The softmax of the transformed logits; σ itself when nothing transforms them."""
        return sigma[at] if not self.transformed else sp.exp(self.u(at)) / self.exp_sum()

    def scale(self) -> sp.Expr:
        """g·m_r/D: what the reduction and the mask multiply the row's gradient by."""
        return g * (mask if self.masked else 1) / (D if self.mean else 1)

    def weighted_target_sum(self) -> sp.Expr:
        return total(self.weight(i) * self.q(i), i, self.classes)

    def reduction_text(self) -> str:
        loss = self.loss
        if loss.reduction == "mean":
            over = ("D = Σ_r m_r w_{t_r} (PyTorch's weighted mean)" if loss.targets == "indices"
                    else "D = the number of rows")
            return f"mean over the batch: L = g·(Σ_r m_r ℓ_r)/D with {over}"
        if loss.reduction == "none":
            return "no reduction: the upstream gradient has one value per row, g = g_r"
        return "sum over the batch: L = g·Σ_r m_r ℓ_r"


def row_loss(v: Variant) -> sp.Expr:
    r""":math:`\ell = -\sum_i w_i q_i \log \mathrm{softmax}(u)_i + \lambda\,\mathrm{lse}^2`."""
    log_p = sp.log(sp.exp(v.u(i)) / v.exp_sum())
    out = -total(v.weight(i) * v.q(i) * log_p, i, v.classes)
    return out + lam * v.lse() ** 2 if v.z_loss else out


def _terms(v: Variant) -> list[tuple[str, str]]:
    """Which term each option adds to σ − y."""
    out = [("plain", "σ_k − y_k: the gradient of −Σᵢ yᵢ log σᵢ")]
    if v.smoothing:
        out.append(("label_smoothing", "the target becomes (1 − ε)·y_k + ε/c"))
    if v.weighted:
        out.append(("weight", "the target is weighted, w_k·q_k, and σ_k is multiplied by "
                              "Σᵢ wᵢqᵢ (no longer 1)"))
    if v.z_loss:
        out.append(("z_loss", "adds 2λ·lse·σ_k"))
    if v.tempered:
        out.append(("temperature", "the softmax is of z/T and the gradient is multiplied by 1/T"))
    if v.capped:
        out.append(("softcap", "the softmax is of cap·tanh(u/cap) and the gradient is "
                               "multiplied by 1 − tanh²(u/cap)"))
    if v.masked:
        out.append(("ignore_index", "multiplies the row's gradient by its mask m_r"))
    if v.mean:
        out.append(("reduction", "mean divides by D"))
    out.append(("grad_output", "multiplies by the upstream gradient g"))
    return out


def terms(loss: Loss) -> tuple[tuple[str, str], ...]:
    """(option, what it adds to σ − y) for each option the loss sets."""
    return tuple(_terms(Variant(loss, c)))


def variant_route(loss: Loss, classes: Classes, step: Callable[[], None] | None = None) -> Route:
    """The variant's gradient: reduction and mask, log of a quotient, linearity, the chain rule
    (through T, the cap and the z-loss term), sift the delta, and targets that sum to one."""
    v = Variant(loss, classes)
    b = _Settled("loss variant: chain rule through the transformed logits", classes, step)
    scale = v.scale()
    ell = row_loss(v)
    b.start(OBJECTIVE, scale * ell + g * R,
            f"the objective for row r: {v.reduction_text()}"
            + ("; the mask m_r is 0 for an ignored row" if v.masked else "")
            + "; R, the other rows' part, does not depend on this row's logits",
            of=scale * ell + g * R)
    lse = v.lse()
    body = -total(v.weight(i) * v.q(i) * (v.u(i) - lse), i, classes)
    z_term = lam * lse ** 2 if v.z_loss else 0
    b.rewrite(scale * (body + z_term) + g * R,
              "log of a quotient: log(e^{uᵢ}/Σₘ e^{uₘ}) = uᵢ − log Σₘ e^{uₘ}")
    spread = (-total(v.weight(i) * v.q(i) * v.u(i), i, classes)
              + lse * v.weighted_target_sum() + z_term)
    b.rewrite(scale * spread + g * R,
              "linearity of the sum: log Σₘ e^{uₘ} does not depend on i, so it leaves the sum")
    soft = sp.exp(v.u(k)) / v.exp_sum()
    chain = ["∂zᵢ/∂z_k = δᵢₖ", "∂ log Σₘ e^{uₘ}/∂z_k = e^{u_k}/Σₘ e^{uₘ} · ∂u_k/∂z_k"]
    if v.tempered:
        chain.append("through the temperature ∂(z/T)/∂z = 1/T")
    if v.capped:
        chain.append("through the soft-cap ∂(cap·tanh(x/cap))/∂x = 1 − tanh²(x/cap)")
    if v.z_loss:
        chain.append("the z-loss term ∂(λ·lse²)/∂z_k = 2λ·lse·∂lse/∂z_k")
    grad_lse = soft * v.du(k)
    derived = (-total(v.weight(i) * v.q(i) * sp.KroneckerDelta(i, k) * v.du(i), i, classes)
               + v.weighted_target_sum() * grad_lse
               + (2 * lam * lse * grad_lse if v.z_loss else 0))
    b.differentiate(GRAD, scale * derived, z[k],
                    "differentiate by the row's logit z_k, the chain rule: " + "; ".join(chain)
                    + "; g, R and D do not depend on it")
    b.rewrite(scale * (-v.weight(k) * v.q(k) * v.du(k) + v.weighted_target_sum() * grad_lse
                       + (2 * lam * lse * grad_lse if v.z_loss else 0)),
              "sift the Kronecker delta: Σᵢ δᵢₖ fᵢ = f_k", INDEX_RANGE)
    z_part = 2 * lam * lse if v.z_loss else 0
    named = v.softmax(k)
    b.rewrite(scale * v.du(k) * (named * (v.weighted_target_sum() + z_part)
                                 - v.weight(k) * v.q(k)),
              "collect ∂u_k/∂z_k" + ("" if v.transformed else "; definition of the softmax: "
                                     "e^{z_k}/Σₘ e^{zₘ} = σ_k"))
    if not v.smoothing:
        target_sum = total(v.weight(i) * y[i], i, classes)
    elif v.weighted:
        target_sum = ((1 - eps) * total(w[i] * y[i], i, classes)
                      + eps / classes * total(w[i], i, classes))
    else:
        target_sum = (1 - eps) * total(y[i], i, classes) + eps
    if v.smoothing:
        b.rewrite(scale * v.du(k) * (named * (target_sum + z_part) - v.weight(k) * v.q(k)),
                  "linearity of the sum: Σᵢ wᵢqᵢ = (1 − ε)Σᵢ wᵢyᵢ + (ε/c)Σᵢ wᵢ"
                  if v.weighted else "linearity of the sum: Σᵢ qᵢ = (1 − ε)Σᵢ yᵢ + ε")
    if v.weighted:  # Σᵢ wᵢqᵢ is not 1 whatever the targets: this is the closed form
        return b.route(b.last)
    onehot = loss.targets == "indices"
    one = (1 - eps) + eps if v.smoothing else sp.Integer(1)
    b.rewrite(scale * v.du(k) * (named * (sp.expand(one) + z_part) - v.q(k)),
              ("one-hot target (an index): Σᵢ yᵢ = 1" if onehot
               else "targets sum to one: Σᵢ yᵢ = 1") + ", so Σᵢ qᵢ = 1",
              ONE_HOT if onehot else SUMS_TO_ONE)
    return b.route(b.last)




def variant_derivation(classes: int | None, labels: str, loss: Loss,
                       progress: Callable[[int, int], None] | None = None) -> Derivation:
    """The :class:`Derivation` of a loss variant: one route, no Hessian. ``progress`` is called
    as ``progress(done, total)`` after each step is checked."""
    v = Variant(loss, c)
    total, done = 6 + v.smoothing + (not v.weighted), [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total)

    route = variant_route(loss, c if classes is None else classes, step)
    return Derivation(classes, labels, (route,), None, route.result, loss)


__all__ = ["variant_route", "variant_derivation", "terms", "row_loss", "Variant", "GRAD",
           "OBJECTIVE"]
