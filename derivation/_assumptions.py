"""Assumptions a step may use: what they say in words, and how each check applies them.

A symbolic check rewrites both sides with :attr:`Assumption.rewrite`; a numeric check draws its
points so that they hold (see ``_numeric``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ._rules import labels_sum_to_one, one_hot
from ._symbols import Classes, k, n, p


@dataclass(frozen=True, slots=True)
class Assumption:
    key: str
    text: str
    rewrite: Callable[[sp.Basic, Classes], sp.Basic]
    """How a symbolic check applies it: ``rewrite(expression, classes)``."""
    condition: sp.Basic | None = None
    """A relation the numeric points must satisfy (points where it is false are left out)."""
    normalises: sp.IndexedBase | None = None
    """A vector whose entries are drawn positive and summing to one."""


def _same(expr: sp.Basic, classes: Classes) -> sp.Basic:
    return expr


INDEX_RANGE = Assumption("index-range", "1 ≤ k ≤ c (k names one of the c classes)", _same)
SUMS_TO_ONE = Assumption("sums-to-one", "the labels sum to one: Σᵢ yᵢ = 1", labels_sum_to_one)
ONE_HOT = Assumption("one-hot", "one-hot label at class p: y_p = 1, yᵢ = 0 for i ≠ p", one_hot)
K_IS_P = Assumption("k-is-p", "case k = p (the labelled class)",
                    lambda e, classes: e.xreplace({k: p}))
N_NOT_P = Assumption(
    "n-not-p",
    "case n ≠ p (a class other than the labelled one)",
    lambda e, classes: e.replace(
        lambda x: isinstance(x, sp.KroneckerDelta) and set(x.args) == {n, p}, lambda x: 0
    ),
)
