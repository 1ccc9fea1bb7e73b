"""A corpus of small derivations written as course notes, Q&A answers and textbooks write them,
each correct or with one realistic slip: the verdict of each, and the step that fails.

Each document is in tests/data/corpus/; ``EXPECTED`` gives, for each, ``None`` (every step
holds), the index of the first step that does not hold, which must be a failure (never
unchecked: a slip is to be found, not missed) with a real counterexample, or (index,
"unchecked") for notation the checker says it does not check.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import derivation

CORPUS = Path(__file__).parent / "data" / "corpus"

EXPECTED: dict[str, int | tuple[int, str] | None] = {
    "c01_ce_grad_z": None,
    "c02_ce_grad_dropped_minus": 1,
    "c03_lse": None,
    "c04_lse_wrong_sign": 1,
    "c05_sigmoid_deriv": None,
    "c06_sigmoid_deriv_wrong": 2,
    "c07_bce": None,
    "c08_bce_dsigma_vs_dz": 1,
    "c09_chain_x2": None,
    "c10_chain_x2_missing_factor": 1,
    "c11_product": None,
    "c12_quotient_wrong": 2,
    "c13_jacobian_cases": None,
    "c14_jacobian_wrong_case": 1,
    "c15_wrong_index": 3,
    "c16_jacobian_route": None,
    "c17_log_of_product": None,
    "c18_log_rule_wrong": 1,
    "c19_sum_one_hot": None,
    "c20_softmax_shift": None,
    "c21_softmax_shift_wrong": 1,
    "c22_temperature": None,
    "c23_temperature_missing": 1,
    "c24_log_softmax_grad": None,
    "c25_sigmoid_bce_logit": None,
    "c26_dsigma_ds": 1,
    "c27_x_squared_deriv": None,
    "c28_sqrt": None,
    "c29_sqrt_wrong": 1,
    "c30_log_neg_domain": None,
    "c31_dL_dp_defined": None,
    "c32_dL_dyhat_zero": 1,
    "c33_log_square": 1,
    "c34_sqrt_square": 1,
    "c35_onehot_wrong_general": 1,
    "c36_logit_ratio": None,
    "c37_sum_j_no_limits_wrong": 2,
    "c38_times_notation": None,
    "c39_jacobian_diag_wrong": 1,
    "c40_product_rule_operator": None,
    "c41_product_rule_forgotten_term": 1,
    "c42_softmax_operatorname": None,
    "c43_softmax_sigma_bold_wrong": 1,
    "c44_chain_rule_through_p": None,
    "c45_chain_rule_through_p_wrong_index": 2,
    "c46_lse_grad_wrong_label_index": 2,
    "c47_where_clause_definition": None,
    "c48_where_clause_wrong_sign": 1,
    "c49_vector_notation_gradient": (1, "unchecked"),
    "c50_mean_missing_one_over_n": 1,
    "c51_sum_over_other_classes": None,
    "c52_derivative_restated": None,
    "c53_derivative_restated_wrong_sign": 1,
    "c54_sum_over_other_classes_wrong_index": 1,
    "c55_jacobian_cases_environment": None,
    "c56_jacobian_cases_swapped": 1,
    "c57_cases_condition_in_words": (1, "unchecked"),
    "c58_softmax_notation_defined_sharpened_wrong": 1,
    "c59_softmax_notation_with_temperature": 1,  # σ(z)_i is the softmax: the text is told
    "c60_given_in_a_code_block_wrong": 1,
    "c61_second_claim_after_quad_wrong": 2,
    "c62_given_in_an_indented_code_block_wrong": 1,
    "c63_sums_with_numbers_for_bounds": None,
    "c64_conditions_in_words_after_the_equation": 3,
    "c65_hat_and_widehat_are_one_name": None,
    "c66_indicator_notation_wrong_sign": 1,
    "c67_sum_from_one_but_k": 4,
    "c68_sum_to_a_number_is_not_every_c_wrong": 1,
    "c69_definition_under_a_condition": (1, "unchecked"),
    "c70_condition_with_words_in_it": (1, "unchecked"),
    "c71_softmax_notation_miswritten_wrong": 1,
    "c72_logistic_function_and_its_entries": None,
    "c73_definition_for_every_index_in_range": None,
    "c74_indicator_of_a_real_number": (1, "unchecked"),
    "c75_softmax_notation_defined_for_two_vectors": None,
    "c76_derivative_claimed_zero_wrong": 1,
    "c77_derivative_of_a_sum_without_its_index": None,
    "c78_align_left_side_alone_wrong": 1,  # the &= line was compared with the prose's g_k
    "c79_align_left_side_alone": None,
    "c80_right_side_continued_wrong": 1,  # the "+ …" line was dropped
    "c81_right_side_continued": None,
    "c82_concrete_class_index_wrong": 1,  # ∂/∂z_42 was tried at c ≤ 12 alone
    "c83_thin_spaces_nonumber_and_colon_equals": None,
    "c84_where_in_words_after_the_equation": None,
    "c85_unless_in_words": (1, "unchecked"),  # "unless i = j" was read as a step "= j"
    "c86_vector_defined_as_the_softmax": None,  # p = softmax(z) was an opaque number
    "c87_vector_defined_as_the_softmax_wrong": 1,
    "c88_named_functions_in_several_letters": None,  # \operatorname{lse} was l·s·e(x)
}


@functools.lru_cache(maxsize=None)
def _checked(name: str) -> derivation.TextCheck:
    """Each document checked once for all the tests here (the check is deterministic)."""
    return derivation.check_text((CORPUS / f"{name}.md").read_text(), source=name)


def test_every_document_has_an_expectation() -> None:
    assert sorted(p.stem for p in CORPUS.glob("*.md")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_verdict(name: str) -> None:
    checked = _checked(name)
    failing = EXPECTED[name]
    if failing is None:
        assert checked.holds, checked.to_text()
        return
    first = checked.first_failure
    expected = failing if isinstance(failing, tuple) else (failing, "fails")
    assert first is not None and (first.index, first.status) == expected, checked.to_text()
    if first.status == "fails":  # values at a real point, never a complex one
        assert first.counterexample, checked.to_text()
        assert all(isinstance(v, (int, float)) for v in first.counterexample.values()), \
            checked.to_text()


@pytest.mark.parametrize("name, holds_if", [
    ("c15_wrong_index", ("i = j",)),
    ("c46_lse_grad_wrong_label_index", ("i = j",)),
    ("c45_chain_rule_through_p_wrong_index", ("y_i = \\delta_{ik}",)),
])
def test_suggestions_make_sense(name: str, holds_if: tuple[str, ...]) -> None:
    """What would make a slip hold names real conditions: never a vector's name ("y > 0"),
    never δ_ii, and a one-hot label is substituted without capturing a sum's variable."""
    checked = _checked(name)
    assert checked.first_failure.holds_if == holds_if


