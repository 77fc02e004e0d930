"""Saving and loading a model together with its flat parameters.

:func:`save` writes ONE ``.npz`` file (a zip archive of ``.npy`` members, as
written by :func:`numpy.savez`, uncompressed); :func:`load` reads it back.
The file can be read without gdcore, with ``np.load(path, allow_pickle=False)``.

File format, version 1
----------------------
``gdcore_format`` : 0-d unicode array
    The tag ``"gdcore-model"``: says the archive is a gdcore model file.
``format_version`` : 0-d int64 array
    ``1``.  A reader refuses versions it does not know; a writer bumps it for
    any change an older reader could misread.
``model`` : 0-d unicode array
    The model spec as JSON (:meth:`gdcore.Model.to_spec`)::

        {"layers": [{"n_in": 4, "n_out": 8, "activation": "relu"},
                    {"n_in": 8, "n_out": 3, "activation": "softmax"}],
         "loss": "cross_entropy"}

    Names are canonical (lower case, aliases resolved).
``params`` : ndarray of shape (n_params,), float32 or float64
    The flat parameters, finite, in the layout of :class:`gdcore.Model`:
    for each layer in order, its weights ``(n_in, n_out)`` row-major, then its
    bias ``(n_out,)``.

Version 1 writers write exactly these four members; readers ignore any other
member, so tools may attach metadata without breaking gdcore.

No member holds a pickled object, so loading never runs code from the file.
:func:`save` replaces the target atomically: a reader, or a crash mid-write,
sees either the old file or the new one, never a torn file.
"""

import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from . import _validate
from .model import Model, require_model

try:  # optional in CPython builds, as in zipfile itself
    from lzma import LZMAError
except ImportError:  # pragma: no cover
    LZMAError = zlib.error

FORMAT_TAG = "gdcore-model"
FORMAT_VERSION = 1
_MEMBERS = ("gdcore_format", "format_version", "model", "params")

# np.load tells a zip archive from an .npy or a pickle by these first bytes
# (a local file header, or the end record of an empty archive).
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")

# What numpy and zipfile raise for a damaged archive or member: a bad zip
# structure or CRC, a bad .npy header, a truncated member, a pickled object
# array under allow_pickle=False (ValueError); a corrupt deflate, bzip2 or lzma
# stream; an "encrypted" flag or unknown compression method (RuntimeError,
# NotImplementedError); a seek to a corrupt negative offset (OSError: the file
# is already open by then, so it cannot mean a missing file).
_READ_ERRORS = (ValueError, EOFError, OSError, RuntimeError, zipfile.BadZipFile,
                zlib.error, LZMAError)


def save(path, model, params):
    """Write ``model`` and ``params`` to ONE ``.npz`` file at exactly ``path``.

    The file is written to a temporary file in the same directory, flushed to
    disk, then renamed onto ``path``: if anything fails (including an
    interruption), ``path`` keeps its previous content, if any, and the
    temporary file is removed.  ``path`` is used as given: no ``.npz`` is
    appended.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its directory must exist.  An existing file is replaced.
    model : Model
    params : array-like of shape (model.n_params,)
        Finite values.  float32 and float64 are saved as they are; other real
        arrays are saved as float64 (the dtype the API would compute in).

    Raises
    ------
    TypeError
        If ``path`` is not a path, ``model`` not a Model or ``params`` not real.
    ValueError
        If ``params`` has the wrong length or contains NaN or Inf.
    """
    path = _path(path)
    require_model(model)
    params = _validate.params_array(model, params)  # may be the caller's array: read only
    message = _validate.nonfinite_params_message(params)
    if message:  # a saved model must be usable once loaded
        raise ValueError(message)
    members = {
        "gdcore_format": np.array(FORMAT_TAG),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "model": np.array(json.dumps(model.to_spec())),
        "params": params,
    }
    _write_atomically(path, lambda f: np.savez(f, **members))


