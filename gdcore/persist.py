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
    The model spec as JSON (:meth:`gdcore.Model.to_spec`), at most
    ``2**22`` characters::

        {"layers": [{"n_in": 4, "n_out": 8, "activation": "relu"},
                    {"n_in": 8, "n_out": 3, "activation": "softmax"}],
         "loss": "cross_entropy"}

    Names are canonical (lower case, aliases resolved).
``params`` : ndarray of shape (n_params,), float32 or float64
    The flat parameters, finite, in the layout of :class:`gdcore.Model`:
    for each layer in order, its weights ``(n_in, n_out)`` row-major, then its
    bias ``(n_out,)``.

Version 1 writers write exactly these four members; readers ignore any other
member, so tools may attach metadata without breaking gdcore.  Members are
stored or deflated (``np.savez_compressed`` files load too), each a ``.npy``
of version 1.0 or 2.0.

No member holds a pickled object, so loading never runs code from the file.
Loading reads each ``.npy`` header and checks it (dtype, shape against the
saved model, size in the zip directory, size the compressed bytes can hold)
before reading any data, and never reads more than the header describes: a
foreign or hostile file is refused before any large allocation.
:func:`save` replaces the target atomically: a reader, or a crash mid-write,
sees either the old file or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import struct
import threading
import zipfile
import zlib
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _validate
from ._typing import FloatArray
from .model import Model, require_model

try:  # optional in CPython builds, as in zipfile itself
    from lzma import LZMAError
except ImportError:  # pragma: no cover
    LZMAError = zlib.error  # type: ignore[misc, assignment]

try:  # POSIX: a temporary's lock tells a live save from a dead one
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

FORMAT_TAG = "gdcore-model"
FORMAT_VERSION = 1
_MEMBERS = ("gdcore_format", "format_version", "model", "params")

# np.load tells a zip archive from an .npy or a pickle by these first bytes
# (a local file header, or the end record of an empty archive).
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")

# What numpy and zipfile raise for a damaged archive or member: a bad zip
# structure or CRC, a bad .npy header, a truncated member (ValueError); a
# corrupt deflate stream; an "encrypted" flag (RuntimeError); a seek to a
# corrupt negative offset (OSError: the file is already open by then, so it
# cannot mean a missing file).
_READ_ERRORS = (ValueError, EOFError, OSError, RuntimeError, zipfile.BadZipFile,
                zlib.error, LZMAError)

# Bounds that let load refuse a file before allocating what it claims.
_MAX_SPEC_CHARS = 1 << 22  # about 70,000 layers of JSON; save refuses longer specs
_MAX_DATA = {  # bytes of data a small member may hold (unicode is 4 bytes a character)
    "gdcore_format": 1 << 12,
    "format_version": 1 << 12,
    "model": 4 * _MAX_SPEC_CHARS,
}
_MAX_NPY_HEADER = 10000  # numpy's own limit for headers it parses safely
_NPY_MAGIC = b"\x93NUMPY"
_NPY_LENGTH_FORMATS = {(1, 0): "<H", (2, 0): "<I"}  # the header-length field per version
# Deflate codes at most 258 bytes in 2 bits (1032:1, plus one byte's worth for
# the stream's end): a member declaring more than its compressed size can
# hold is lying about its size.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 20  # bytes read at a time: bounds what a read holds beside the result