def test_a_name_both_number_and_vector_is_unchecked_with_the_reason() -> None:
    """Two sections each defining L (binary, then multiclass in prose): the second derivative
    step mixes y and z as numbers with y_i and z_k; it is unchecked, saying so (it raised
    KeyError inside the check)."""
    text = (CORPUS.parent / "two_sections.md").read_text()
    step = derivation.check_text(text).steps[1]
    assert step.status == "unchecked"
    assert "stands both for one number" in step.detail and "KeyError" not in step.detail


def test_a_derivative_by_the_wrong_name_is_named_in_the_hint() -> None:
    """∂L/∂a written as what is ∂L/∂s (s = σ(a)): the hint names the chain rule's missing
    factor rather than a 'missing term'."""
    checked = _checked("c08_bce_dsigma_vs_dz")
    assert checked.first_failure.hint == ("chain rule: this line is the derivative by s, not by "
                                          "a; multiply by the derivative of s by a")


def test_a_counterexample_lies_in_the_real_domain() -> None:
    """J = (1/N) Σ_n -log p_n: where some p_n < 0 the log has no real value, so the derivative
    is not compared there (it gave a complex number); the counterexample has every p_n > 0."""
    first = _checked("c50_mean_missing_one_over_n").first_failure
    entries = {k: v for k, v in first.counterexample.items() if k.startswith("p[")}
    assert entries and all(v > 0 for v in entries.values()), first.counterexample
    assert "j)" not in first.detail, first.detail


def test_a_case_whose_condition_is_not_read_is_not_checked() -> None:
    """Cases whose condition is words: neither case is checked without its condition (that
    would fail a correct case); an 'else' beside an unread condition is unread too."""
    steps = _checked("c57_cases_condition_in_words").steps
    assert [s.status for s in steps] == ["unchecked", "unchecked"]
    assert all("condition" in s.detail for s in steps)


def test_a_defined_softmax_notation_is_one_function_of_every_vector():
    """σ(z)_i defined as a sharpened softmax: the definition is told it is not the softmax, and
    σ(a)_i is the same sharpened function of a, so a step right for the plain softmax fails."""
    text = ("$$\\sigma(z)_i = \\frac{e^{2 z_i}}{\\sum_{j=1}^{c} e^{2 z_j}}$$\n\n"
            "$$\\frac{\\partial \\log \\sigma(a)_i}{\\partial a_i} = 1 - \\sigma(a)_i$$\n\n"
            "$$\\frac{\\partial \\log \\sigma(a)_i}{\\partial a_i} = 2 - 2\\sigma(a)_i$$\n")
    checked = derivation.check_text(text)
    assert [s.status for s in checked.steps] == ["fails", "fails", "holds"]
    assert checked.steps[0].detail.startswith("does not hold: the softmax of z gives ")


def test_a_derivative_whose_sides_lack_its_index_is_still_evaluated():
    """∂S/∂z_k of S = Σ_i z_i: k stands in neither side, and no point was drawn for it (a claimed
    0 then 'could not be checked', and a right 1 was never confirmed numerically)."""
    step = _checked("c77_derivative_of_a_sum_without_its_index").steps[1]
    assert "confirmed numerically at 50 points" in step.detail
    wrong = _checked("c76_derivative_claimed_zero_wrong").steps[0]
    assert wrong.detail.startswith("does not hold: the derivative by z[k] gives ")
