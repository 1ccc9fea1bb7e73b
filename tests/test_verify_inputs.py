"""The inputs of a cell: four adversarial rows, then random ones; labels of each kind."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify import LABEL_KINDS, _dtypes, _inputs

CLASSES, SAMPLES, SCALE = 12, 64, 3.0


@pytest.fixture(scope="module", params=LABEL_KINDS)
def cell(request):
    with jax.enable_x64(True):
        noise = _inputs.draw_noise(0, CLASSES, SAMPLES)
        draws = _inputs.draw(0, CLASSES, request.param, SAMPLES, noise)
        gap = _dtypes.facts("float32").far_gap(CLASSES)
        z = np.asarray(_inputs.logits(draws, SCALE, gap))
        return request.param, draws, z, np.asarray(draws.labels), gap


def test_four_adversarial_rows_come_first(cell):
    _, draws, z, _, _ = cell
    assert z.shape == (SAMPLES + 4, CLASSES)
    assert np.asarray(draws.row_kind).tolist() == [0, 1, 2, 3] + [4] * SAMPLES
    assert _inputs.ROW_KINDS == ("far-above", "ties", "all-equal", "masked", "random")


def test_far_above_lifts_the_labels_class_clear_of_the_rest(cell):
    _, _, z, y, gap = cell
    top = int(np.argmax(y[0]))
    rest = np.delete(z[0], top)
    assert z[0, top] - rest.max() == pytest.approx(gap, abs=1e-12)


def test_ties_share_the_largest_logit_exactly(cell):
    _, _, z, _, _ = cell
    assert np.sum(z[1] == z[1].max()) == 2


def test_all_equal_is_all_equal(cell):
    _, _, z, _, _ = cell
    assert np.all(z[2] == z[2, 0])


def test_masked_classes_are_minus_infinity_where_the_label_is_zero(cell):
    kind, draws, z, y, _ = cell
    masked = np.asarray(draws.mask)
    assert masked.any() and not masked.all()
    assert np.all(z[3, masked] == -np.inf) and np.all(np.isfinite(z[3, ~masked]))
    assert np.all(y[3, masked] == 0)
    if kind != "unnormalized":
        assert y[3].sum() == pytest.approx(1.0, abs=1e-15)
    assert np.all(np.isfinite(z[:3])) and np.all(np.isfinite(z[4:]))


def test_random_rows_are_scaled_standard_normals(cell):
    _, _, z, _, _ = cell
    random = z[4:]
    assert abs(random.mean()) < 0.3 * SCALE and 0.8 * SCALE < random.std() < 1.2 * SCALE


def test_each_label_kind(cell):
    kind, _, _, y, _ = cell
    rows = y[4:]
    assert np.all(rows >= 0)
    sums = rows.sum(axis=1)
    if kind == "onehot":
        assert np.all(np.sort(rows, axis=1)[:, :-1] == 0) and np.all(rows.max(axis=1) == 1)
    elif kind == "smoothed":
        assert set(np.unique(rows).round(12)) == {round(0.1 / CLASSES, 12),
                                                  round(0.9 + 0.1 / CLASSES, 12)}
    if kind == "unnormalized":
        # Sums kept away from one: in [e^-2, e^-0.5] or [e^0.5, e^2].
        assert np.all((np.abs(np.log(sums)) >= 0.5 - 1e-12) & (np.abs(np.log(sums)) <= 2 + 1e-12))
    else:
        assert np.allclose(sums, 1.0, rtol=0, atol=1e-14)


def test_draws_depend_on_the_seed_and_the_cell_only():
    with jax.enable_x64(True):
        a = _inputs.draw(0, 5, "soft", 8, _inputs.draw_noise(0, 5, 8))
        b = _inputs.draw(0, 5, "soft", 8, _inputs.draw_noise(0, 5, 8))
        c = _inputs.draw(1, 5, "soft", 8, _inputs.draw_noise(1, 5, 8))
        d = _inputs.draw(0, 5, "onehot", 8, _inputs.draw_noise(0, 5, 8))
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.noise, b.noise)
    assert not np.array_equal(a.labels, c.labels) and not np.array_equal(a.noise, c.noise)
    assert not np.array_equal(a.labels, d.labels) and np.array_equal(a.noise, d.noise)


@settings(max_examples=25, deadline=None)
@given(classes=st.integers(1, 40), samples=st.integers(1, 60),
       stops=st.lists(st.integers(0, 70), max_size=6), background=st.booleans())
def test_noise_drawn_in_pieces_is_one_draw_of_every_row(classes, samples, stops, background):
    """Drawn a piece at a time (in the background thread or not), in whatever order chunks ask
    for rows, the noise is the one draw of every row that the seed gives."""
    rows = samples + _inputs.ADVERSARIAL_ROWS
    whole = _inputs.generator(5, classes, _inputs.NOISE).standard_normal((rows, classes),
                                                                        dtype=np.float32)
    limits = {"BACKGROUND_ELEMENTS": 0, "PIECE_ELEMENTS": 7} if background else {}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in limits.items():
            patch.setattr(_inputs, name, value)
        noise = _inputs.Noise(5, classes, samples)
        draws = _inputs.draw(5, classes, "onehot", samples, noise)
        for stop in stops:
            part = draws.take(slice(0, min(stop, rows)))
            assert np.array_equal(part.noise, whole[:min(stop, rows)])
        part = draws.take(np.array([rows - 1, 0]))
    assert np.array_equal(part.noise, whole[[rows - 1, 0]])
    assert np.array_equal(noise.values, whole)
    assert np.array_equal(noise.largest, np.max(np.abs(whole), axis=-1))


def test_a_failure_drawing_in_the_background_reaches_the_rows_reader(monkeypatch):
    """An error in the background thread is raised where the rows are asked for, not left to
    wait forever."""
    monkeypatch.setattr(_inputs, "BACKGROUND_ELEMENTS", 0)
    monkeypatch.setattr(_inputs, "generator", lambda *seeds: None)  # .standard_normal fails
    noise = _inputs.Noise(0, 3, 10)
    with pytest.raises(AttributeError):
        noise.draw_to(14)


def test_rows_taken_by_negative_index_or_mask_are_drawn_first_and_past_the_end_refused(
        monkeypatch):
    """Whatever indexes the rows (negative indices, a mask), they are drawn before they are
    read; an index past the last row is an IndexError, not a wait for rows that never come."""
    monkeypatch.setattr(_inputs, "BACKGROUND_ELEMENTS", 0)
    monkeypatch.setattr(_inputs, "PIECE_ELEMENTS", 1)
    whole = _inputs.generator(2, 3, _inputs.NOISE).standard_normal((2004, 3), dtype=np.float32)
    draws = _inputs.draw(2, 3, "onehot", 2000, _inputs.Noise(2, 3, 2000))
    assert np.array_equal(draws.take(np.array([-1])).noise, whole[[-1]])
    mask = np.zeros(2004, bool)
    mask[[5, 1999]] = True
    assert np.array_equal(draws.take(mask).noise, whole[mask])
    with pytest.raises(IndexError):
        draws.take(np.array([2004]))