def save(path: str | os.PathLike, model: Model, params: ArrayLike) -> None:
    """Write ``model`` and ``params`` to ONE ``.npz`` file at exactly ``path``.

    The file is written to a hidden temporary file beside the target
    (``.<name>.<12 hex digits>.gdcore-tmp``), flushed to disk, then renamed
    onto the target: if anything fails (including an interruption), the target
    keeps its previous content, if any, and the temporary file is removed.
    ``path`` is used as given: no ``.npz`` is appended.

    A symbolic link is written through: its target file is replaced (the
    temporary is written beside it) and the link stays.  An existing file
    keeps its permission bits; a new file gets those of ``open()`` (0o666
    less the umask).  The owner and hard links of an existing file are not
    kept: the file is a new one.

    A save whose process is killed (SIGKILL, power loss) cannot remove its
    temporary.  On POSIX, each save holds a lock on its temporary until the
    rename, and the next save to the same target deletes that target's
    temporaries whose lock nobody holds (their writer is dead); a temporary
    that another save, in this process or another, is still writing is left
    alone.  Other files are never touched.  On platforms without ``fcntl``
    (Windows) such leftovers stay until removed by hand.

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
        If ``params`` has the wrong length or contains NaN or Inf, or the
        model's spec is longer than a file may hold (2**22 characters).
    FileNotFoundError
        If the directory of ``path`` does not exist (the message names
        ``path`` and the directory).
    OSError
        If the file cannot be written (NotADirectoryError and PermissionError
        from creating the temporary also name ``path``, not the temporary).
    """
    path = _path(path)
    require_model(model)
    params = _validate.params_array(model, params)  # may be the caller's array: read only
    message = _validate.nonfinite_params_message(params)
    if message:  # a saved model must be usable once loaded
        raise ValueError(message)
    spec = json.dumps(model.to_spec())
    if len(spec) > _MAX_SPEC_CHARS:  # load would refuse it
        raise ValueError(f"model has {len(model.layers)} layers: its spec is {len(spec)} "
                         f"characters of JSON, more than a gdcore file holds "
                         f"({_MAX_SPEC_CHARS})")
    members: dict[str, Any] = {
        "gdcore_format": np.array(FORMAT_TAG),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "model": np.array(spec),
        "params": params,
    }
    _write_atomically(path, lambda f: np.savez(f, **members))


def load(path: str | os.PathLike) -> tuple[Model, FloatArray]:
    """Read a model and its parameters written by :func:`save`.

    Memory: each member's ``.npy`` header is checked before its data is read,
    so a file is refused before any allocation larger than the params of the
    model it holds; that size is also bounded by what the file's compressed
    bytes can hold (about 1,000 times the file size).

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
        members, members that are not ``.npy`` arrays or whose sizes disagree
        with their headers, wrong tag, unknown format version, invalid spec,
        params that do not fit the spec); the message names the path and what
        was expected.
    """
    path = _path(path)
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError here
        if f.read(4) not in _ZIP_MAGICS:
            raise ValueError(_not_a_model(path, "it is not an .npz (zip) archive"))
        f.seek(0)
        with _reading(path):
            archive = zipfile.ZipFile(f)
        with archive:
            members = _Members(archive, path, os.fstat(f.fileno()).st_size)
            _check_header(members.small("gdcore_format"), members.small("format_version"),
                          path)
            model = _read_model(members.small("model"), path)
            params = _read_params(members, model, path)
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
    """Call ``write(file)`` on a temporary file, then move it onto ``path``'s target."""
    target = _resolve(path)
    if os.path.isdir(target):  # checked first: os.replace would name the temporary
        raise IsADirectoryError(errno.EISDIR, "cannot save: the path is a directory", path)
    directory, name = os.path.split(target)
    mode = _existing_mode(target)
    _remove_stale_temporaries(directory, name)
    tmp, fd = _create_temporary(directory, name, mode, path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
            if fcntl is not None:  # rename while the lock still says "being written"
                os.replace(tmp, target)
        if fcntl is None:  # Windows cannot rename an open file
            os.replace(tmp, target)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary behind
        _unlink_quietly(tmp)
        raise
    finally:
        _forget(tmp)  # renamed or removed: no cleaner can mistake it any more
    _fsync_directory(directory)


def _resolve(path):
    """The file a save to ``path`` replaces: symbolic links followed, absolute."""
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath stops at a link it cannot resolve: a loop
        raise OSError(errno.ELOOP, "Too many levels of symbolic links", path)
    return target


def _existing_mode(target):
    """The permission bits of the regular file at ``target``, or None."""
    try:
        info = os.stat(target)
    except OSError:  # no file yet, or one the save will fail to replace anyway
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


# Temporaries ----------------------------------------------------------------------
# Temporaries this process is writing.  Over NFS, Linux emulates flock with
# POSIX locks, which never conflict within one process: this set keeps one
# thread's save from deleting another thread's temporary there.
_WRITING: set = set()
_WRITING_LOCK = threading.Lock()
_TEMP_SUFFIX = ".gdcore-tmp"


def _temp_stem(name):
    """The part of a temporary's name that names its target, short enough for
    any filesystem (a name and its suffix must fit in 255 bytes)."""
    encoded = os.fsencode(name)
    if len(encoded) <= 100:
        return name
    return f"{name[:24]}~{hashlib.sha256(encoded).hexdigest()[:16]}"


def _temp_pattern(name):
    """Matches exactly the names of temporaries that a save to ``name`` creates."""
    return re.compile(re.escape(f".{_temp_stem(name)}.") + "[0-9a-f]{12}"
                      + re.escape(_TEMP_SUFFIX) + r"\Z")


def _create_temporary(directory, name, mode, path):
    """Create a new, hidden, locked file next to the target; return ``(path, fd)``.

    Unlike ``tempfile.mkstemp`` (mode 0o600), a new target's temporary is
    created with mode 0o666 filtered by the umask, as ``open()`` would create
    the target; when replacing a file of mode ``mode``, it is created with no
    more than ``mode`` and then given exactly ``mode``, so its data is never
    readable by more users than the file it replaces.  ``O_EXCL`` keeps the
    creation race-free.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    stem = _temp_stem(name)
    for _ in range(100):
        tmp = os.path.join(directory, f".{stem}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")
        with _WRITING_LOCK:  # before the file exists, so a cleaner never sees it unlisted
            _WRITING.add(tmp)
        try:
            fd = os.open(tmp, flags, 0o666 if mode is None else mode & 0o777)
        except FileExistsError:
            _forget(tmp)
            continue
        except OSError as exc:
            _forget(tmp)
            raise _save_error(exc, path, directory) from None
        try:
            if mode is not None:
                _chmod(fd, tmp, mode)
            if _lock(fd, tmp):
                return tmp, fd
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            _forget(tmp)
            raise
        os.close(fd)  # a cleaner deleted it before the lock was taken: try a new name
        _forget(tmp)
    raise FileExistsError(f"could not create a temporary file in {directory!r} to save "
                          f"{path!r}")


def _forget(tmp):
    with _WRITING_LOCK:
        _WRITING.discard(tmp)


def _unlink_quietly(file):
    try:
        os.unlink(file)
    except OSError:
        pass


def _save_error(exc, path, directory):
    """``exc`` (from creating the temporary) reworded to name the user's ``path``."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        reason = f"cannot save: the directory {directory!r} does not exist"
        if exc.errno == errno.ENOTDIR:
            reason = f"cannot save: {directory!r} is not a directory"
    else:
        reason = f"{exc.strerror} (creating a temporary file in {directory!r})"
    return type(exc)(exc.errno, reason, path)


def _chmod(fd, tmp, mode):
    """Give the temporary exactly ``mode``; best effort (the umask may only
    have removed bits, never added any)."""
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:  # pragma: no cover (Windows)
            os.chmod(tmp, mode)
    except OSError:
        pass


def _lock(fd, tmp):
    """Take the lock that marks ``tmp`` as being written; False if a cleaner
    deleted ``tmp`` between its creation and the lock."""
    if fcntl is None:  # pragma: no cover (Windows)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner inspects it
    except OSError:  # no locks on this filesystem: cleaners cannot lock it either
        return True
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(tmp))
    except FileNotFoundError:
        return False


