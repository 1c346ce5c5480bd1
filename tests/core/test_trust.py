"""Trust over time, on crafted probability sequences."""
import numpy as np
import pytest

from core.live.trust import TrustMeter, trust_series


def _onehot(classes, k=6, p=0.95):
    out = np.full((len(classes), k), (1 - p) / (k - 1))
    out[np.arange(len(classes)), classes] = p
    return out


def test_trust_is_always_in_the_unit_interval():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(6, 0.3), size=500)
    t = trust_series(proba)
    assert t.shape == (500,) and (t >= 0).all() and (t <= 1).all()


def test_a_confident_steady_prediction_is_trusted_and_uniform_never_is():
    steady = trust_series(_onehot([2] * 10, p=1.0))
    assert steady[-1] == pytest.approx(1.0)
    assert trust_series(np.full((10, 6), 1 / 6)).max() == 0.0


def test_a_flip_flopping_prediction_loses_its_trust():
    flip = trust_series(_onehot([1, 3] * 5))
    steady = trust_series(_onehot([1] * 10))
    assert flip[1] == pytest.approx(steady[1])          # one change is a transition: free
    assert flip[2] == pytest.approx(steady[2] * 2 / 3)  # two changes over the last 3 windows
    assert flip[-1] == 0.0 and steady[-1] == pytest.approx(0.95 - 0.01)   # the lead over the runner-up


def test_a_phase_change_that_holds_costs_no_trust():
    t = trust_series(_onehot([0] * 6 + [4] * 6))
    np.testing.assert_allclose(t, t[0])


def test_an_uncertain_window_is_smoothed_not_taken_whole():
    meter = TrustMeter()
    assert meter.update(_onehot([2], p=1.0)[0]) == pytest.approx(1.0)
    # A window whose top phase leads by 0.4 halves the way towards it.
    assert meter.update([0.1, 0.1, 0.5, 0.1, 0.1, 0.1]) == pytest.approx(0.5 * 1.0 + 0.5 * 0.4)
    assert meter.update(np.full(6, 1 / 6)) == pytest.approx(0.5 * 0.7)
