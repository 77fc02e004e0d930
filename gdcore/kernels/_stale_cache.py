"""Drop Numba's on-disk kernel cache when any kernel source changed since it was written.

Numba checks only the timestamp of the file that defines a cached function,
not of the kernels it calls from other modules: after an edit of
``kernels/losses.py``, a cached ``network.value_and_grad`` would still run the
old loss.  A fresh install rewrites every file, so only working trees can go
stale; every ``make`` target that runs gdcore (``demo``, ``test``, ``bench``)
runs ``python -m gdcore.kernels._stale_cache`` first, and the test suite's
``conftest.py`` calls :func:`drop_if_stale` too, so that neither a test nor a
benchmark ever runs the code of an older edit.

The kernels compiled ahead of time need no such guard: their extension is
used only when its stamp names these very sources (:mod:`._aot`).

Standard library only: it runs before anything is compiled or loaded.
"""

import hashlib
import os
import sys
from pathlib import Path

KERNELS = Path(__file__).resolve().parent


def sources_digest():
    """sha256 of the kernel sources and ``codes.py``, what the cached kernels are built from."""
    digest = hashlib.sha256()
    for source in sorted(KERNELS.glob("*.py")) + [KERNELS.parent / "codes.py"]:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def drop_if_stale(cache_dir=None):
    """Delete the cached kernels (``*.nbi``, ``*.nbc``) if the sources changed since.

    Parameters
    ----------
    cache_dir : str or None
        Numba's cache root (``NUMBA_CACHE_DIR``); None: the one this process
        uses (that variable, else ``kernels/__pycache__``).

    Returns
    -------
    bool
        Whether anything was stale (and so deleted).
    """
    if cache_dir is None:
        cache_dir = os.environ.get("NUMBA_CACHE_DIR") or None
    if cache_dir is None:
        stamp_dir = KERNELS / "__pycache__"
        folders = [stamp_dir]
    else:
        root = Path(cache_dir)
        stamp_dir = root / str(KERNELS).lstrip(os.sep)  # where the stamp is kept
        # Numba 0.68 keeps a folder per source folder below NUMBA_CACHE_DIR, named
        # after it and a hash of its path (kernels_<hash>); older ones mirrored the path.
        folders = [stamp_dir] + sorted(root.glob("kernels_*"))
    stamp = stamp_dir / "sources.sha256"
    digest = sources_digest()
    if stamp.exists() and stamp.read_text() == digest:
        return False
    for folder in folders:
        for cached in list(folder.glob("*.nbi")) + list(folder.glob("*.nbc")):
            cached.unlink()
    stamp_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return True


if __name__ == "__main__":
    # python -m gdcore.kernels._stale_cache [NUMBA_CACHE_DIR ...] ("": this process's cache)
    for cache in sys.argv[1:] or [""]:
        if drop_if_stale(cache or None):
            print(f"gdcore: kernel sources changed; dropped Numba's cached kernels "
                  f"({cache or os.environ.get('NUMBA_CACHE_DIR') or KERNELS / '__pycache__'})")