def _remove_stale_temporaries(directory, name):
    """Delete temporaries of earlier saves to ``name`` whose writer is dead.

    A writer holds an exclusive flock on its temporary until the rename, and
    the kernel releases it when the writer's process dies; a temporary nobody
    holds a lock on, and that no thread of this process is writing, is
    therefore a leftover.  Errors are ignored: the save itself reports a
    missing or unwritable directory.
    """
    if fcntl is None:  # pragma: no cover (Windows)
        return
    pattern = _temp_pattern(name)
    try:
        with os.scandir(directory) as entries:
            names = [entry.name for entry in entries if pattern.match(entry.name)]
    except OSError:
        return
    for candidate in names:
        candidate = os.path.join(directory, candidate)
        with _WRITING_LOCK:
            if candidate in _WRITING:
                continue
        _remove_if_stale(candidate)


def _remove_if_stale(candidate):
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(candidate, flags)
    except OSError:  # gone, a symbolic link, or not ours to read: leave it
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live save holds it (or this filesystem has no locks)
            return
        # Still the same file under that name (not renamed onto its target since)?
        if os.path.samestat(info, os.lstat(candidate)):
            os.unlink(candidate)
    except OSError:
        pass
    finally:
        os.close(fd)


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


@contextlib.contextmanager
def _reading(path):
    """Turn what zipfile and numpy raise for a damaged file into a ValueError
    naming ``path``."""
    try:
        yield
    except _READ_ERRORS as exc:
        detail = str(exc) or type(exc).__name__  # EOFError often says nothing
        raise ValueError(_not_a_model(path, f"it could not be read ({detail})")) from exc


