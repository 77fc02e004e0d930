"""Saving and loading a model with its parameters (gdcore.persist)."""

import io
import json
import os
import pathlib
import stat
import struct
import subprocess
import sys
import tracemalloc
import types
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gdcore as gd
from gdcore import codes, persist
from gdcore.persist import load, save

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

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


# Permissions and symbolic links --------------------------------------------------------
posix = pytest.mark.skipif(os.name != "posix" or not hasattr(os, "fchmod"),
                           reason="POSIX permission bits and symbolic links")


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@posix
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o444])
def test_replacing_a_file_keeps_its_permissions(tmp_path, monkeypatch, model, params, mode):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    savez, seen = np.savez, []

    def recording(file, **arrays):  # what anyone could read while the data is written
        seen.append(stat.S_IMODE(os.fstat(file.fileno()).st_mode))
        savez(file, **arrays)

    monkeypatch.setattr(np, "savez", recording)
    old = os.umask(0o022)
    try:
        save(path, model, params)
    finally:
        os.umask(old)
    assert mode_of(path) == mode
    assert seen == [mode]  # the temporary was never more readable than the file
    assert load(path)[0] == model


@posix
@pytest.mark.parametrize("kind", ["absolute", "relative", "chain", "dangling"])
def test_saving_through_a_symbolic_link_replaces_its_target(tmp_path, model, params, kind):
    store = tmp_path / "store"
    store.mkdir()
    target = store / "m.npz"
    if kind != "dangling":
        old = gd.mlp([3, 1])
        save(target, old, gd.init(old))
        os.chmod(target, 0o600)
    link = tmp_path / "link.npz"
    if kind == "relative":
        link.symlink_to(os.path.join("store", "m.npz"))
    elif kind == "chain":
        (tmp_path / "hop.npz").symlink_to(target)
        link.symlink_to(tmp_path / "hop.npz")
    else:
        link.symlink_to(target)
    pointing = os.readlink(link)
    save(link, model, params)
    assert link.is_symlink() and os.readlink(link) == pointing
    assert load(target)[0] == model and same_bits(load(link)[1], params)
    assert listing(store) == ["m.npz"]  # the temporary was beside the target, and is gone
    assert not [name for name in listing(tmp_path) if name.startswith(".")]
    if kind != "dangling":
        assert mode_of(target) == 0o600


@posix
def test_a_symbolic_link_loop_is_refused(tmp_path, model, params):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="symbolic links") as info:
        save(tmp_path / "a", model, params)
    assert info.value.filename == str(tmp_path / "a")
    assert listing(tmp_path) == ["a", "b"] and (tmp_path / "a").is_symlink()


def test_a_long_multibyte_name(tmp_path, model, params):
    name = "\N{GRINNING FACE}" * 60 + ".npz"  # 244 bytes: the name fits, so must its temporary
    save(tmp_path / name, model, params)
    assert listing(tmp_path) == [name]
    assert load(tmp_path / name)[0] == model


def test_missing_directory_names_the_path(tmp_path, model, params):
    target = tmp_path / "nowhere" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        save(target, model, params)
    message = str(info.value)
    assert info.value.filename == str(target)
    assert repr(str(target)) in message, message
    assert repr(os.path.realpath(tmp_path / "nowhere")) in message and "does not exist" in message
    assert "tmp'" not in message  # no temporary's name
    assert listing(tmp_path) == []


def test_saving_onto_a_directory_names_the_path(tmp_path, model, params):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        save(tmp_path / "m.npz", model, params)
    assert info.value.filename == str(tmp_path / "m.npz")
    assert "gdcore-tmp" not in str(info.value)
    assert listing(tmp_path) == ["m.npz"]


def test_a_file_in_the_path_is_not_a_directory(tmp_path, model, params):
    (tmp_path / "notes").write_text("x")
    target = tmp_path / "notes" / "m.npz"
    with pytest.raises(NotADirectoryError) as info:
        save(target, model, params)
    assert info.value.filename == str(target)
    assert "is not a directory" in str(info.value) and "tmp'" not in str(info.value)
    assert listing(tmp_path) == ["notes"]


# Temporaries left by a killed save -----------------------------------------------------
locks = pytest.mark.skipif(fcntl is None, reason="stale temporaries are found by flock")


def temporaries(directory, name="m.npz"):
    return [entry for entry in listing(directory) if entry.startswith(f".{name}.")]


WRITER = """
import sys, time
import numpy as np
import gdcore as gd

def stalled(file, **arrays):  # a save that is slow to write, then killed
    file.write(b"PK\\x03\\x04" + bytes(1 << 16))
    file.flush()
    print("writing", flush=True)
    time.sleep(600)

np.savez = stalled
model = gd.mlp([3, 1])
gd.save(sys.argv[1], model, np.zeros(model.n_params))
"""


