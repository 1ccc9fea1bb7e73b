"""``derive``: the public entry point, with its arguments checked."""

from __future__ import annotations

import numbers
from collections.abc import Callable

from ._loss import Loss
from ._model import Derivation
from ._routes import (CLOSED_FORM, STEPS, course_route, hessian_route, jacobian_route,
                      log_sum_exp_route)
from ._symbols import c

LABELS = ("onehot", "soft")
"""Kinds of label a derivation is for: a one-hot vector, or any probability vector."""


def validate_classes(classes: object) -> int | None:
    """``None`` or an integer ≥ 1; anything else is a ``ValueError`` naming the value."""
    if classes is None:
        return None
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise ValueError(f"classes: expected an integer >= 1 (or None for any number of classes),"
                         f" got {classes!r}")
    return int(classes)


def validate_labels(labels: object) -> str:
    if labels not in LABELS:
        import difflib

        close = difflib.get_close_matches(str(labels), LABELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"labels: unknown label kind {labels!r}{hint} (accepted: "
                         f"{', '.join(LABELS)})")
    return str(labels)


MAX_CLASSES = 1024
"""The most classes a derivation written out class by class is asked for (1,024 takes about 2
minutes, growing about as c^2.4); the CLI refuses the same (``verify._limits``)."""


def check_request(size: int | None, kind: str, loss: Loss | None) -> None:
    """Refuses what :func:`derive` cannot honour: more classes than :data:`MAX_CLASSES`, class
    weights for another number of classes, soft labels with index targets.

    Raises:
        ValueError: ``classes: ...``, ``weight: ...`` or ``labels: ...``.
    """
    if size is not None and size > MAX_CLASSES:
        raise ValueError(f"classes: {size:,} is above {MAX_CLASSES:,}, the most a derivation "
                         "written out class by class finishes in minutes; leave classes out (a "
                         "symbolic number of classes c, which covers every c)")
    if loss is None:
        return
    if size is not None and loss.weight is not None and len(loss.weight) != size:
        raise ValueError(f"weight: {len(loss.weight)} weights given, but the derivation has "
                         f"{size} classes (give one weight per class)")
    if loss.targets == "indices" and kind != "onehot":
        raise ValueError(f"labels: {kind} is not used with index targets, which are one class "
                         "a row (onehot); leave labels at onehot, or derive probability targets")


def derive(classes: int | None = None, labels: str = "onehot", loss: Loss | None = None, *,
           progress: Callable[[int, int], None] | None = None) -> Derivation:
    r"""Derive :math:`\partial C/\partial z_k` for :math:`C = -\sum_i y_i \log \sigma(z)_i`.

    Every route ends at :math:`\sigma_k - y_k`; every step is checked against the line before
    it, symbolically where the named rules reduce the difference to zero and numerically at
    random points in 40-digit precision in every case.

    Args:
        classes: the number of classes, or ``None`` for any number c (a symbol; the numeric
            checks instantiate c = 2, 3 and 7).
        labels: ``"onehot"`` (adds the course's route, a one-hot label at class p) or
            ``"soft"`` (any labels that sum to one).
        loss: a loss variant (:class:`Loss`); ``None`` or ``Loss()`` is the plain loss. A
            variant is derived by its own route (``_loss_routes``), with symbolic ε, w, λ,
            cap, T, mask and denominator for the options it sets.
        progress: called as ``progress(done, total)`` after each step is checked.

    Returns:
        A frozen :class:`Derivation`; ``holds`` is true when every route and the Hessian hold.

    Raises:
        ValueError: ``classes`` is not a positive integer (or above :data:`MAX_CLASSES`),
            ``labels`` is unknown or ``loss`` is not a :class:`Loss` (or asks for what
            :func:`check_request` refuses).

    Example:
        >>> import derivation
        >>> d = derivation.derive(classes=3)
        >>> d.holds, str(d.result)
        (True, 'sigma[k] - y[k]')
    """
    size = validate_classes(classes)
    kind = validate_labels(labels)
    n = c if size is None else size
    if loss is not None and not isinstance(loss, Loss):
        raise ValueError(f"loss: expected a derivation.Loss or None, got {loss!r}")
    check_request(size, kind, loss)
    if loss is not None and not loss.is_plain:
        from ._loss_routes import variant_derivation

        return variant_derivation(size, kind, loss, progress)
    names = ("course",) * (kind == "onehot") + ("log-sum-exp", "jacobian", "hessian")
    total, done = sum(STEPS[name] for name in names), [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total)

    routes = (course_route(n, step),) if kind == "onehot" else ()
    routes += (log_sum_exp_route(n, kind, step), jacobian_route(n, kind, step))
    return Derivation(size, kind, routes, hessian_route(n, kind, step), CLOSED_FORM)
