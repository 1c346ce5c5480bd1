"""Training that fits a day: a budget the fit keeps (validating at least ~10
times within it), and an interrupted fit that resumes to the same model."""
import time

import numpy as np
import pytest

from core.models.base import TrainError
from core.models.loop import MIN_VALIDATIONS, train_loop
from core.models.resume import ResumeState
from core.models.settings import LoopSettings

RNG = np.random.default_rng(0)
X = RNG.standard_normal((400, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)


def _batches(delay_s: float = 0.0):
    def batches(r, size):
        order = r.permutation(len(Y))
        for i in range(0, len(Y), size):
            if delay_s:
                time.sleep(delay_s)          # a step as slow as one over a large lab's windows
            yield X[order[i:i + size]], Y[order[i:i + size]]
    return batches


def _val():
    yield X[:100], Y[:100]


def _net(seed=0):
    import torch
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(16, 3))


def test_a_budget_shorter_than_one_pass_still_validates_ten_times_and_stops_in_time():
    # One pass is 100 steps of 50 ms (5 s): the budget is 3 s.
    cfg = LoopSettings(epochs=30, batch_size=4, patience=10 ** 6, budget_s=3.0, min_steps_per_epoch=1)
    t0 = time.monotonic()
    info = train_loop(_net(), _batches(0.05), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0)
    took = time.monotonic() - t0
    b = info["budget"]
    assert b["stopped_by_budget"] and info["stopped_by"] == "budget"
    assert len(info["history"]) >= MIN_VALIDATIONS
    # It stopped as the next interval would not have fitted (torch's first steps in a process are slow: the
    # loop's own clock, and the caller's with what came before the first step).
    assert b["seconds"] <= 3.0 + 0.3 and took < 3.0 + 2.0
    assert info["schedule"]["steps_run"] < info["schedule"]["steps_per_epoch"]      # less than one pass
    # The schedule was planned to end at the budget: the learning rate decayed near 0 by the last steps.
    assert info["history"][-1]["lr"] < 0.35 * cfg.lr


def test_without_a_budget_the_loop_is_as_it_was():
    cfg = LoopSettings(epochs=4, batch_size=32, patience=10, min_steps_per_epoch=1)
    info = train_loop(_net(), _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0)
    assert "budget" not in info and info["epochs_run"] == 4
    assert info["schedule"]["steps_run"] == 4 * info["schedule"]["steps_per_epoch"]


def test_an_interrupted_fit_resumed_ends_with_the_uninterrupted_one_s_weights(tmp_path):
    import torch
    cfg = LoopSettings(epochs=5, batch_size=32, patience=10, min_steps_per_epoch=1)
    whole = _net()
    train_loop(whole, _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0)

    key = {"model": "test", "settings": "a"}
    state = ResumeState(tmp_path / "r.pt", key, use=True)

    def stop_after_two(epoch, epochs, **_):
        if epoch == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_loop(_net(), _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0, stop_after_two,
                   resume=state)
    assert state.path.exists()
    again = _net(seed=99)                      # other initial weights: the saved ones replace them
    info = train_loop(again, _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0, resume=state)
    assert info["resumed"] == {"from_epoch": 2, "steps": 2 * info["schedule"]["steps_per_epoch"]}
    assert info["epochs_run"] == 5
    for (name, a), (_, b) in zip(whole.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_state_saved_by_another_fit_or_damaged_is_refused(tmp_path):
    cfg = LoopSettings(epochs=2, batch_size=32, patience=10, min_steps_per_epoch=1)
    saved = ResumeState(tmp_path / "r.pt", {"model": "cnn", "settings": "lr=0.002"}, use=True)

    def stop(epoch, epochs, **_):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_loop(_net(), _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0, stop, resume=saved)
    other = ResumeState(tmp_path / "r.pt", {"model": "cnn", "settings": "lr=0.001"}, use=True)
    with pytest.raises(TrainError, match="saved by a fit with another settings than this one: train without "
                                         "--resume to start afresh"):
        train_loop(_net(), _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0, resume=other)
    (tmp_path / "r.pt").write_bytes(b"not a torch file")
    with pytest.raises(TrainError, match="r.pt: damaged, cannot be resumed from"):
        train_loop(_net(), _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0, resume=saved)
    # Not asked to resume: the state is neither read nor in the way.
    fresh = ResumeState(tmp_path / "r.pt", {"model": "cnn"}, use=False)
    info = train_loop(_net(), _batches(), len(Y), _val, np.ones(3, np.float32), cfg, "cpu", 0, resume=fresh)
    assert "resumed" not in info


@pytest.mark.parametrize("given,seconds", [("30m", 1800), ("1h30m", 5400), ("90s", 90), ("45", 45), ("2h", 7200),
                                           ("0.5h", 1800)])
def test_budget_durations(given, seconds):
    from cis490cli.options import duration
    assert duration(given) == seconds


@pytest.mark.parametrize("given", ["", "soon", "10x", "0", "-5m"])
def test_what_is_not_a_duration_is_a_usage_error(given):
    import typer

    from cis490cli.options import duration
    with pytest.raises(typer.BadParameter):
        duration(given)
