"""The loss flags of ``derive`` and ``verify``, read into a :class:`derivation.Loss`.

Nothing here imports JAX, nor SymPy before a flag is read. A bad value is a ``ValueError``
whose text starts with the flag's name (``label-smoothing: ...``); the CLI prints it as
``error: --label-smoothing: ...``.
"""

from __future__ import annotations

import math
from typing import Annotated, Optional

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # derivation imports SymPy: --help must not
    from derivation._loss import Loss

FLAGS = {"label_smoothing": "label-smoothing", "weight": "weight", "ignore_index": "ignore-index",
         "reduction": "reduction", "z_loss": "z-loss", "softcap": "softcap",
         "temperature": "temperature", "targets": "targets"}
"""Loss field → CLI flag (without the dashes)."""

_PANEL = "Loss variant"
LabelSmoothing = Annotated[Optional[str], typer.Option(  # noqa: UP007 - typer needs Optional
    "--label-smoothing", rich_help_panel=_PANEL, help="ε in [0, 1]: targets (1 − ε)·t + ε/c.")]
Weight = Annotated[Optional[str], typer.Option(  # noqa: UP007
    "--weight", rich_help_panel=_PANEL, help="Class weights W1,W2,…: one positive number per "
                                             "class.")]
IgnoreIndex = Annotated[Optional[str], typer.Option(  # noqa: UP007
    "--ignore-index", rich_help_panel=_PANEL, help="Rows whose index target is I are masked out "
                                                   "(with --targets indices).")]
Reduction = Annotated[Optional[str], typer.Option(  # noqa: UP007
    "--reduction", rich_help_panel=_PANEL, help="mean, sum (default) or none.")]
ZLoss = Annotated[Optional[str], typer.Option(  # noqa: UP007
    "--z-loss", rich_help_panel=_PANEL, help="λ ≥ 0: adds λ·lse² per row.")]
Softcap = Annotated[Optional[str], typer.Option(  # noqa: UP007
    "--softcap", rich_help_panel=_PANEL, help="cap > 0: logits become cap·tanh(u/cap).")]
Temperature = Annotated[Optional[str], typer.Option(  # noqa: UP007
    "--temperature", rich_help_panel=_PANEL, help="T > 0: logits are divided by T first.")]
Targets = Annotated[Optional[str], typer.Option(  # noqa: UP007
    "--targets", rich_help_panel=_PANEL, help="indices or probabilities (default).")]


def _number(flag: str, text: str, accepted: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{flag}: expected {accepted}, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{flag}: expected {accepted}, got {text!r}")
    return value


def _integer(flag: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{flag}: expected an integer, got {text!r}") from None


def parse_loss(label_smoothing: str | None = None, weight: str | None = None,
               ignore_index: str | None = None, reduction: str | None = None,
               z_loss: str | None = None, softcap: str | None = None,
               temperature: str | None = None, targets: str | None = None) -> Loss:
    """The :class:`Loss` the flags give (``Loss()`` when none is given).

    Raises:
        ValueError: ``"<flag>: ..."`` naming the bad value and what is accepted.
    """
    from derivation._loss import Loss

    fields: dict[str, object] = {}
    if label_smoothing is not None:
        fields["label_smoothing"] = _number("label-smoothing", label_smoothing,
                                            "a number in [0, 1]")
    if weight is not None:
        fields["weight"] = tuple(_number("weight", part, "positive numbers separated by commas")
                                 for part in weight.split(","))
    if ignore_index is not None:
        fields["ignore_index"] = _integer("ignore-index", ignore_index)
    if reduction is not None:
        fields["reduction"] = reduction
    if z_loss is not None:
        fields["z_loss"] = _number("z-loss", z_loss, "a finite number >= 0")
    if softcap is not None:
        fields["softcap"] = _number("softcap", softcap, "a finite number > 0")
    if temperature is not None:
        fields["temperature"] = _number("temperature", temperature, "a finite number > 0")
    if targets is not None:
        fields["targets"] = targets
    try:
        return Loss(**fields)  # type: ignore[arg-type]
    except ValueError as error:
        text = str(error)
        for field, flag in FLAGS.items():
            text = text.replace(f"{field}:", f"{flag}:", 1) if text.startswith(field) else text
        text = text.replace("set targets='indices'", "add --targets indices")
        raise ValueError(text) from None


__all__ = ["parse_loss", "check_labels", "FLAGS", "LabelSmoothing", "Weight", "IgnoreIndex",
           "Reduction", "ZLoss", "Softcap", "Temperature", "Targets"]


def check_labels(loss: Loss, labels: tuple[str, ...]) -> None:
    """Refuses label kinds other than the default with index targets: their cells are the
    targets' own kinds (none, a quarter, every row ignored), so ``labels`` would be silently
    ignored.

    Raises:
        ValueError: ``labels: ...``.
    """
    from ._options import LABEL_KINDS

    if loss.targets == "indices" and tuple(labels) != LABEL_KINDS:
        raise ValueError(
            f"labels: {','.join(labels)} is not used with index targets, whose cells are kinds "
            "of their own (indices, ignored, all-ignored); leave labels at its default, or check "
            "probability targets")
