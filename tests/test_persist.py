"""Saving and loading a model with its parameters (gdcore.persist)."""

import json
import os
import pathlib
import stat
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gdcore as gd
from gdcore import codes
from gdcore.persist import load, save

HIDDEN = sorted(name for name in codes.ACTIVATIONS if name != "softmax")
LOSS_OUTPUTS = {
    "mse": HIDDEN, "mae": HIDDEN, "huber": HIDDEN,
    "binary_cross_entropy": ["sigmoid", "identity"],
    "cross_entropy": ["softmax", "identity"],
}

MODELS = {
    "linear-mse": gd.mlp([3, 1]),
    "relu-softmax-ce": gd.mlp([4, 8, 3], "relu", loss="cross_entropy"),
    "tanh-sigmoid-bce": gd.mlp([5, 7, 6, 1], "tanh", loss="binary_cross_entropy"),
    "gelu-logits-ce": gd.mlp([2, 3, 2], "gelu", output="identity", loss="cross_entropy"),
    "mixed-huber": gd.Model([gd.Dense(3, 4, "elu"), gd.Dense(4, 4, "silu"),
                             gd.Dense(4, 2, "softplus")], loss="huber"),
    "leaky-mae": gd.mlp([6, 5, 2], "leaky_relu", output="sigmoid", loss="mae"),
}


