r"""Softmax cross-entropy over a large vocabulary, forward and backward, as fused kernels compute it.

Logits ``[..., V]`` are read as rows ``[N, V]`` and never materialised in float32 whole: the
vocabulary is visited in chunks of :data:`CHUNK` columns, each chunk upcast to float32 (bfloat16
and float16 logits; float64 stays float64), used and dropped.

Forward, one pass: per row, a running maximum m and a running sum s of exp(z - m) — the online
log-sum-exp, rescaling s by exp(m_old - m_new) whenever the maximum grows —, the target's logit
and the sum of the logits; then lse = m + log s and, with label smoothing ε over V classes,

    loss_r = lse_r - (1 - ε) z_{r, t_r} - (ε / V) Σ_k z_{r, k}     (0 where t_r == ignore_index).

Backward, a second pass over the same chunks writes each chunk of the gradient,

    ∂loss/∂z_{r, k} = g_r (exp(z_{r, k} - lse_r) - ε / V - (1 - ε) [k == t_r]),

where g_r is the upstream gradient (divided by the number of rows counted, for "mean"), and 0 on
ignored rows. Together this is PyTorch's ``F.cross_entropy(z, t, ignore_index=...,
label_smoothing=ε, reduction=...)`` for logits ``[..., V]`` and index targets ``[...]``.

:func:`grad_logits` is the kernel a check calls, ``(logits, targets, grad_output) ->
grad_logits``, at the constants below; ``tests/test_kernels_examples.py`` holds it to autograd of
``F.cross_entropy``, and to ``verify`` itself::

    import verify
    from chunked_ce import grad_logits  # from examples/kernels

    loss = verify.Loss(label_smoothing=0.1, ignore_index=-100, reduction="mean",
                       targets="indices")
    verify.assert_gradient(grad_logits, framework="torch", loss=loss, classes=(10, 1000))
"""

from __future__ import annotations

import torch

CHUNK = 4096
"""Vocabulary columns per chunk."""

LABEL_SMOOTHING = 0.1
IGNORE_INDEX = -100
REDUCTION = "mean"


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def row_statistics(
    z: torch.Tensor, t: torch.Tensor, chunk: int = CHUNK
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``z`` ``[N, V]``: the log-sum-exp, the target's logit and the logits' sum,
    in one pass over vocabulary chunks (the accumulator dtype)."""
    rows, vocab = z.shape
    acc = _accumulator(z.dtype)
    m = torch.full((rows,), -torch.inf, dtype=acc, device=z.device)
    s = torch.zeros(rows, dtype=acc, device=z.device)
    target = torch.zeros(rows, dtype=acc, device=z.device)
    total = torch.zeros(rows, dtype=acc, device=z.device)
    for start in range(0, vocab, chunk):
        x = z[:, start : start + chunk].to(acc)
        width = x.shape[1]
        m_new = torch.maximum(m, x.amax(dim=1))
        s = s * torch.exp(m - m_new) + torch.exp(x - m_new[:, None]).sum(dim=1)
        m = m_new
        total += x.sum(dim=1)
        inside = (t >= start) & (t < start + width)
        local = (t - start).clamp(0, width - 1)
        target += torch.where(inside, x.gather(1, local[:, None])[:, 0], 0.0)
    return m + torch.log(s), target, total


def forward(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    label_smoothing: float = LABEL_SMOOTHING,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = REDUCTION,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """The loss, in the logits' dtype: a scalar, or ``targets``-shaped for ``"none"``."""
    z, t = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    eps, vocab = label_smoothing, z.shape[1]
    lse, target, total = row_statistics(z, t, chunk)
    keep = t != ignore_index
    losses = torch.where(keep, lse - (1 - eps) * target - eps / vocab * total, 0.0)
    if reduction == "none":
        return losses.reshape(targets.shape).to(logits.dtype)
    if reduction == "sum":
        return losses.sum().to(logits.dtype)
    return (losses.sum() / keep.sum()).to(logits.dtype)


def backward(
    logits: torch.Tensor,
    targets: torch.Tensor,
    grad_output: torch.Tensor,
    *,
    label_smoothing: float = LABEL_SMOOTHING,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = REDUCTION,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """The gradient of :func:`forward` with respect to the logits, times ``grad_output``."""
    z, t = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    eps, vocab = label_smoothing, z.shape[1]
    acc = _accumulator(z.dtype)
    lse, _, _ = row_statistics(z, t, chunk)
    keep = t != ignore_index
    g = grad_output.to(acc)
    if reduction == "none":
        g = g.reshape(-1)
    elif reduction == "mean":
        g = g / keep.sum()
    scale = torch.where(keep, g, 0.0)
    grad = torch.empty_like(z)
    for start in range(0, vocab, chunk):
        x = z[:, start : start + chunk].to(acc)
        columns = torch.arange(start, start + x.shape[1], device=z.device)
        is_target = (columns[None, :] == t[:, None]).to(acc)
        p = torch.exp(x - lse[:, None]) - eps / vocab - (1 - eps) * is_target
        grad[:, start : start + chunk] = (scale[:, None] * p).to(z.dtype)
    return grad.reshape(logits.shape)


def grad_logits(
    logits: torch.Tensor, targets: torch.Tensor, grad_output: torch.Tensor
) -> torch.Tensor:
    """The kernel ``verify`` checks: :func:`backward` at the module's constants."""
    return backward(logits, targets, grad_output)


class ChunkedCrossEntropy(torch.autograd.Function):
    """:func:`forward` and :func:`backward` as one autograd operation."""

    @staticmethod
    def forward(ctx, logits, targets, label_smoothing, ignore_index, reduction):  # noqa: D102
        ctx.save_for_backward(logits, targets)
        ctx.options = {"label_smoothing": label_smoothing, "ignore_index": ignore_index,
                       "reduction": reduction}  # fmt: skip
        return forward(logits, targets, **ctx.options)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        logits, targets = ctx.saved_tensors
        return backward(logits, targets, grad_output, **ctx.options), None, None, None, None


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    label_smoothing: float = LABEL_SMOOTHING,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = REDUCTION,
) -> torch.Tensor:
    """``F.cross_entropy`` for logits ``[..., V]``, computed chunk by chunk."""
    return ChunkedCrossEntropy.apply(logits, targets, label_smoothing, ignore_index, reduction)
