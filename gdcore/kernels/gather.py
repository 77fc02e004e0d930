"""Gathering a shuffled epoch's rows into a contiguous buffer, a chunk of batches at a time.

A shuffled epoch reads the training set in a random order, so the rows of a
mini-batch are scattered over the whole set.  :func:`run_epoch
<gdcore.kernels.epoch.run_epoch>` copies them into contiguous buffers
:func:`chunk_rows` rows at a time: as many whole batches as fit in
``CHUNK_BYTES`` (so that the chunk is still in cache when its batches are
read), and at least one.  A copy loop with nothing else in it keeps many
cache misses in flight at once.  On the 10-32-1 benchmark network (64,000
rows of 44 bytes, chunks of 5,952 rows), in six alternating measurements, a
step took 0.08-0.21 us less (about 3%) than with the same gather done one
batch at a time.

Wide rows (784 inputs) make a chunk of one batch.  :func:`gather_chunk` then
prefetches the next batch's rows, to load while the current one trains
(:mod:`.prefetch`).

Each row is one copy of its bytes.  For 10-float rows, an element loop took
6.4-10.9 ns per row against 2.7-5.1 ns for a ``memcpy``.  For one-element rows it
took 3.2-3.7 ns against 4.1-5.2 ns, a difference too small to keep a second path
for.  A narrow row's width is only known at run time, so ``memcpy`` was a call
per row; rows under 64 bytes are now copied inline (:func:`.copies.copy_bytes`): the
10-32-1 benchmark's epoch (64,000 rows of 40 + 4 bytes) gathered in 0.22 us
per step instead of 0.40 (AMD EPYC Zen 3, medians of 200).
"""

from ._jit import jit
from .copies import gather_rows
from .prefetch import prefetch_rows
from .sparse import gather_samples, n_rows, prefetch_samples
from .views import byte_rows

CHUNK_BYTES = 256 * 1024  # half the per-core L2 cache of the CPUs measured


def chunk_rows(batch_size, row_bytes, n_samples):
    """Rows to gather at a time: whole batches within ``CHUNK_BYTES``, at least one.

    Parameters
    ----------
    batch_size : int
    row_bytes : int
        Bytes of one sample over every array gathered (inputs, targets,
        labels, weights).
    n_samples : int
        No chunk is longer than the batches of the epoch.

    Returns
    -------
    int
        A multiple of ``batch_size``.
    """
    batches = max(1, CHUNK_BYTES // max(1, row_bytes * batch_size))
    n_batches = -(-n_samples // batch_size)
    return min(batches, n_batches) * batch_size


@jit
def gather_chunk(data, order, start, batch_size, chunk):
    """Gather the chunk of rows ``order[start:start + len(Xb)]`` of every data array.

    ``data`` is the tuple ``(X, Y, labels, weights_)``.  The chunk buffers
    ``chunk = (Xb, Yb, Lb, Wb)`` hold ``Xb.shape[0]`` rows, a multiple of
    ``batch_size`` (:func:`chunk_rows`); the last chunk of an epoch may be
    shorter.  With one batch per chunk (wide rows), the next batch's rows are
    prefetched too, to load while this one trains.
    """
    X, Y, labels, weights_ = data
    Xb, Yb, Lb, Wb = chunk
    n = n_rows(X)
    rows = n_rows(Xb)
    end = min(start + rows, n)
    gather_samples(X, order, start, end, Xb)
    gather_rows(Y, order, start, end, Yb)
    gather_rows(labels, order, start, end, Lb)
    gather_rows(weights_, order, start, end, Wb)
    if rows == batch_size and end < n:
        # As bytes, every array is the same type: prefetch_rows compiles once.
        after = min(end + batch_size, n)
        prefetch_samples(X, order, end, after)
        for src in (byte_rows(Y), byte_rows(labels), byte_rows(weights_)):
            prefetch_rows(src, order, end, after)
