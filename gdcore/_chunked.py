"""A data set in row chunks, held where Dask computes, and sums over its chunks.

:class:`ChunkedData` takes Dask arrays chunked by rows, converts each chunk
once into what the kernels take (:class:`Chunk`: the params dtype,
C-contiguous, scanned for NaN/Inf and invalid targets, errors naming the row
in the whole data set), and keeps the chunks in memory: on the workers of a
``distributed`` client (persisted; they never come back to the caller), or in
this process under Dask's local schedulers.

:meth:`ChunkedData.map_sum` runs a function on every chunk and adds the
results up in the fixed tree order of :mod:`gdcore._tree`.  On a cluster it
calls a chunk server on each worker holding chunks (a Dask actor: the call
goes to the worker without the scheduler), which runs the function on that
worker's chunks, a few at a time (its threads), and folds them as far as the
tree allows; the caller completes the tree.  The arguments (the parameters)
thus cross the network once per worker per call, and the result does not
depend on where the chunks are or how many workers there are.  When a server
cannot serve (a worker lost, a chunk moved), the call runs as one scheduled
task per chunk instead: Dask recomputes lost chunks from the graph and reruns
tasks of lost workers.
"""

import concurrent.futures
import math
import os
import threading

import numpy as np

from . import _tree, _validate
from .fit import _Data

try:
    import dask
    import dask.array as da
    import dask.sizeof
except ImportError:  # pragma: no cover - the dask extra is not installed
    raise ImportError("gdcore.dask needs Dask: pip install 'gdcore[dask]'") from None


class Chunk:
    """One row chunk in kernel form.

    Attributes
    ----------
    X : ndarray of shape (n_rows, n_inputs)
    target : ndarray
        What the kernels' ``y`` takes: int64 labels ``(n_rows,)`` or targets
        ``(n_rows, n_outputs)``, in the params dtype.
    weights : ndarray of shape (n_rows,) or None
    total : float
        The chunk's total sample weight (its number of rows without weights).
    """

    __slots__ = ("X", "target", "weights", "total")

    def __init__(self, X, target, weights, total):
        self.X, self.target, self.weights, self.total = X, target, weights, total

    @property
    def n_rows(self):
        return self.X.shape[0]

    def __reduce__(self):
        return _writeable_chunk, (self.X, self.target, self.weights, self.total)


def _writeable(a):
    # Arrays unpickled from a transfer between workers can be read-only, which
    # the kernels' fast path refuses (and would copy on every call).
    return a if a is None or a.flags.writeable else a.copy()


def _writeable_chunk(X, target, weights, total):
    return Chunk(_writeable(X), _writeable(target), _writeable(weights), total)


def _prepare_chunk(model, dtype, X, y, sample_weight, first_row):
    """A :class:`Chunk` from one row block (validated and scanned once)."""
    w = None if sample_weight is None else np.asarray(sample_weight)
    # A chunk whose weights are all 0 is valid (the data set's total is checked
    # apart); the scan, which refuses a zero total, checks its X and y alone.
    unweighted = w is not None and w.shape == (len(X),) and not w.any()
    data = _Data(model, np.zeros(model.n_params, dtype), np.asarray(X), np.asarray(y),
                 None if unweighted else w, "", first_row)
    target = data.labels if data.labels.shape[0] else data.Y
    weights = (np.zeros(data.n, dtype) if unweighted
               else data.weights if data.weights.shape[0] else None)
    total = float(data.n if weights is None else weights.sum(dtype=np.float64))
    return Chunk(data.X, target, weights, total)


def _prepared_or_error(*args):
    """:func:`_prepare_chunk`, or the error it raised (to raise the lowest chunk's)."""
    try:
        return _prepare_chunk(*args)
    except (TypeError, ValueError) as exc:
        return exc


@dask.sizeof.sizeof.register(Chunk)
def _sizeof_chunk(chunk):
    # What a worker's memory accounting (spilling, pausing, transfers) counts.
    return sum(a.nbytes for a in (chunk.X, chunk.target, chunk.weights) if a is not None)


