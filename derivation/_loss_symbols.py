"""The symbols the loss variants add: ε, w, λ, cap, T, the mask, the upstream gradient, the
mean's denominator and the rest of the batch (SymPy only; no other module of the package)."""

from __future__ import annotations

import sympy as sp

eps = sp.Symbol("varepsilon", nonnegative=True)
"""Label smoothing ε: the targets become (1 − ε)·yᵢ + ε/c."""
w = sp.IndexedBase("w", positive=True)
"""Class weights w_i, indexed 1..c."""
lam = sp.Symbol("lamda", nonnegative=True)
"""The z-loss coefficient λ (SymPy spells it ``lamda`` and prints λ)."""
cap = sp.Symbol("cap", positive=True)
"""The soft-capping bound: u ↦ cap·tanh(u/cap)."""
T = sp.Symbol("T", positive=True)
"""The temperature: u = z/T."""
mask = sp.Symbol("m_r", nonnegative=True)
"""The row's mask m_r (0 when its index target is ``ignore_index``, else 1)."""
g = sp.Symbol("g", real=True)
"""The upstream gradient (grad_output) for the row's reduced loss."""
D = sp.Symbol("D", positive=True)
"""What ``mean`` divides by: Σ_r m_r w_{t_r} (index targets) or the number of rows."""
R = sp.Symbol("R", real=True)
"""The other rows' part of the reduced loss: it does not depend on this row's logits."""

SYMBOLS: dict[str, sp.Basic] = {"varepsilon": eps, "w": w, "lamda": lam, "cap": cap, "T": T,
                                "m_r": mask, "g": g, "D": D, "R": R}
"""Name → symbol, for ``sympify`` (``derivation.symbols()`` includes these)."""
LATEX_NAMES = {cap: r"\mathrm{cap}"}
"""How the renderings spell symbols whose SymPy name reads badly in LaTeX."""
