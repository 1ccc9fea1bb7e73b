"""A small variant batch's reference program is compiled with XLA's backend optimisation off,
a large one with XLA's default (``verify._variant_cells.FAST_COMPILE_ELEMENTS``); both judge
alike. What each costs is measured by ``benchmarks/bench_variant_compile.py``."""

from pathlib import Path

import pytest

import verify
from derivation import Loss
from verify import _opinions, _variant_cells

README = (Path(__file__).parent.parent / "README.md").read_text()
LOSS = Loss(label_smoothing=0.1, ignore_index=0, reduction="mean", targets="indices")
GRID = {"loss": LOSS, "classes": [5], "dtypes": ["float64", "float32"], "samples": 8,
        "scales": [1.0, 1e4]}


def _check(gate: int) -> verify.Report:
    before = _variant_cells.FAST_COMPILE_ELEMENTS
    _variant_cells.FAST_COMPILE_ELEMENTS = gate
    try:
        return verify.check(**GRID)
    finally:
        _variant_cells.FAST_COMPILE_ELEMENTS = before


def _programs(fast: bool) -> int:
    """The reference programs of this kind the process holds (one per loss, dtypes, shape)."""
    kind = _variant_cells._REFERENCE_KINDS[fast]
    return sum(1 for key in _opinions.PROGRAMS._futures if key[0] == kind)


def test_the_threshold_picks_the_program_by_the_batch_size():
    assert _opinions._JITTED[_variant_cells._REFERENCE_KINDS[True]] is not _opinions._JITTED[
        _variant_cells._REFERENCE_KINDS[False]]
    sizes = (_programs(True), _programs(False))
    _check(_variant_cells.FAST_COMPILE_ELEMENTS)  # 2 dtypes × 12 rows × 5: small
    assert (_programs(True), _programs(False)) == (sizes[0] + 1, sizes[1])
    _check(-1)  # every batch counted large
    assert (_programs(True), _programs(False)) == (sizes[0] + 1, sizes[1] + 1)


def test_both_compilations_judge_alike():
    """The same verdicts, agreement and checked rows; the figures equal to rounding (the two
    compilations may round the float64 reference differently in the last bits)."""
    fast, default = _check(_variant_cells.FAST_COMPILE_ELEMENTS), _check(-1)
    assert len(fast.cells) == len(default.cells) == 2 * 2 * 3 * 2
    for a, b in zip(fast.cells, default.cells, strict=True):
        assert (a.verdict, a.agree_fraction, a.within_tolerance) == (
            b.verdict, b.agree_fraction, b.within_tolerance)
        assert (a.autograd_check is None) == (b.autograd_check is None)
        if a.autograd_check is not None:
            assert a.autograd_check.rows == b.autograd_check.rows
            assert a.autograd_check.ok == b.autograd_check.ok
        for field in ("max_abs_err", "label_sum_miss"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None)
            if x is not None:
                assert x == pytest.approx(y, rel=1e-3, abs=1e-15), field
    assert {c.verdict for c in fast.cells} >= {"agree"}


def test_the_readme_states_the_threshold():
    assert _variant_cells.FAST_COMPILE_ELEMENTS == 2**15
    assert "at most 2<sup>15</sup> logits in each dtype" in README


def test_a_cell_alone_gets_the_program_and_the_bits_it_got_in_its_grid():
    """The program is chosen by a dtype's rows × classes, not by the whole batch over the
    dtypes: a cell recomputed alone (its reproduce line names one dtype) is the same, bit for
    bit. With the gate at one dtype's batch, the grid's two dtypes would have crossed it."""
    rows = GRID["samples"] + 4
    grid = _check(rows * GRID["classes"][0])
    for dtype in GRID["dtypes"]:
        before = _variant_cells.FAST_COMPILE_ELEMENTS
        _variant_cells.FAST_COMPILE_ELEMENTS = rows * GRID["classes"][0]
        try:
            alone = verify.check(**{**GRID, "dtypes": [dtype]})
        finally:
            _variant_cells.FAST_COMPILE_ELEMENTS = before
        assert [c for c in grid.cells if c.dtype == dtype] == list(alone.cells), dtype