class _Members:
    """The members :func:`load` needs, read from an open archive one at a time.

    Every member must be a ``.npy`` (stored or deflated) whose header
    describes exactly the size the zip directory declares; data are read only
    after the header has been checked, and never past its declared size.
    """

    def __init__(self, archive, path, file_size):
        self.archive, self.path, self.file_size = archive, path, file_size
        names = set(archive.namelist())
        self.infos = {}
        for name in _MEMBERS:  # the exact name first, as np.load looks them up
            for member in (name, name + ".npy"):
                if member in names:
                    self.infos[name] = archive.getinfo(member)
                    break
        missing = [name for name in _MEMBERS if name not in self.infos]
        if missing:
            found = sorted(n[:-4] if n.endswith(".npy") else n for n in names)
            raise ValueError(_not_a_model(path, f"missing member(s) {missing}; found {found}"))

    def refuse(self, reason):
        return ValueError(_not_a_model(self.path, reason))

    def small(self, name):
        """The whole array of member ``name``, of at most ``_MAX_DATA[name]`` bytes."""
        with self.open(name) as member:
            if member.nbytes > _MAX_DATA[name]:
                raise self.refuse(f"member {name!r} holds {member.nbytes} bytes of data; a "
                                  f"gdcore file's {name!r} holds at most {_MAX_DATA[name]}")
            member.check_sizes()
            data = bytearray(member.nbytes)
            member.read_into(memoryview(data))
        if member.nbytes == 0:
            return np.zeros(member.shape, member.dtype)
        array = np.frombuffer(data, dtype=member.dtype)
        if member.fortran_order:
            return array.reshape(member.shape[::-1]).T
        return array.reshape(member.shape)

    def open(self, name):
        """Member ``name`` (a :class:`_Member`), its header read and checked, its
        data not yet read."""
        info = self.infos[name]
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.refuse(
                f"it could not be read (member {name!r} is compressed with method "
                f"{info.compress_type}; .npz members are stored (0) or deflated (8))")
        with _reading(self.path):
            stream = self.archive.open(info)
        try:
            return _Member(self, name, info, stream, *self.header(stream, name))
        except BaseException:
            stream.close()
            raise

    def header(self, stream, name):
        """``(shape, fortran_order, dtype, header size in bytes)`` of a .npy stream."""
        start = self.read(stream, 8, name, exact=False)
        if start[:6] != _NPY_MAGIC:
            raise self.refuse(f"member {name!r} is not a .npy array (it does not start "
                              f"with the .npy magic string)")
        if len(start) < 8:
            raise self.refuse(f"it could not be read (member {name!r} ends after "
                              f"{len(start)} bytes, inside its .npy header)")
        version = (start[6], start[7])
        length_format = _NPY_LENGTH_FORMATS.get(version)
        if length_format is None:
            raise self.refuse(f"member {name!r} is a .npy of version {version}; gdcore "
                              f"reads versions 1.0 and 2.0")
        length_field = self.read(stream, struct.calcsize(length_format), name)
        (length,) = struct.unpack(length_format, length_field)
        if length > _MAX_NPY_HEADER:
            raise self.refuse(f"member {name!r} has a .npy header of {length} bytes; at "
                              f"most {_MAX_NPY_HEADER} expected")
        header = self.read(stream, length, name)
        parse = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                 else np.lib.format.read_array_header_2_0)
        try:
            shape, fortran_order, dtype = parse(io.BytesIO(length_field + header),
                                                max_header_size=_MAX_NPY_HEADER)
        except (ValueError, TypeError, SyntaxError, RecursionError) as exc:
            raise self.refuse(f"member {name!r} has an invalid .npy header ({exc})") \
                from None
        if any(n < 0 for n in shape):
            raise self.refuse(f"member {name!r} has a .npy header with a negative shape "
                              f"{shape}")
        if dtype.hasobject:
            raise self.refuse(f"it could not be read (member {name!r} holds Python "
                              f"objects, which only np.load(allow_pickle=True) would "
                              f"unpickle; gdcore never does)")
        if dtype.subdtype is not None:
            raise self.refuse(f"member {name!r} has the subarray dtype {dtype}; gdcore "
                              f"members are plain arrays")
        return shape, fortran_order, dtype, 8 + len(length_field) + length

    def check_sizes(self, info, name, expected):
        """Refuse a member whose declared sizes disagree with its header or with
        what its compressed bytes in the file can hold."""
        if info.file_size != expected:
            raise self.refuse(f"member {name!r} is {info.file_size} bytes in the zip "
                              f"directory, but its .npy header describes {expected} bytes")
        if info.header_offset + info.compress_size > self.file_size:
            raise self.refuse(f"member {name!r} claims {info.compress_size} compressed "
                              f"bytes at offset {info.header_offset}, past the end of the "
                              f"{self.file_size}-byte file")
        if info.compress_type == zipfile.ZIP_STORED:
            holds = info.compress_size
        else:
            holds = _DEFLATE_MAX_RATIO * (info.compress_size + 1)
        if info.file_size > holds:
            raise self.refuse(f"member {name!r} declares {info.file_size} bytes, more than "
                              f"its {info.compress_size} compressed bytes can hold")

    def read(self, stream, n, name, exact=True):
        """``n`` bytes of ``stream`` (fewer only if ``exact`` is False)."""
        data = bytearray(n)
        got = self.read_into(stream, memoryview(data), name, exact)
        return bytes(data[:got])

    def read_into(self, stream, buffer, name, exact=True):
        """Fill ``buffer`` (a byte memoryview) from ``stream``, a chunk at a time."""
        got, n = 0, len(buffer)
        with _reading(self.path):  # a bad CRC shows when the member's end is read
            while got < n:
                chunk = stream.read(min(n - got, _CHUNK))
                if not chunk:
                    break
                buffer[got:got + len(chunk)] = chunk
                got += len(chunk)
        if exact and got < n:
            raise self.refuse(f"it could not be read (member {name!r} ends after "
                              f"{got} of {n} bytes)")
        return got


