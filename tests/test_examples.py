"""Smoke tests of the scripts in examples/: each runs its main() and its results hold.

The examples are scripts, not a package, so each is imported from its file.
They write only into pytest's ``tmp_path``.  Settings are the scripts' own
where a run takes about a second, fewer epochs otherwise.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    """The module ``examples/<name>.py``, imported from its path."""
    spec = importlib.util.spec_from_file_location(f"gdcore_example_{name}",
                                                  EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path):
    path = Path(path)
    assert path.is_file(), path
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_linear_regression_matches_textbook_and_lstsq(tmp_path, capsys):
    example = load_example("linear_regression")
    got = example.main(["--out", str(tmp_path)])
    # Same steps: the trajectories differ by rounding only.
    assert got["max_trajectory_diff"] < 1e-12
    np.testing.assert_allclose(got["gdcore"], got["lstsq"], rtol=0, atol=example.TOLERANCE)
    np.testing.assert_allclose(got["classic"], got["lstsq"], rtol=0, atol=example.TOLERANCE)
    np.testing.assert_allclose(got["lstsq"], [2.0, 3.0], atol=0.2)  # the line behind the data
    assert_png(got["png"])
    assert "OK tolerance" in capsys.readouterr().out


def test_binary_classifier_accuracy_and_save_load(tmp_path):
    got = load_example("binary_classifier").main(["--out", str(tmp_path)])
    assert got["accuracy"] >= 0.95
    assert got["confusion"].shape == (2, 2)
    assert got["confusion"].sum() == 114  # the 20% test split of 569 samples
    assert got["identical_after_load"] is True
    assert got["model_path"].is_file()
    assert len(got["history"]["loss"]) == 100


def test_gd_variants_histories_and_figure(tmp_path):
    epochs = 3
    got = load_example("gd_variants").main(["--out", str(tmp_path), "--epochs", str(epochs)])
    histories = got["histories"]
    assert list(histories) == ["batch", "mini-batch", "stochastic"]
    for name, h in histories.items():
        assert h["epoch"] == list(range(epochs + 1)), name
        assert len(h["loss"]) == len(h["time"]) == epochs + 1, name
        assert np.all(np.isfinite(h["loss"])), name
        assert np.all(np.diff(h["time"]) > 0), name
    assert [h["steps_per_epoch"] for h in histories.values()] == [1, 57, 1797]
    # More steps per epoch, more progress per epoch.
    final = [h["loss"][-1] for h in histories.values()]
    assert final[0] > final[1] > final[2]
    assert_png(got["png"])


def test_digits_demo_reaches_97_percent(tmp_path):
    got = load_example("digits").main(["--out", str(tmp_path)])  # the real settings
    assert got["accuracy"] >= 0.97
    history = got["history"]
    assert len(history["loss"]) == len(history["val_loss"]) == 30
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert got["first_call_time"] > 0 and got["fit_time"] > 0
    assert_png(got["png"])


def test_sklearn_dropin_grid_search_agrees_with_scikit_learn(capsys):
    got = load_example("sklearn_dropin").main(["--quick"])
    ours, theirs = got["gdcore"], got["scikit-learn"]
    assert ours["accuracy"] >= theirs["accuracy"] - 0.03
    assert ours["accuracy"] > 0.9
    assert set(ours["predictions"]) <= set(load_example("sklearn_dropin").NAMES)
    assert "faster" in capsys.readouterr().out


def test_dask_cluster_trains_on_chunks_it_never_gathers():
    pytest.importorskip("distributed")
    got = load_example("dask_cluster").main(["--rows", "20000", "--chunk-rows", "5000"])
    assert got["lbfgs"].success
    np.testing.assert_allclose(got["weights"], np.linspace(-1.5, 1.5, 20), atol=0.15)
    history = got["fit"].history["loss"]
    assert got["fit"].status == "completed" and len(history) == 3
    assert history[-1] < history[0]
    assert got["accuracy"] > 0.8