def same_bits(a, b):
    """Equal dtype, shape and bytes: tells -0.0 from 0.0, unlike ==."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def listing(directory):
    return sorted(os.listdir(directory))


def members(model, params):
    """The members of a valid version-1 file, for tests to spoil one at a time."""
    return {
        "gdcore_format": np.array("gdcore-model"),
        "format_version": np.array(1, dtype=np.int64),
        "model": np.array(json.dumps(model.to_spec())),
        "params": params,
    }


def write_npz(path, compressed=False, **arrays):
    """An .npz written by another tool, at exactly ``path``."""
    writer = np.savez_compressed if compressed else np.savez
    with open(path, "wb") as f:
        writer(f, **arrays)


@pytest.fixture
def model():
    return MODELS["relu-softmax-ce"]


@pytest.fixture
def params(model, dtype):
    return gd.init(model, seed=7, dtype=dtype)


# Round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip(tmp_path, name, dtype):
    model = MODELS[name]
    params = gd.init(model, seed=3, dtype=dtype)
    params += np.random.default_rng(0).normal(0, 0.1, model.n_params).astype(dtype)  # biases too
    path = tmp_path / "model.npz"
    save(path, model, params)
    got_model, got_params = load(path)

    assert got_model == model and hash(got_model) == hash(model)
    assert same_bits(got_params, params)
    flags = got_params.flags
    assert flags.c_contiguous and flags.writeable and flags.owndata
    X = np.random.default_rng(1).normal(size=(5, model.n_inputs))
    np.testing.assert_array_equal(gd.predict(got_model, got_params, X),
                                  gd.predict(model, params, X))
    y = gd.predict(model, params, X) if model.loss_code not in codes.LOGIT_LOSSES else (
        np.arange(5) % model.n_outputs if model.loss == "cross_entropy" else np.ones(5))
    loss, grad = gd.value_and_grad(got_model, got_params, X, y)
    expected_loss, expected_grad = gd.value_and_grad(model, params, X, y)
    assert loss == expected_loss
    assert same_bits(grad, expected_grad)


@settings(max_examples=60)
@given(data=st.data())
def test_round_trip_every_activation_and_loss(tmp_path_factory, data):
    loss = data.draw(st.sampled_from(sorted(LOSS_OUTPUTS)), label="loss")
    sizes = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=4), label="sizes")
    n_out = data.draw(st.integers(2 if loss == "cross_entropy" else 1, 5), label="n_out")
    hidden = [data.draw(st.sampled_from(HIDDEN)) for _ in sizes[1:]]
    output = data.draw(st.sampled_from(LOSS_OUTPUTS[loss]), label="output")
    widths = sizes + [n_out]
    acts = hidden + [output]
    model = gd.Model([gd.Dense(widths[i], widths[i + 1], acts[i]) for i in range(len(acts))],
                     loss=loss)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    params = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(
        size=model.n_params).astype(dtype)
    path = tmp_path_factory.mktemp("prop") / "m.npz"
    save(path, model, params)
    got_model, got_params = load(path)
    assert got_model == model
    assert same_bits(got_params, params)


def test_special_values_survive_bit_for_bit(tmp_path, dtype):
    model = gd.mlp([2, 2])  # 6 parameters
    info = np.finfo(dtype)
    params = np.array([-0.0, 0.0, info.smallest_subnormal, -info.max, info.max,
                       info.eps], dtype=dtype)
    save(tmp_path / "m", model, params)
    _, got = load(tmp_path / "m")
    assert same_bits(got, params)
    assert np.signbit(got[0]) and not np.signbit(got[1])


@pytest.mark.parametrize("kind", ["str", "Path", "PathLike"])
def test_path_forms(tmp_path, model, params, kind):
    target = tmp_path / "m.npz"

    class Custom:  # any os.PathLike, not only pathlib
        def __fspath__(self):
            return str(target)

    path = {"str": str(target), "Path": target, "PathLike": Custom()}[kind]
    save(path, model, params)
    got_model, got_params = load(path)
    assert got_model == model and same_bits(got_params, params)


@pytest.mark.parametrize("name", ["model", "model.bin", "model.npz", "weights.v2.npz"])
def test_the_exact_path_is_used(tmp_path, model, params, name):
    save(str(tmp_path / name), model, params)  # np.savez(str) would append ".npz"
    assert listing(tmp_path) == [name]
    assert load(str(tmp_path / name))[0] == model


def test_file_is_readable_with_plain_numpy(tmp_path, model, params):
    save(tmp_path / "m.npz", model, params)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["format_version", "gdcore_format", "model", "params"]
        assert npz["gdcore_format"].shape == () and npz["gdcore_format"].item() == "gdcore-model"
        assert npz["format_version"].dtype.kind == "i" and npz["format_version"].item() == 1
        assert npz["model"].shape == () and npz["model"].dtype.kind == "U"
        assert json.loads(npz["model"].item()) == {
            "layers": [{"n_in": 4, "n_out": 8, "activation": "relu"},
                       {"n_in": 8, "n_out": 3, "activation": "softmax"}],
            "loss": "cross_entropy",
        }
        assert same_bits(npz["params"], params)


def test_overwrite_replaces_the_file(tmp_path, dtype):
    path = tmp_path / "m.npz"
    first = gd.mlp([3, 4, 1], "tanh")
    second = gd.mlp([2, 5, 3], "relu", loss="cross_entropy")
    save(path, first, gd.init(first, 1, dtype))
    new = gd.init(second, 2, dtype)
    save(path, second, new)
    got_model, got_params = load(path)
    assert got_model == second and same_bits(got_params, new)
    assert listing(tmp_path) == ["m.npz"]  # no temporary left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_file_gets_default_permissions(tmp_path, model, params):
    old = os.umask(0o022)
    try:
        save(tmp_path / "m.npz", model, params)
    finally:
        os.umask(old)
    # As a plain open() would create it; a mkstemp file would be 0o600.
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o644


# Atomicity -------------------------------------------------------------------------------
def half_written(file, *args, **kwargs):
    file.write(b"PK\x03\x04 half a zip")  # something reaches the temporary file first
    raise OSError("disk full")


def interrupted(file, *args, **kwargs):
    file.write(b"PK\x03\x04")
    raise KeyboardInterrupt


def locked(*args):
    raise PermissionError("target is locked")


@pytest.mark.parametrize("failure, error", [
    (("numpy", "savez", half_written), OSError),
    (("numpy", "savez", interrupted), KeyboardInterrupt),
    (("os", "replace", locked), PermissionError),
    (("os", "fsync", locked), PermissionError),
], ids=["savez-raises", "interrupted", "replace-fails", "fsync-fails"])
def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch, model, params, failure, error):
    path = tmp_path / "m.npz"
    old_model = gd.mlp([3, 2, 1])
    save(path, old_model, gd.init(old_model))
    before = path.read_bytes()
    module, name, replacement = failure
    monkeypatch.setattr({"numpy": np, "os": os}[module], name, replacement)
    with pytest.raises(error):
        save(path, model, params)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["m.npz"]
    assert load(path)[0] == old_model


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch, model, params):
    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path / "m.npz", model, params)
    assert listing(tmp_path) == []


def test_saving_onto_a_directory_fails_cleanly(tmp_path, model, params):
    (tmp_path / "sub").mkdir()
    with pytest.raises(OSError):
        save(tmp_path / "sub", model, params)
    assert listing(tmp_path) == ["sub"] and listing(tmp_path / "sub") == []


def test_missing_directory_raises(tmp_path, model, params):
    with pytest.raises(FileNotFoundError):
        save(tmp_path / "nowhere" / "m.npz", model, params)
    assert listing(tmp_path) == []


# Inputs are left alone -----------------------------------------------------------------
def test_save_does_not_mutate_or_need_writeable_params(tmp_path, model, params):
    frozen = params.copy()
    frozen.setflags(write=False)
    spec = model.to_spec()
    save(tmp_path / "m.npz", model, frozen)
    assert same_bits(frozen, params) and not frozen.flags.writeable
    assert model.to_spec() == spec


def test_save_accepts_strided_and_list_params(tmp_path, model, dtype):
    wide = gd.init(model, 1, dtype).repeat(2)[::2]  # a non-contiguous view
    save(tmp_path / "a", model, wide)
    assert same_bits(load(tmp_path / "a")[1], np.ascontiguousarray(wide))
    save(tmp_path / "b", model, wide.tolist())  # not an array: float64, like the API
    got = load(tmp_path / "b")[1]
    assert got.dtype == np.float64 and np.array_equal(got, wide)


def test_loaded_params_are_independent(tmp_path, model, params):
    save(tmp_path / "m.npz", model, params)
    _, first = load(tmp_path / "m.npz")
    first[:] = 0
    _, second = load(tmp_path / "m.npz")
    assert same_bits(second, params)


# Refusals on load ----------------------------------------------------------------------
def refused(path, *phrases):
    """load(path) raises a ValueError naming the path and each phrase."""
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert repr(str(path)) in message
    for phrase in phrases:
        assert phrase in message, message
    return message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")


def test_refuses_a_text_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("layers: 3\n")
    refused(path, "not a gdcore model file", "not an .npz (zip) archive")


@pytest.mark.parametrize("content", [b"", b"PK", b"\x93NUMPY"], ids=["empty", "2-bytes", "npy"])
def test_refuses_short_or_foreign_files(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    refused(path, "not an .npz (zip) archive")


def test_refuses_an_npy_file(tmp_path, params):
    path = tmp_path / "m.npy"
    np.save(path, params)
    refused(path, "not an .npz (zip) archive")


def test_refuses_an_npz_without_the_members(tmp_path, params):
    path = tmp_path / "m.npz"
    write_npz(path, weights=params)
    message = refused(path, "missing member(s)", "'gdcore_format'", "'params'")
    assert "found ['weights']" in message


@pytest.mark.parametrize("missing", ["gdcore_format", "format_version", "model", "params"])
def test_refuses_each_missing_member(tmp_path, model, params, missing):
    arrays = members(model, params)
    del arrays[missing]
    write_npz(tmp_path / "m.npz", **arrays)
    refused(tmp_path / "m.npz", f"missing member(s) [{missing!r}]")


@pytest.mark.parametrize("tag", [np.array("keras-model"), np.array(["gdcore-model"]),
                                 np.array(b"gdcore-model"), np.array(1)],
                         ids=["other-name", "1-d", "bytes", "int"])
def test_refuses_a_wrong_format_tag(tmp_path, model, params, tag):
    write_npz(tmp_path / "m.npz", **{**members(model, params), "gdcore_format": tag})
    refused(tmp_path / "m.npz", "gdcore_format must be 'gdcore-model'")


def test_refuses_a_future_format_version(tmp_path, model, params):
    write_npz(tmp_path / "m.npz", **{**members(model, params), "format_version": np.array(2)})
    refused(tmp_path / "m.npz", "format version 2", "newer gdcore", "reads format version 1")


@pytest.mark.parametrize("version", [np.array(0), np.array(-1), np.array(1.0), np.array("1"),
                                     np.array([1])],
                         ids=["zero", "negative", "float", "str", "1-d"])
def test_refuses_a_malformed_format_version(tmp_path, model, params, version):
    write_npz(tmp_path / "m.npz", **{**members(model, params), "format_version": version})
    refused(tmp_path / "m.npz", "format_version must be a positive integer")


@pytest.mark.parametrize("text", ['{"layers": [', "", "NaN-ish", "[" * 100_000],
                         ids=["truncated", "empty", "garbage", "deeply-nested"])
def test_refuses_corrupt_spec_json(tmp_path, model, params, text):
    write_npz(tmp_path / "m.npz", **{**members(model, params), "model": np.array(text)})
    refused(tmp_path / "m.npz", "model is not valid JSON")


@pytest.mark.parametrize("spec, phrase", [
    ([1, 2], "spec must be a dict"),
    ({"layers": []}, "missing ['loss']"),
    ({"layers": [], "loss": "mse"}, "at least one Dense layer"),
    ({"layers": [{"n_in": 2, "n_out": 1, "activation": "relu"}], "loss": "mse",
      "dropout": 0.5}, "unknown ['dropout']"),
    ({"layers": [{"n_in": 2, "n_out": 1}], "loss": "mse"}, "missing ['activation']"),
    ({"layers": [{"n_in": 2.0, "n_out": 1, "activation": "relu"}], "loss": "mse"},
     "spec['layers'][0]: n_in must be an integer"),
    ({"layers": [{"n_in": 2, "n_out": 1, "activation": "swish"}], "loss": "mse"},
     "unknown activation 'swish'"),
    ({"layers": [{"n_in": 2, "n_out": 3, "activation": "relu"},
                 {"n_in": 4, "n_out": 1, "activation": "identity"}], "loss": "mse"},
     "layers[1].n_in is 4"),
    ({"layers": [{"n_in": 2, "n_out": 1, "activation": "relu"}], "loss": "hinge"},
     "unknown loss 'hinge'"),
], ids=["list", "no-loss", "no-layers", "extra-key", "layer-key", "float-width",
        "activation", "widths", "loss"])
def test_refuses_an_invalid_spec(tmp_path, spec, phrase):
    write_npz(tmp_path / "m.npz", **{**members(gd.mlp([2, 1]), np.zeros(3)),
                                     "model": np.array(json.dumps(spec))})
    refused(tmp_path / "m.npz", "model is not a valid spec", phrase)


def test_refuses_a_spec_that_is_not_a_string(tmp_path, model, params):
    write_npz(tmp_path / "m.npz", **{**members(model, params), "model": np.arange(3)})
    refused(tmp_path / "m.npz", "model must be a 0-d unicode array holding JSON")


@pytest.mark.parametrize("change", ["short", "long", "2-d"])
def test_refuses_params_that_do_not_fit_the_spec(tmp_path, model, params, change):
    bad = {"short": params[:-1], "long": np.append(params, params[:1]),
           "2-d": params.reshape(1, -1)}[change]
    write_npz(tmp_path / "m.npz", **members(model, bad))
    refused(tmp_path / "m.npz", f"params must have shape ({model.n_params},)")


@pytest.mark.parametrize("bad_dtype", [np.int64, np.float16, np.complex128, np.bool_])
def test_refuses_params_of_the_wrong_dtype(tmp_path, model, params, bad_dtype):
    write_npz(tmp_path / "m.npz", **members(model, params.astype(bad_dtype)))
    refused(tmp_path / "m.npz", "params must be float32 or float64")


def test_refuses_non_finite_params_in_a_file(tmp_path, model, params):
    bad = params.copy()
    bad[5] = np.inf
    write_npz(tmp_path / "m.npz", **members(model, bad))
    refused(tmp_path / "m.npz", "params contains NaN or Inf (at index 5)")


class Trap:
    """Pickles to a call that leaves a mark: proof that unpickling happened."""

    def __init__(self, mark):
        self.mark = str(mark)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.mark),))


@pytest.mark.parametrize("member", ["params", "model", "gdcore_format"])
def test_never_unpickles(tmp_path, model, params, member):
    mark = tmp_path / "unpickled"
    trap = np.empty(1, dtype=object)
    trap[0] = Trap(mark)
    write_npz(tmp_path / "m.npz", **{**members(model, params), member: trap})
    message = refused(tmp_path / "m.npz", "could not be read")
    assert "allow_pickle" in message
    assert not mark.exists()


def test_refuses_a_plain_pickle(tmp_path):
    import pickle

    mark = tmp_path / "unpickled"
    path = tmp_path / "m.npz"
    path.write_bytes(pickle.dumps(Trap(mark)))
    refused(path, "not an .npz (zip) archive")
    assert not mark.exists()


def test_refuses_every_truncation(tmp_path):
    model = gd.mlp([2, 2, 1], "tanh")
    path, cut = tmp_path / "m.npz", tmp_path / "cut.npz"
    save(path, model, gd.init(model))
    data = path.read_bytes()
    for n in range(0, len(data), 7):
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError, match="is not a gdcore model file"):
            load(cut)


@settings(max_examples=150)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                      min_size=1, max_size=3))
def test_damage_is_refused_or_harmless(tmp_path_factory, flips):
    # Either the damage hit bytes nobody reads (timestamps, padding) and the
    # result is exact, or load says the file is broken: never wrong numbers,
    # never another exception type.  The zip CRCs are what catch data damage.
    directory = tmp_path_factory.mktemp("damage")
    model = gd.mlp([3, 4, 2], "relu", loss="cross_entropy")
    params = gd.init(model, 5)
    save(directory / "m.npz", model, params)
    data = bytearray((directory / "m.npz").read_bytes())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    (directory / "m.npz").write_bytes(bytes(data))
    try:
        got_model, got_params = load(directory / "m.npz")
    except ValueError as exc:
        assert "is not a gdcore model file" in str(exc)
    else:
        assert got_model == model and same_bits(got_params, params)


@pytest.mark.parametrize("method", [12, 14, 99], ids=["bzip2", "lzma", "unknown"])
def test_refuses_unexpected_compression(tmp_path, model, params, method):
    path = tmp_path / "m.npz"
    save(path, model, params)
    data = bytearray(path.read_bytes())
    # The method field: offset 8 of each local header, 10 of each central one.
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset:at + offset + 2] = struct.pack("<H", method)
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    refused(path, "could not be read")


# Files from other tools --------------------------------------------------------------
def test_extra_members_are_ignored(tmp_path, model, params):
    write_npz(tmp_path / "m.npz", **members(model, params), note=np.array("trained 3 epochs"))
    got_model, got_params = load(tmp_path / "m.npz")
    assert got_model == model and same_bits(got_params, params)


def test_compressed_and_big_endian_files_load(tmp_path, model, params):
    swapped = params.astype(params.dtype.newbyteorder(">"))
    write_npz(tmp_path / "m.npz", compressed=True, **members(model, swapped))
    got_model, got_params = load(tmp_path / "m.npz")
    assert got_model == model
    assert got_params.dtype == params.dtype  # native order: what the kernels take
    assert same_bits(got_params, params)


# Refusals on save ----------------------------------------------------------------------
@pytest.mark.parametrize("bad_model", [None, "mlp", gd.Dense(4, 8), {"layers": []}])
def test_save_refuses_a_non_model(tmp_path, params, bad_model):
    with pytest.raises(TypeError, match="model must be a gdcore Model"):
        save(tmp_path / "m.npz", bad_model, params)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("bad, error, phrase", [
    (np.zeros(3), ValueError, "params has length 3"),
    (np.zeros((1, 67)), ValueError, "params must be 1-D"),
    (np.array(["a"] * 67), TypeError, "params must be"),
    (np.zeros(67, dtype=np.complex128), TypeError, "params must be a float32 or float64"),
    (None, TypeError, "params must"),
], ids=["short", "2-d", "strings", "complex", "none"])
def test_save_refuses_bad_params(tmp_path, model, bad, error, phrase):
    assert model.n_params == 67
    with pytest.raises(error, match=phrase):
        save(tmp_path / "m.npz", model, bad)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_save_refuses_non_finite_params(tmp_path, model, params, value):
    bad = params.copy()
    bad[2] = value
    with pytest.raises(ValueError, match=r"params contains NaN or Inf \(at index 2\)"):
        save(tmp_path / "m.npz", model, bad)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("bad_path", [None, 3, b"m.npz"])
def test_bad_path_type(model, params, bad_path):
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        save(bad_path, model, params)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        load(bad_path)


# Model.to_spec / Model.from_spec -------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_spec_round_trip_through_json(name):
    model = MODELS[name]
    spec = model.to_spec()
    assert gd.Model.from_spec(json.loads(json.dumps(spec))) == model
    assert spec["loss"] == model.loss and len(spec["layers"]) == len(model.layers)


def test_to_spec_uses_canonical_names():
    model = gd.Model([gd.Dense(2, 3, "ReLU"), gd.Dense(3, 1, "Sigmoid")], loss="log_loss")
    assert model.to_spec() == {
        "layers": [{"n_in": 2, "n_out": 3, "activation": "relu"},
                   {"n_in": 3, "n_out": 1, "activation": "sigmoid"}],
        "loss": "binary_cross_entropy",
    }


def test_to_spec_returns_a_fresh_dict():
    model = gd.mlp([2, 3, 1])
    spec = model.to_spec()
    spec["layers"][0]["n_out"] = 99
    assert model.to_spec()["layers"][0]["n_out"] == 3
    assert model.layers[0].n_out == 3


@pytest.mark.parametrize("spec, error, phrase", [
    (None, TypeError, "spec must be a dict"),
    ({"layers": "relu", "loss": "mse"}, TypeError, "spec['layers'] must be a list"),
    ({"layers": [[2, 1, "relu"]], "loss": "mse"}, TypeError, "spec['layers'][0] must be a dict"),
    ({"layers": [{"n_in": 0, "n_out": 1, "activation": "relu"}], "loss": "mse"}, ValueError,
     "spec['layers'][0]: n_in must be > 0"),
    ({"layers": [{"n_in": True, "n_out": 1, "activation": "relu"}], "loss": "mse"},
     TypeError, "n_in must be an integer"),
    ({"layers": [{"n_in": 1, "n_out": 1, "activation": "relu"}], "loss": 3}, TypeError,
     "loss must be a string"),
])
def test_from_spec_errors_name_the_part(spec, error, phrase):
    with pytest.raises(error) as info:
        gd.Model.from_spec(spec)
    assert phrase in str(info.value)