class _Member:
    """One open ``.npy`` member: its header, and its data on request.

    Attributes ``shape``, ``fortran_order`` and ``dtype`` come from the
    header; ``nbytes`` is the size of the data they describe.  Used as a
    context manager, it closes its stream.
    """

    def __init__(self, members, name, info, stream, shape, fortran_order, dtype,
                 header_size):
        self.members, self.name, self.info, self.stream = members, name, info, stream
        self.shape, self.fortran_order, self.dtype = shape, fortran_order, dtype
        self.header_size = header_size
        self.nbytes = math.prod(shape) * dtype.itemsize
        self.sizes_checked = False

    def check_sizes(self):
        """Refuse the member unless its declared sizes agree with its header and
        the file: call before allocating ``nbytes``."""
        self.members.check_sizes(self.info, self.name, self.header_size + self.nbytes)
        self.sizes_checked = True

    def read_into(self, buffer):
        """Fill ``buffer`` (a byte memoryview of ``nbytes``) with the data; never
        reads past the declared sizes."""
        if not self.sizes_checked:
            self.check_sizes()
        self.members.read_into(self.stream, buffer, self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()
        return False


def _scalar(array, kinds):
    """The value of a 0-d array whose dtype kind is in ``kinds``, else None."""
    if array.shape != () or array.dtype.kind not in kinds:
        return None
    return array.item()


def _check_header(tag_array, version_array, path):
    tag = _scalar(tag_array, "U")
    if tag != FORMAT_TAG:
        raise ValueError(_not_a_model(
            path, f"gdcore_format must be {FORMAT_TAG!r}, got {tag_array!r}"))
    version = _scalar(version_array, "iu")
    if version is None or version < 1:
        raise ValueError(_not_a_model(
            path, f"format_version must be a positive integer, got {version_array!r}"))
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


def _read_params(members, model, path):
    """The params member, checked against ``model`` before its data is read."""
    with members.open("params") as member:  # fortran_order is moot: params must be 1-D
        dtype = member.dtype
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise ValueError(_not_a_model(
                path, f"params must be float32 or float64, got dtype {dtype}"))
        if member.shape != (model.n_params,):
            raise ValueError(_not_a_model(
                path, f"params must have shape ({model.n_params},) for the saved model, "
                      f"got shape {member.shape}"))
        member.check_sizes()
        # Native order from the start (files from other tools may be big-endian),
        # so the result owns its memory; the bytes are swapped in place below.
        array = np.empty(model.n_params, dtype.newbyteorder("="))
        member.read_into(memoryview(array.view(np.uint8)))
    if not dtype.isnative:
        array.byteswap(inplace=True)
    message = _validate.nonfinite_params_message(array)
    if message:  # save never writes one, so the file was made or damaged elsewhere
        raise ValueError(_not_a_model(path, message))
    return array