@locks
def test_the_next_save_removes_what_a_killed_save_left(tmp_path):
    model = MODELS["relu-softmax-ce"]
    params = gd.init(model, seed=7)
    path = tmp_path / "m.npz"
    (tmp_path / "notes.txt").write_text("keep")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        live = temporaries(tmp_path)
        assert len(live) == 1
        save(path, model, params)  # the other save is alive: its temporary stays
        assert temporaries(tmp_path) == live
    finally:
        writer.kill()  # SIGKILL: no cleanup runs in the writer
        writer.wait()
        writer.stdout.close()
    assert temporaries(tmp_path) == live and load(path)[0] == model
    save(path, model, params)
    assert listing(tmp_path) == ["m.npz", "notes.txt"]


@locks
def test_only_stale_temporaries_of_the_target_are_removed(tmp_path, model, params):
    stale = ".m.npz.0123456789ab.gdcore-tmp"
    live = ".m.npz.fedcba987654.gdcore-tmp"
    others = [".m.npz.0123456789ab.tmp", ".m.npz.0123456789AB.gdcore-tmp",
              ".m.npz.0123456789abc.gdcore-tmp", ".n.npz.0123456789ab.gdcore-tmp",
              "m.npz.0123456789ab.gdcore-tmp", ".m.npz.0123456789ab.gdcore-tmp.bak",
              "..m.npz.0123456789ab.gdcore-tmp", "notes.txt"]
    for name in [stale, live, *others]:
        (tmp_path / name).write_bytes(b"PK\x03\x04")
    (tmp_path / ".m.npz.aaaaaaaaaaaa.gdcore-tmp").symlink_to(tmp_path / "notes.txt")
    (tmp_path / ".m.npz.bbbbbbbbbbbb.gdcore-tmp").mkdir()
    others += [".m.npz.aaaaaaaaaaaa.gdcore-tmp", ".m.npz.bbbbbbbbbbbb.gdcore-tmp"]
    with open(tmp_path / live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a save in progress holds its temporary
        save(tmp_path / "m.npz", model, params)
    assert listing(tmp_path) == sorted(["m.npz", live, *others])
    assert (tmp_path / "notes.txt").read_bytes() == b"PK\x03\x04"


@locks
def test_stale_temporaries_of_a_long_name_are_removed(tmp_path, model, params):
    name = "w" * 200 + ".npz"
    stem = persist._temp_stem(name)
    assert len(stem) < 100
    (tmp_path / f".{stem}.0123456789ab.gdcore-tmp").write_bytes(b"")
    save(tmp_path / name, model, params)
    assert listing(tmp_path) == [name]


@locks
@pytest.mark.parametrize("locking", ["flock", "per-process"])
def test_a_save_during_a_save_keeps_the_live_temporary(tmp_path, monkeypatch, model, params,
                                                       locking):
    if locking == "per-process":  # as flock over NFS: no conflict within one process
        monkeypatch.setattr(persist, "fcntl", types.SimpleNamespace(
            LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, flock=lambda fd, operation: None))
    path = tmp_path / "m.npz"
    savez, seen = np.savez, []
    inner = gd.mlp([3, 1])

    def outer(file, **arrays):
        savez(file, **arrays)
        if not seen:  # the outer save: another save to the same path, mid-write
            seen.append(temporaries(tmp_path))
            save(path, inner, gd.init(inner))
            seen.append(temporaries(tmp_path))

    monkeypatch.setattr(np, "savez", outer)
    save(path, model, params)
    assert len(seen[0]) == 1 and seen[1] == seen[0]
    assert listing(tmp_path) == ["m.npz"] and load(path)[0] == model


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


# Hostile files -------------------------------------------------------------------------
# Archives assembled byte by byte, so that a member's declared sizes, CRC and
# content can disagree the way a crafted file makes them disagree.
STORED, DEFLATED = 0, 8


def npy(shape, descr="<f8", data=b""):
    """A .npy member: a version 1.0 header claiming ``shape``, then ``data``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue() + data


def npy_of(array):
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def zeros_stream(n):
    """``n`` zero bytes, yielded a megabyte at a time (the test never holds them)."""
    while n > 0:
        yield bytes(min(n, 1 << 20))
        n -= 1 << 20


def zip_bytes(entries):
    """A zip archive of ``(name, pieces, method, declared_size)`` entries.

    ``pieces`` is an iterable of bytes (the member's content, compressed here
    if ``method`` is DEFLATED); ``declared_size`` (None: the true size) goes
    into the headers as the uncompressed size, through a zip64 field when it
    does not fit in 32 bits.  The CRC is that of the true content.
    """
    out, central = bytearray(), bytearray()
    for name, pieces, method, declared in entries:
        if isinstance(pieces, bytes):
            pieces = [pieces]
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        body, crc, size = bytearray(), 0, 0
        for piece in pieces:
            crc, size = zlib.crc32(piece, crc), size + len(piece)
            body += deflate.compress(piece) if method == DEFLATED else piece
        if method == DEFLATED:
            body += deflate.flush()
        size = size if declared is None else declared
        zip64 = size >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(body)) if zip64 else b""
        size32, body32 = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (size, len(body))
        version, raw, offset = (45 if zip64 else 20), name.encode(), len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", version, 0, method, 0, 0x21, crc,
                           body32, size32, len(raw), len(extra)) + raw + extra + body
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", version, version, 0, method, 0,
                               0x21, crc, body32, size32, len(raw), len(extra), 0, 0, 0, 0,
                               offset) + raw + extra
    n = len(entries)
    return bytes(out + central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n,
                                              len(central), len(out), 0))


def valid_entries(model, params, replace=()):
    """The entries of a valid file, with those of ``replace`` (a dict from
    member name to entry) in place of the valid ones."""
    entries = {name: (name + ".npy", npy_of(array), STORED, None)
               for name, array in members(model, params).items()}
    entries.update(replace)
    return list(entries.values())


def test_the_assembled_archive_is_valid(tmp_path, model, params):
    # The helpers above make files gdcore reads: the refusals below are the
    # hostile parts' doing, not the assembly's.
    for method in (STORED, DEFLATED):
        entries = [(name, pieces, method, size)
                   for name, pieces, _, size in valid_entries(model, params)]
        (tmp_path / "m.npz").write_bytes(zip_bytes(entries))
        got_model, got_params = load(tmp_path / "m.npz")
        assert got_model == model and same_bits(got_params, params)


@pytest.mark.parametrize("raw", [("gdcore_format", "format_version", "model", "params"),
                                 ("params",), ("model",)], ids=["all", "params", "model"])
def test_refuses_members_that_are_not_npy(tmp_path, model, params, raw):
    # Members named like gdcore's but holding raw bytes: np.load hands them
    # back as bytes, which once gave an AttributeError.
    content = {"gdcore_format": b"gdcore-model", "format_version": b"1",
               "model": json.dumps(model.to_spec()).encode(), "params": params.tobytes()}
    replace = {name: (name, content[name], STORED, None) for name in raw}
    (tmp_path / "m.npz").write_bytes(zip_bytes(valid_entries(model, params, replace)))
    refused(tmp_path / "m.npz", f"member {raw[0]!r} is not a .npy array")


def test_refuses_a_header_claiming_more_than_the_model(tmp_path, model, params):
    # 1.6 KB that once made np.load allocate 10**13 float64 (MemoryError).
    huge = ("params.npy", npy((10**13,)), STORED, None)
    path = tmp_path / "m.npz"
    path.write_bytes(zip_bytes(valid_entries(model, params, {"params": huge})))
    assert path.stat().st_size < 2000
    refused(path, f"params must have shape ({model.n_params},)", "(10000000000000,)")


@pytest.mark.parametrize("method", [STORED, DEFLATED], ids=["stored", "deflated"])
def test_refuses_sizes_the_file_cannot_hold(tmp_path, method):
    # The spec, the header and the zip directory all agree on 10**13 params:
    # only the file's size shows the claim is false.
    model = gd.Model([gd.Dense(10**7, 10**6)])
    header = npy((model.n_params,))
    lie = ("params.npy", header, method, len(header) + 8 * model.n_params)
    path = tmp_path / "m.npz"
    path.write_bytes(zip_bytes(valid_entries(model, np.zeros(3), {"params": lie})))
    refused(path, "member 'params'", "compressed bytes")


@pytest.mark.parametrize("change", [-8, 8, 2**40], ids=["smaller", "larger", "huge"])
@pytest.mark.parametrize("method", [STORED, DEFLATED], ids=["stored", "deflated"])
def test_refuses_a_declared_size_that_disagrees_with_the_header(tmp_path, model, params,
                                                                 change, method):
    content = npy_of(params)
    wrong = ("params.npy", content, method, len(content) + change)
    (tmp_path / "m.npz").write_bytes(zip_bytes(valid_entries(model, params, {"params": wrong})))
    if change < 0:  # zipfile reads a small member whole, and its CRC shows the cut
        refused(tmp_path / "m.npz", "could not be read")
    else:
        refused(tmp_path / "m.npz", "member 'params' is", "bytes in the zip directory",
                f"header describes {len(content)} bytes")


def peak_memory_of(function):
    """The peak of Python and NumPy allocations while ``function()`` runs."""
    tracemalloc.start()
    try:
        function()
    except ValueError as exc:
        error = exc
    else:
        error = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, error


BOMB = 40 * 2**20  # bytes of zeros behind about 40 KB of deflate


@pytest.mark.parametrize("bomb", ["params-shape", "model-size", "params-crc"])
def test_a_deflate_bomb_is_refused_without_inflating_it(tmp_path, model, params, bomb):
    n = BOMB // 8
    if bomb == "params-shape":  # a consistent member of the wrong shape
        replace = {"params": ("params.npy", [npy((n,))] + list(zeros_stream(BOMB)), DEFLATED,
                              None)}
        phrases = [f"params must have shape ({model.n_params},)"]
    elif bomb == "model-size":  # a 10-million-character spec (40 MB)
        replace = {"model": ("model.npy", [npy((), "<U%d" % (BOMB // 4))]
                             + list(zeros_stream(BOMB)), DEFLATED, None)}
        phrases = ["member 'model' holds 41943040 bytes of data"]
    else:  # a params member that fits the model, then keeps inflating
        header, right = npy((model.n_params,)), model.n_params * 8
        replace = {"params": ("params.npy", [header] + list(zeros_stream(BOMB)), DEFLATED,
                              len(header) + right)}
        phrases = ["could not be read"]
    path = tmp_path / "m.npz"
    path.write_bytes(zip_bytes(valid_entries(model, params, replace)))
    assert path.stat().st_size < 100_000
    peak, error = peak_memory_of(lambda: load(path))
    assert isinstance(error, ValueError)
    assert repr(str(path)) in str(error)
    for phrase in phrases:
        assert phrase in str(error)
    assert peak < 4 * 2**20, f"load held {peak / 2**20:.1f} MiB to refuse a {BOMB >> 20} MiB bomb"


def test_load_reads_a_large_member_in_bounded_chunks(tmp_path):
    # A valid file of 5 million zero params (deflated): what load holds beside
    # the result stays small.
    model = gd.Model([gd.Dense(5000, 999)])
    n = model.n_params
    entries = valid_entries(model, np.zeros(3), {"params": (
        "params.npy", [npy((n,))] + list(zeros_stream(8 * n)), DEFLATED, None)})
    (tmp_path / "m.npz").write_bytes(zip_bytes(entries))
    holder = []
    peak, error = peak_memory_of(lambda: holder.append(load(tmp_path / "m.npz")))
    assert error is None
    got_model, got_params = holder[0]
    assert got_model == model and got_params.shape == (n,) and not got_params.any()
    assert peak < 8 * n + 4 * 2**20


@pytest.mark.parametrize("name, descr, shape", [
    ("gdcore_format", "<U2000", ()),
    ("format_version", "<i8", (1000,)),
    ("model", "<U%d" % (2**22 + 1), ()),
], ids=["tag", "version", "model"])
def test_small_members_are_capped(tmp_path, model, params, name, descr, shape):
    big = np.zeros(shape, descr)
    entries = valid_entries(model, params, {name: (name + ".npy", npy_of(big), DEFLATED, None)})
    (tmp_path / "m.npz").write_bytes(zip_bytes(entries))
    refused(tmp_path / "m.npz", f"member {name!r} holds {big.nbytes} bytes of data")


def test_save_refuses_a_spec_that_load_would_refuse(tmp_path, monkeypatch, model, params):
    monkeypatch.setattr(persist, "_MAX_SPEC_CHARS", 100)
    with pytest.raises(ValueError, match="more than a gdcore file holds"):
        save(tmp_path / "m.npz", model, params)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("version", [(3, 0), (9, 9)])
def test_refuses_unknown_npy_versions(tmp_path, model, params, version):
    content = bytearray(npy_of(params))
    content[6:8] = bytes(version)
    entries = valid_entries(model, params, {"params": ("params.npy", bytes(content), STORED,
                                                       None)})
    (tmp_path / "m.npz").write_bytes(zip_bytes(entries))
    refused(tmp_path / "m.npz", f"member 'params' is a .npy of version {version}")


def test_refuses_a_huge_header_length(tmp_path, model, params):
    content = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31)  # version 2.0: 4-byte length
    entries = valid_entries(model, params, {"params": ("params.npy", content, STORED, None)})
    (tmp_path / "m.npz").write_bytes(zip_bytes(entries))
    refused(tmp_path / "m.npz", "member 'params' has a .npy header of 2147483648 bytes")


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
