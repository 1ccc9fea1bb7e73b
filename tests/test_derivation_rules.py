"""Each named rule, applied to the expression it is for, gives exactly the expected result."""

import sympy as sp

from derivation import _rules
from derivation._symbols import c, i, k, m, p, sigma, softmax, total, unfold_softmax, y, z

S = total(sp.exp(z[m]), m, c)


def test_softmax_is_exp_over_sum_of_exps():
    assert softmax(k, c) == sp.exp(z[k]) / S
    assert unfold_softmax(sigma[k] - y[k], c) == sp.exp(z[k]) / S - y[k]


def test_log_of_quotient_uses_log_exp_identity_for_real_logits():
    assert _rules.log_of_quotient(sp.log(sp.exp(z[i]) / S)) == z[i] - sp.log(S)


def test_linearity_splits_sums_and_moves_constant_factors_out():
    body = y[i] * (z[i] - sp.log(S))
    assert _rules.linearity_of_sum(-total(body, i, c)) == (
        sp.log(S) * total(y[i], i, c) - total(y[i] * z[i], i, c))


def test_linearity_of_a_constant_counts_the_terms():
    assert _rules.linearity_of_sum(total(sp.Integer(3), i, c)) == 3 * c


def test_linearity_keeps_the_lower_limit():
    assert _rules.linearity_of_sum(sp.Sum(2 * z[i], (i, 2, c))) == 2 * sp.Sum(z[i], (i, 2, c))


def test_log_is_split_only_where_the_factors_are_positive():
    label = y[k]
    assert _rules.log_of_quotient(sp.log(label**2)) == sp.log(label**2)  # y real, maybe negative
    x = sp.Symbol("x", positive=True)
    assert _rules.log_of_quotient(sp.log(x**2 / S)) == 2 * sp.log(x) - sp.log(S)


def test_sift_kronecker_delta():
    assert _rules.sift_kronecker_delta(total(sp.KroneckerDelta(i, k) * y[i], i, c), c) == y[k]
    assert _rules.sift_kronecker_delta(
        total(sp.KroneckerDelta(k, m) * sp.exp(z[m]), m, c), c) == sp.exp(z[k])


def test_sift_only_over_exactly_one_to_c():
    short = sp.Sum(sp.KroneckerDelta(i, k) * y[i], (i, 2, c))
    assert _rules.sift_kronecker_delta(short, c) == short
    assert _rules.sift_kronecker_delta(total(sp.KroneckerDelta(i, k) * y[i], i, c - 1), c) == (
        total(sp.KroneckerDelta(i, k) * y[i], i, c - 1))


def test_sift_leaves_a_sum_without_delta_alone():
    assert _rules.sift_kronecker_delta(total(y[i], i, c), c) == total(y[i], i, c)


def test_labels_sum_to_one_replaces_only_the_label_sum():
    e = sigma[k] * total(y[i], i, c) - y[k] + S
    assert _rules.labels_sum_to_one(e, c) == sigma[k] - y[k] + S
    assert _rules.labels_sum_to_one(total(y[i], i, c - 1), c) == total(y[i], i, c - 1)


def test_one_hot_labels_are_kronecker_deltas_at_p():
    assert _rules.one_hot(y[k] + y[i]) == sp.KroneckerDelta(k, p) + sp.KroneckerDelta(i, p)


def test_fold_softmax_names_each_exp_over_the_sum():
    assert _rules.fold_softmax(sp.exp(z[k]) / S, c) == sigma[k]
    assert _rules.fold_softmax(sp.exp(z[k]) * sp.exp(z[i]) / S**2, c) == sigma[k] * sigma[i]
    assert _rules.fold_softmax(sp.exp(z[k]) / S**2, c) == sigma[k] / S


def test_canonical_reduction_proves_the_gradient_identity():
    gradient = sigma[k] * total(y[i], i, c) - y[k]
    derivative = sp.diff(-total(y[i] * sp.log(softmax(i, c)), i, c), z[k])
    assert _rules.reduce_to_canonical(derivative - gradient, c) == 0
    assert _rules.reduce_to_canonical(derivative - gradient + y[k], c) != 0