def _row_blocks(name, a, row_chunks, n_rows, ndims=(1, 2)):
    """Row blocks of ``a`` (Dask or array-like) matching ``row_chunks``."""
    if isinstance(a, da.Array):
        if a.ndim not in ndims or a.shape[0] != n_rows:
            raise ValueError(f"{name} must have {n_rows} rows (as X), got shape {a.shape}")
        if a.chunks[0] != row_chunks:
            raise ValueError(f"{name} must be chunked by rows as X is, {row_chunks}; got "
                             f"{a.chunks[0]} (rechunk it with {name}.rechunk({{0: X.chunks[0]}}))")
        if a.ndim == 2 and len(a.chunks[1]) != 1:
            raise ValueError(f"{name} must be chunked by rows only, got {len(a.chunks[1])} "
                             f"chunks of columns {a.chunks[1]}; rechunk it with "
                             f"{name}.rechunk({{1: -1}})")
        return list(a.to_delayed().ravel())
    a = np.asarray(a)
    if a.ndim not in ndims or a.shape[0] != n_rows:
        raise ValueError(f"{name} must have {n_rows} rows (as X), got shape {a.shape}")
    bounds = np.cumsum((0,) + row_chunks)
    return [a[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def check_rows_only(X, known_rows=True):
    """Raise unless ``X`` is a 2-D Dask array chunked by rows only (of known sizes)."""
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask array (dask.array.Array), got {type(X).__name__}; "
                        f"make one with dask.array.from_array(X, chunks=(rows, -1))")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if math.isnan(X.shape[1]) or known_rows and any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
    if len(X.chunks[1]) != 1:
        raise ValueError(f"X must be chunked by rows only (one chunk of columns), got "
                         f"{len(X.chunks[1])} chunks of columns {X.chunks[1]}; rechunk it "
                         f"with X.rechunk({{1: -1}})")


def _scheduler_of(client):
    """``(client, get)``: a distributed client, or None and a local scheduler's get."""
    try:
        from distributed import Client
    except ImportError:  # Dask's local schedulers only
        Client = ()
    if client is not None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client or None, got {client!r}")
        return client, None
    get = dask.base.get_scheduler()
    owner = getattr(get, "__self__", None)
    if isinstance(owner, Client):  # the current client
        return owner, None
    return None, get or dask.threaded.get


class ChunkedData:
    """``X``, ``y`` and ``sample_weight`` in row chunks, converted once and kept.

    Parameters
    ----------
    model : Model
    dtype : numpy dtype
        The compute dtype (float32 or float64).
    X : dask Array of shape (n_samples, n_inputs)
        Chunked by rows only.
    y, sample_weight : dask Array or array-like
        Dask arrays chunked by rows as ``X``; others are cut to match.
    client : distributed.Client or None
        None: the current client, else Dask's default (local) scheduler.

    Raises
    ------
    TypeError, ValueError
        Bad chunking, shapes or data (NaN/Inf, labels), naming the row in
        the whole data set.
    """

    def __init__(self, model, dtype, X, y, sample_weight, client):
        check_rows_only(X)
        _validate.feature_count(model, X.shape[1])
        if y is None:
            raise TypeError("y is required: the targets of X's rows")
        row_chunks = tuple(int(c) for c in X.chunks[0])
        if not row_chunks or X.shape[0] == 0:
            raise ValueError("X is empty: it must have at least one sample")
        if 0 in row_chunks:
            raise ValueError(f"X has an empty row chunk {row_chunks}; rechunk it")
        self.n_chunks = len(row_chunks)
        self.n_rows = int(X.shape[0])
        first_rows = np.cumsum((0,) + row_chunks[:-1]).tolist()
        xs = list(X.to_delayed().ravel())
        ys = _row_blocks("y", y, row_chunks, self.n_rows)
        ws = ([None] * self.n_chunks if sample_weight is None
              else _row_blocks("sample_weight", sample_weight, row_chunks, self.n_rows,
                               ndims=(1,)))
        self.client, get = _scheduler_of(client)
        # A bad chunk raises its error; when several are bad, the lowest one's,
        # whichever finished first.
        prepare = dask.delayed(_prepare_chunk if self.client else _prepared_or_error,
                               pure=False)
        chunks = [prepare(model, dtype, x, yb, wb, first)
                  for x, yb, wb, first in zip(xs, ys, ws, first_rows)]
        self._released = False
        if self.client is None:
            self._local = list(dask.compute(*chunks, scheduler=get))
            for chunk in self._local:
                if isinstance(chunk, Exception):
                    raise chunk
            self._get = get
            self._threads = dask.config.get("num_workers", None) or os.cpu_count() or 1
        else:
            self._placement = self._servers = None
            self._server_futures = ()
            self._futures = self.client.compute(chunks)
            self._wait_for_chunks()
        try:
            self.total_weight = self.map_sum(_total_of).sums[0]
            if not (math.isfinite(self.total_weight) and self.total_weight > 0):
                raise ValueError(f"sample_weight must have a positive, finite sum, got "
                                 f"{self.total_weight}")
        except BaseException:
            self.release()
            raise

    def _wait_for_chunks(self):
        from distributed import wait
        wait(self._futures)
        for future in self._futures:
            if future.status == "error":
                error = future.exception()
                self.release()
                raise error

    def _groups(self):
        """``[(worker address, nthreads, chunk indices)]``: who holds which chunks.

        Asked of the scheduler at the first call, and again after a call that
        found a chunk elsewhere than expected (a worker lost, say); a chunk
        being recomputed has no holder (address None).  A stale answer costs
        speed, not correctness: a task whose worker is gone runs elsewhere and
        fetches its chunks.  With the answer come the chunk servers
        (:class:`_ChunkServer`), one per worker holding chunks.
        """
        if self._placement is None:
            self._drop_servers()
            workers = self.client.scheduler_info()["workers"]
            who_has = self.client.who_has(self._futures)
            by_worker = {}
            for i, future in enumerate(self._futures):
                holders = sorted(who_has.get(future.key, ()))
                by_worker.setdefault(holders[0] if holders else None, []).append(i)
            placement = [(addr, workers.get(addr, {}).get("nthreads", 1), idx)
                         for addr, idx in sorted(by_worker.items(), key=lambda kv: kv[1][0])]
            if None not in by_worker:
                self._start_servers([addr for addr, _, _ in placement])
            self._placement = placement
        return self._placement

    def _start_servers(self, addresses):
        """One :class:`_ChunkServer` per address, or none if any fails to start in time."""
        futures = [self.client.submit(_ChunkServer, actor=True, workers=[addr],
                                      allow_other_workers=False, pure=False)
                   for addr in addresses]
        self._server_futures = futures
        from distributed import wait
        try:  # a worker gone since who_has would leave its server pending for ever
            wait(futures, timeout=_SERVER_START_SECONDS)
            self._servers = [f.result() for f in futures]
        except BaseException as exc:  # calls go by tasks
            self._drop_servers()
            if not isinstance(exc, Exception):
                raise

    def _drop_servers(self):
        if self._server_futures:
            self.client.cancel(list(self._server_futures))
        self._servers, self._server_futures = None, ()

    def map_sum(self, leaf, *args):
        """``leaf(chunk, index, *args)`` -> Partial on every chunk, folded in tree order.

        Returns
        -------
        Partial
            The same bits for any number of workers, threads or processes.
        """
        n = self.n_chunks
        if self._released:
            raise ValueError("the data were released (release()); make a new objective")
        if self.client is None:
            if self._get is dask.local.get_sync:
                values = [leaf(chunk, i, *args) for i, chunk in enumerate(self._local)]
            else:  # the chunks are in this process: its threads (the kernels release the GIL)
                values = list(_pool(self._threads).map(lambda ic: leaf(ic[1], ic[0], *args),
                                                       enumerate(self._local)))
            return _tree.root(_tree.held_nodes(dict(enumerate(values)), n), n)
        packed = _Opaque(args)
        groups = self._groups()
        parts = self._served_sums(groups, leaf, packed)
        if parts is None:
            parts = self._task_sums(groups, leaf, packed)
        nodes = {}
        for part in parts:
            nodes.update(part)
        return _tree.root(nodes, n)

    def _served_sums(self, groups, leaf, packed):
        """The workers' nodes through their chunk servers; None if a server could not serve.

        A direct call to each worker: about 5 ms for two workers where a task
        takes 20 ms (the scheduler's round trip).  Anything amiss (a worker
        lost, a chunk moved) sends this call down the task path, which Dask
        makes good: it recomputes lost chunks and reruns tasks.
        """
        if self._servers is None:
            return None
        try:
            calls = [server.sums(leaf, [self._futures[i].key for i in idx], idx, self.n_chunks,
                                 threads, packed)
                     for server, (_, threads, idx) in zip(self._servers, groups)]
            parts = [call.result() for call in calls]
        except (TypeError, ValueError):  # raised by leaf: bad parameters, say
            raise
        except Exception:  # a server's worker lost, say
            parts = [None]
        if any(part is None for part in parts):
            self._placement = None
            return None
        return parts

    def _task_sums(self, groups, leaf, packed):
        """The chunks' values through one scheduled task per chunk, as nodes.

        The fallback path: slower than the servers (a task costs a scheduler
        round trip) but Dask's own, which recomputes lost chunks, moves data
        and loads no more than a chunk per worker thread at a time.  Every
        chunk's value comes back to the client before the fold (for ``fit``,
        two parameter-sized vectors per chunk).
        """
        # The arguments go to the cluster once, not once per task.
        args = self.client.scatter(packed, hash=False)
        tasks, where = [], {}
        for addr, _, idx in groups:
            for i in idx:
                where[i] = addr
                tasks.append(self.client.submit(
                    _chunk_value, leaf, self._futures[i], i, args, pure=False,
                    **({} if addr is None else dict(workers=[addr], allow_other_workers=True))))
        try:
            done = self.client.gather(tasks)
        except BaseException:
            self.client.cancel(tasks)
            raise
        finally:
            self.client.cancel([args])
        leaves = {}
        for i, ran_on, value in done:
            leaves[i] = value
            if ran_on != where[i]:
                self._placement = None
        return [_tree.held_nodes(leaves, self.n_chunks)]

    def release(self):
        """Let Dask free the chunks (they are freed too when this object is)."""
        if self.client is not None:
            self._drop_servers()
            self.client.cancel(list(self._futures))
        self._futures = self._local = ()
        self._released = True


def _total_of(chunk, index):
    return _tree.Partial((chunk.total,))


_pools: dict = {}
_pools_lock = threading.Lock()


def _pool(threads):
    """This process's pool of ``threads`` threads (the kernels release the GIL)."""
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = concurrent.futures.ThreadPoolExecutor(
                threads, thread_name_prefix="gdcore-chunk")
        return pool


class _Opaque:
    """Arguments Dask passes along as they are (it looks inside tuples for tasks)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return _Opaque, (self.value,)


def _chunk_value(leaf, chunk, index, packed):
    """A task of the fallback path: ``(index, worker address, leaf's value)`` of one chunk."""
    from distributed import get_worker
    return index, get_worker().address, leaf(chunk, index, *packed.value)


# Seconds for a chunk server to start before calls go by tasks (see ChunkedData._groups).
_SERVER_START_SECONDS = 30


class _ChunkServer:
    """A Dask actor on one worker: ``leaf`` on chunks that worker holds, on direct call.

    Actor calls go from the client to the worker without the scheduler.  The
    chunks are looked up in the worker's store on its event loop (where the
    worker itself reads and writes the store) one at a time as the work
    needs them, so that spilled chunks come back from disk one by one; the
    work runs in the server's own threads.
    """

    def __init__(self):
        self._threads = None
        self._pool = None

    async def sums(self, leaf, keys, indices, n, threads, packed):
        """The largest tree nodes of the chunks ``keys`` (:func:`gdcore._tree.held_nodes`).

        None when a chunk is not on this worker.
        """
        import asyncio

        from distributed import get_worker
        data = get_worker().data
        if not all(key in data for key in keys):
            return None
        if self._threads != threads:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = concurrent.futures.ThreadPoolExecutor(
                threads, thread_name_prefix="gdcore-server")
            self._threads = threads
        loop = asyncio.get_running_loop()
        values = []
        for start in range(0, len(keys), threads):  # at most `threads` chunks at a time
            batch = [(i, data[key]) for i, key in zip(indices[start:start + threads],
                                                      keys[start:start + threads])]
            values += await asyncio.gather(*(
                loop.run_in_executor(self._pool, _call_leaf, leaf, chunk, i, packed.value)
                for i, chunk in batch))
            del batch
        return _tree.held_nodes(dict(zip(indices, values)), n)


def _call_leaf(leaf, chunk, index, args):
    return leaf(chunk, index, *args)
