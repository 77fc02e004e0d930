"""fit's two trackers of the monitored value: early stopping and the plateau schedule.

``tests/test_fit.py`` runs them inside ``fit``; here each one alone, on
hand-made sequences whose outcome is worked out in the comments.
"""

import math

import pytest

import gdcore as gd
from gdcore.fit import _EarlyStopping, _PlateauSchedule


def feed(stopping, values):
    """Epoch by epoch; the list of ``stalled`` after each."""
    out = []
    for epoch, value in enumerate(values):
        stopping.update(value, epoch, ("kept", epoch))
        out.append(stopping.stalled)
    return out


def test_early_stopping_waits_patience_epochs_after_the_best():
    stopping = _EarlyStopping(maximize=False, min_delta=0.0, patience=2)
    # best 2.0 at epoch 1; epochs 2 and 3 do not beat it: stalled after epoch 3.
    assert feed(stopping, [3.0, 2.0, 2.5, 2.6]) == [False, False, False, True]
    assert stopping.best_epoch == 1 and stopping.best == ("kept", 1)


def test_early_stopping_maximizes_when_asked():
    stopping = _EarlyStopping(maximize=True, min_delta=0.0, patience=1)
    assert feed(stopping, [0.5, 0.7, 0.6]) == [False, False, True]
    assert stopping.best_epoch == 1


def test_a_smaller_gain_than_min_delta_moves_the_best_but_does_not_reset_the_wait():
    # As scikit-learn's tol: 0.95 is the new best, yet not an improvement by 0.1.
    stopping = _EarlyStopping(maximize=False, min_delta=0.1, patience=2)
    assert feed(stopping, [1.0, 0.95, 0.93]) == [False, False, True]
    assert stopping.best_epoch == 2


def test_nan_and_inf_never_improve():
    stopping = _EarlyStopping(maximize=False, min_delta=0.0, patience=2)
    assert feed(stopping, [math.nan, math.inf]) == [False, True]
    assert stopping.best is None and stopping.best_epoch is None


def test_without_patience_early_stopping_never_stops_but_still_keeps_the_best():
    stopping = _EarlyStopping(maximize=False, min_delta=0.0, patience=None)
    assert not any(feed(stopping, [1.0] + [2.0] * 50))
    assert stopping.best_epoch == 0


def test_recount_finds_the_best_of_a_history_cut_short():
    stopping = _EarlyStopping(maximize=False, min_delta=0.0, patience=None)
    feed(stopping, [3.0, 2.0, 1.0])
    stopping.recount([3.0, 2.0])  # a divergence took the run back to epoch 1
    assert stopping.best_epoch == 1


def test_no_plateau_schedule_keeps_the_rate():
    schedule = _PlateauSchedule(None, maximize=False)
    assert not any(schedule.update(1.0, 1e-9) for _ in range(100))
    assert schedule.scale == 1.0


def test_the_plateau_schedule_scales_down_to_min_scale():
    plateau = gd.reduce_on_plateau(factor=0.5, patience=1, threshold=0.0,
                                   threshold_mode="abs", min_scale=0.2)
    schedule = _PlateauSchedule(plateau, maximize=False)
    scales = []
    for _ in range(7):
        schedule.update(1.0, 0.1)
        scales.append(schedule.scale)
    # Epoch 0 sets the best; each second epoch after it waits more than patience=1.
    assert scales == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]


def test_a_relative_threshold_counts_small_gains_as_a_stall():
    # threshold 10% relative: a 5% drop per epoch is no improvement, and (as
    # PyTorch's ReduceLROnPlateau) the best does not move with it.
    plateau = gd.reduce_on_plateau(factor=0.1, patience=2, threshold=0.1)
    schedule = _PlateauSchedule(plateau, maximize=False)
    for value in (1.0, 0.95, 0.9025):
        schedule.update(value, 0.1)
    assert schedule.scale == 1.0  # waited 2, not more than patience
    schedule.update(0.91, 0.1)  # still within 10% of the best, 1.0: waited 3
    assert schedule.scale == pytest.approx(0.1)
    schedule.update(0.5, 0.1)  # a real improvement: the wait starts again
    assert schedule.stall.waited == 0


def test_the_plateau_schedule_asks_to_stop_at_stop_lr():
    plateau = gd.reduce_on_plateau(factor=0.5, patience=0, threshold=0.0,
                                   threshold_mode="abs", stop_lr=1e-3)
    schedule = _PlateauSchedule(plateau, maximize=False)
    assert schedule.update(1.0, 1e-2) is False  # the first value is the best
    assert schedule.update(1.0, 1e-2) is False  # a reduction falls due above stop_lr
    assert schedule.scale == 0.5
    assert schedule.update(1.0, 1e-3) is True  # due again, with the rate at stop_lr