def load(path):
    """Read a model and its parameters written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    model : Model
        Equal (``==``) to the saved model.
    params : ndarray of shape (model.n_params,)
        Bitwise equal to the saved parameters, same dtype (in native byte
        order), C-contiguous, writeable and owning its memory.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TypeError
        If ``path`` is not a path.
    ValueError
        If ``path`` is not a gdcore model file (not an ``.npz``, missing
        members, wrong tag, unknown format version, invalid spec, params that
        do not fit the spec); the message names the path and what was expected.
    """
    path = _path(path)
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError here
        if f.read(4) not in _ZIP_MAGICS:
            raise ValueError(_not_a_model(path, "it is not an .npz (zip) archive"))
        f.seek(0)
        members = _read_members(f, path)
    _check_header(members, path)
    model = _read_model(members["model"], path)
    params = _read_params(members["params"], model, path)
    return model, params


# Writing ---------------------------------------------------------------------------
def _path(path):
    """``path`` as a str, or a TypeError naming the argument."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") \
            from None
    if not isinstance(path, str):
        raise TypeError(f"path must be a str or os.PathLike giving a str, got {path!r}")
    return path


def _write_atomically(path, write):
    """Call ``write(file)`` on a temporary file, then move it onto ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp, fd = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _create_temporary(directory, name):
    """Create a new, hidden file next to the target; return ``(path, fd)``.

    Unlike ``tempfile.mkstemp`` (mode 0o600), the file is created with mode
    0o666 filtered by the umask, so the saved model gets the same permissions
    as a file written by ``np.savez``; ``O_EXCL`` keeps the creation race-free.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    name = name[:100]  # the suffix must not push a long name past the filesystem's limit
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def _fsync_directory(directory):
    """Persist the rename itself; best effort (not possible on every platform)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# Reading ---------------------------------------------------------------------------
def _not_a_model(path, reason):
    return f"{path!r} is not a gdcore model file ({FORMAT_TAG!r} .npz written by " \
           f"gdcore.persist.save): {reason}"


def _read_members(f, path):
    """Every member :func:`load` needs, read into memory while the file is open."""
    try:
        with np.load(f, allow_pickle=False) as npz:
            found = sorted(npz.files)
            members = {name: npz[name] for name in _MEMBERS if name in found}
    except _READ_ERRORS as exc:
        raise ValueError(_not_a_model(path, f"it could not be read ({exc})")) from exc
    missing = [name for name in _MEMBERS if name not in members]
    if missing:
        raise ValueError(_not_a_model(path, f"missing member(s) {missing}; found {found}"))
    return members


def _scalar(array, kinds):
    """The value of a 0-d array whose dtype kind is in ``kinds``, else None."""
    if array.shape != () or array.dtype.kind not in kinds:
        return None
    return array.item()


def _check_header(members, path):
    tag = _scalar(members["gdcore_format"], "U")
    if tag != FORMAT_TAG:
        raise ValueError(_not_a_model(
            path, f"gdcore_format must be {FORMAT_TAG!r}, got {members['gdcore_format']!r}"))
    version = _scalar(members["format_version"], "iu")
    if version is None or version < 1:
        raise ValueError(_not_a_model(
            path, f"format_version must be a positive integer, "
                  f"got {members['format_version']!r}"))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} is a gdcore model file of format version {version}, written by a "
            f"newer gdcore; this version reads format version {FORMAT_VERSION}"
        )


def _read_model(array, path):
    text = _scalar(array, "U")
    if text is None:
        raise ValueError(_not_a_model(
            path, f"model must be a 0-d unicode array holding JSON, got dtype "
                  f"{array.dtype} and shape {array.shape}"))
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(_not_a_model(path, f"model is not valid JSON ({exc})")) from None
    try:
        return Model.from_spec(spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(_not_a_model(path, f"model is not a valid spec ({exc})")) from None


def _read_params(array, model, path):
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        raise ValueError(_not_a_model(
            path, f"params must be float32 or float64, got dtype {array.dtype}"))
    if array.shape != (model.n_params,):
        raise ValueError(_not_a_model(
            path, f"params must have shape ({model.n_params},) for the saved model, "
                  f"got shape {array.shape}"))
    dtype = array.dtype.newbyteorder("=")  # files from other tools may be big-endian
    flags = array.flags
    if not (array.dtype == dtype and flags.c_contiguous and flags.writeable
            and flags.owndata):
        array = np.array(array, dtype=dtype, order="C", copy=True)
    message = _validate.nonfinite_params_message(array)
    if message:  # save never writes one, so the file was made or damaged elsewhere
        raise ValueError(_not_a_model(path, message))
    return array
