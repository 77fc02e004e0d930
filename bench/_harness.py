"""Reusable measurement helpers for gdcore's benchmarks.

Every benchmark under ``bench/`` follows the same contract: peers run side by
side in the same process, timings are medians, throughput is reported against
NumPy's own matmul peak measured in the same run, and compile cost is reported
apart from steady state.  The
helpers here implement those pieces once:

* :func:`time_side_by_side` -- median of per-block means, implementations
  taking turns with a settle pause (their thread pools must not overlap),
  blocks disturbed by other processes (:class:`BackgroundLoad`) dropped;
* :func:`time_whole_runs` -- the same policy for long calls (a whole training
  run): one untimed warm-up call each, then rounds of turns;
* :func:`wait_for_quiet` -- wait (a bounded time) for other processes' bursts to end;
* :class:`FamilyLoad` -- background load that counts the benchmark's own worker processes as its own;
* :func:`matmul_peak` -- best-of-N square float32/64 GEMM through NumPy's or
  SciPy's BLAS;
* :func:`copy_bandwidth` -- NumPy copy bandwidth, the memory-bound reference;
* :func:`blas_report` -- which BLAS libraries are loaded and with how many threads;
* :func:`first_call_in_subprocess` -- cold-compile / warm-cache first-call times;
* :func:`markdown_table`, :func:`write_json`, :func:`write_results` -- reporting.

Nothing here imports gdcore, so the helpers can time any implementation.
"""

import gc
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


# Background load -----------------------------------------------------------------------
class BackgroundLoad:
    """CPU used by *other* processes while a measurement runs, in cores.

    On a 2-core machine one busy neighbour (a test run, a compile) makes a
    2-thread BLAS wait for a descheduled worker on every GEMM, inflating
    times 10-50x.  Such numbers must be recognised, not published, so every
    timing block is tagged with the background load: system-wide busy time
    from ``/proc/stat`` (steal time included: on a VM the host's other guests
    count) minus this process' own CPU time.  ``None`` where ``/proc/stat``
    does not exist.

    The system counters tick at ``SC_CLK_TCK`` (usually 100 Hz), so a reading
    over ``t`` seconds is only good to about ``0.01 / t`` cores; keep the
    measured intervals at 0.1 s or longer.
    """

    def __init__(self):
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = None

    @staticmethod
    def _busy_ticks():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: all but idle and iowait
        return sum(fields[:3]) + sum(fields[5:8])

    def start(self):
        self._start = (self._busy_ticks(), time.process_time(), time.perf_counter())

    def stop(self):
        """Average number of cores other processes kept busy since :meth:`start`."""
        busy0, own0, wall0 = self._start
        busy1, own1, wall1 = self._busy_ticks(), time.process_time(), time.perf_counter()
        if busy0 is None or busy1 is None or wall1 <= wall0:
            return None
        others = (busy1 - busy0) / self._hz - (own1 - own0)
        return max(0.0, others / (wall1 - wall0))


def _descendant_ticks(root):
    """CPU ticks (user + system) of the live descendants of process ``root`` (/proc)."""
    parent, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    total = 0
    for pid, t in ticks.items():
        p, hops = parent.get(pid), 0
        while p is not None and p != root and hops < 64:
            p, hops = parent.get(p), hops + 1
        total += t if p == root else 0
    return total


class FamilyLoad(BackgroundLoad):
    """:class:`BackgroundLoad` that counts this process's children as its own.

    For benchmarks whose peers run in worker processes they start (joblib's
    workers, a Dask ``LocalCluster``): only the load of *other* processes
    is background.
    """

    def start(self):
        super().start()
        self._kids = _descendant_ticks(os.getpid()) if self._start[0] is not None else 0

    def stop(self):
        load = super().stop()
        if load is None:
            return None
        kids = (_descendant_ticks(os.getpid()) - self._kids) / self._hz
        return max(0.0, load - kids / (time.perf_counter() - self._start[2]))


def background_load(seconds=0.5):
    """Cores kept busy by other processes over the next ``seconds`` (sleeping meanwhile)."""
    probe = BackgroundLoad()
    probe.start()
    time.sleep(seconds)
    return probe.stop()


def wait_for_quiet(max_seconds=20.0, max_background=0.3, probe_seconds=1.0):
    """Sleep until other processes use at most ``max_background`` cores, or give up.

    On a shared 2-core machine a neighbour's burst (a test run, a compile)
    ruins every timing it overlaps; waiting a little for it to end is
    cheaper than publishing contended figures.  Probes the background load
    for ``probe_seconds`` at a time until it is low or ``max_seconds`` have
    passed.

    Returns
    -------
    quiet : bool
        Whether the last probe was quiet (True when the load is unknown).
    waited : float
        Seconds spent waiting, probes included.
    load : float or None
        The last probe's background load, in cores.
    """
    t0 = time.perf_counter()
    while True:
        load = background_load(probe_seconds)
        waited = time.perf_counter() - t0
        if load is None or load <= max_background:
            return True, waited, load
        if waited >= max_seconds:
            return False, waited, load


# Timing ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Steady-state cost of one call.

    Attributes
    ----------
    median_us : float
        Median over the kept blocks of the mean time per call in a block, in µs.
    p25_us, p75_us : float
        Quartiles of the kept per-block means, to show how noisy the median is.
    min_us : float
        Fastest block mean (a lower bound, not the headline figure).
    calls : int
        Calls timed in the kept blocks.
    blocks_quiet, blocks_kept, blocks_run : int
        Blocks during which other processes stayed under the background
        threshold, blocks the statistics use, and all blocks run.
    contended : bool
        True when too few quiet blocks were found and every block was kept:
        the figures then include time stolen by other processes.
    """

    median_us: float
    p25_us: float
    p75_us: float
    min_us: float
    calls: int
    blocks_quiet: int
    blocks_kept: int
    blocks_run: int
    contended: bool

    def as_dict(self):
        return asdict(self)


def _run_calls(fn, calls):
    """Seconds taken by ``calls`` back-to-back calls of ``fn``."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - t0


def _run_block(fn, chunk, seconds):
    """Call ``fn`` in chunks of ``chunk`` calls until ``seconds`` have passed.

    Returns
    -------
    elapsed : float
    calls : int
    """
    calls = 0
    elapsed = 0.0
    t0 = time.perf_counter()
    while elapsed < seconds:
        for _ in range(chunk):
            fn()
        calls += chunk
        elapsed = time.perf_counter() - t0
    return elapsed, calls


def calibrate(fn, warmup_seconds=0.2, chunk_seconds=0.002):
    """Warm ``fn`` up and choose how many calls to make between two timer reads.

    The warmup loop doubles as calibration: it runs until ``warmup_seconds``
    have passed, which also fills caches, allocator pools, oneDNN primitive
    caches and wakes the BLAS / OpenMP thread pool ``fn`` uses.

    Returns
    -------
    chunk : int
        Calls lasting about ``chunk_seconds``, so reading the clock costs
        nothing measurable even for sub-microsecond calls.
    """
    fn()  # the first call may compile or allocate caches: never count it
    calls = 0
    t0 = time.perf_counter()
    elapsed = 0.0
    while elapsed < warmup_seconds:
        batch = max(1, calls)  # geometric growth keeps timer reads rare
        _run_calls(fn, batch)
        calls += batch
        elapsed = time.perf_counter() - t0
    return max(1, int(chunk_seconds / (elapsed / calls)))


def time_side_by_side(fns, passes=3, blocks_per_pass=5, block_seconds=0.1,
                      settle_seconds=0.25, warmup_seconds=0.2, max_pass_seconds=1.5,
                      max_background=0.3):
    """Steady-state time per call of several implementations in one process.

    Implementations run one after the other, in ``passes`` passes with the
    order rotated between passes, so a slow drift of the machine is shared
    instead of landing on whoever ran last.  They are deliberately NOT
    interleaved call by call or block by block: NumPy, SciPy (Numba's
    ``np.dot``) and PyTorch each bring their own thread pool, and a pool's
    workers keep spinning for ~0.1 s after its last call (OpenBLAS waits
    2**28 cycles before sleeping).  On a 2-core machine a GEMM that starts
    while another pool spins runs 10-50x slower, so every switch of
    implementation is followed by ``settle_seconds`` of sleep and a fresh
    warmup before anything is recorded.

    Each block is tagged with the :class:`BackgroundLoad` of other processes;
    blocks above ``max_background`` cores are dropped, and a pass keeps
    running blocks until ``blocks_per_pass`` quiet ones are collected or
    ``max_pass_seconds`` have passed.  If fewer than half of the wanted
    blocks were quiet, every block is kept and the result is marked
    ``contended``.  The cyclic garbage collector is paused while timing, as
    :mod:`timeit` does.

    Parameters
    ----------
    fns : dict of str -> callable
        Zero-argument callables, each performing one complete call.
    passes : int
    blocks_per_pass : int
        Quiet blocks wanted per implementation and pass.
    block_seconds : float
        Duration of one block; at least 0.1 s so that the background load,
        read from 100 Hz kernel counters, is good to about 0.1 core.
    settle_seconds : float
        Sleep before each implementation's turn, for other pools to go idle.
    warmup_seconds : float
        Untimed warmup at the start of each turn.
    max_pass_seconds : float
        Time budget of one implementation's turn in one pass.
    max_background : float
        Background load (cores) above which a block is dropped.

    Returns
    -------
    dict of str -> Timing
    dict of str -> list of float or None
        Background load of every block run, per implementation, in cores.
    """
    names = list(fns)
    blocks = {name: [] for name in names}  # (background, seconds, calls)
    probe = BackgroundLoad()
    gc_was_enabled = gc.isenabled()
    try:
        for p in range(passes):
            shift = p % len(names)
            for name in names[shift:] + names[:shift]:
                fn = fns[name]
                if gc_was_enabled:
                    gc.enable()
                    gc.collect()  # the previous implementation's garbage, not billed to this one
                time.sleep(settle_seconds)
                chunk = calibrate(fn, warmup_seconds)
                gc.disable()
                quiet = 0
                t_turn = time.perf_counter()
                while quiet < blocks_per_pass and time.perf_counter() - t_turn < max_pass_seconds:
                    probe.start()
                    seconds, calls = _run_block(fn, chunk, block_seconds)
                    bg = probe.stop()
                    blocks[name].append((bg, seconds, calls))
                    quiet += bg is None or bg <= max_background
    finally:
        if gc_was_enabled:
            gc.enable()
    min_quiet = max(1, passes * blocks_per_pass // 2)
    timings = {name: _summarise_blocks(blocks[name], min_quiet, max_background)
               for name in names}
    return timings, {name: [b[0] for b in blocks[name]] for name in names}


def time_whole_runs(fns, rounds=5, settle_seconds=0.25, min_round_seconds=0.1,
                    max_background=0.3, warmup=True, max_impl_seconds=None):
    """Time of long calls (a whole training run), implementations taking turns.

    :func:`time_side_by_side` warms each implementation up for a while and
    then times blocks of many calls: right for a call that lasts
    microseconds, wasteful for one that lasts a second (a whole ``fit``).
    Here every implementation is called once untimed (``warmup``: compiles,
    allocator pools), then ``rounds`` rounds follow in which each
    implementation, in rotated order and after ``settle_seconds`` of sleep
    (other thread pools must go idle), is called back to back until
    ``min_round_seconds`` have passed -- at least once.  A round's figure
    is its mean time per call, tagged with the :class:`BackgroundLoad` of
    other processes; rounds above ``max_background`` cores are dropped, and
    if fewer than half the rounds are quiet, all are kept and the result is
    marked ``contended``, as in :func:`time_side_by_side`.  An implementation
    whose rounds have taken ``max_impl_seconds`` in all sits out the rest
    (after at least two rounds), so that one very slow peer -- or a peer
    slowed down by a busy machine -- cannot stretch the benchmark without
    bound.

    Parameters
    ----------
    fns : dict of str -> callable
        Zero-argument callables, each performing one complete run.
    rounds : int
    settle_seconds : float
    min_round_seconds : float
        Short runs are repeated within a round until this long, so that the
        background load (100 Hz counters) is readable.
    max_background : float
    warmup : bool
    max_impl_seconds : float or None

    Returns
    -------
    dict of str -> Timing
    dict of str -> list of float or None
        Background load of every round, per implementation, in cores.
    """
    names = list(fns)
    run = {name: [] for name in names}  # (background, seconds, calls)
    probe = BackgroundLoad()
    gc_was_enabled = gc.isenabled()
    try:
        if warmup:
            for name in names:
                time.sleep(settle_seconds)
                fns[name]()
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                fn = fns[name]
                spent = sum(b[1] for b in run[name])
                if (max_impl_seconds is not None and len(run[name]) >= 2
                        and spent >= max_impl_seconds):
                    continue
                if gc_was_enabled:
                    gc.enable()
                    gc.collect()
                time.sleep(settle_seconds)
                gc.disable()
                probe.start()
                calls = 0
                t0 = time.perf_counter()
                while True:
                    fn()
                    calls += 1
                    elapsed = time.perf_counter() - t0
                    if elapsed >= min_round_seconds:
                        break
                run[name].append((probe.stop(), elapsed, calls))
    finally:
        if gc_was_enabled:
            gc.enable()
    timings = {name: _summarise_blocks(run[name], max(1, len(run[name]) // 2), max_background)
               for name in names}
    return timings, {name: [b[0] for b in run[name]] for name in names}


def _summarise_blocks(run, min_quiet, max_background):
    """A :class:`Timing` from (background, seconds, calls) blocks (see time_whole_runs)."""
    quiet = [b for b in run if b[0] is None or b[0] <= max_background]
    contended = len(quiet) < min_quiet
    kept = run if contended else quiet
    means = np.array([seconds / calls * 1e6 for _, seconds, calls in kept])
    return Timing(
        median_us=float(np.median(means)),
        p25_us=float(np.percentile(means, 25)),
        p75_us=float(np.percentile(means, 75)),
        min_us=float(means.min()),
        calls=int(sum(calls for _, _, calls in kept)),
        blocks_quiet=len(quiet),
        blocks_kept=len(kept),
        blocks_run=len(run),
        contended=contended,
    )

# Machine references ------------------------------------------------------------------
def matmul_peak(dtype=np.float32, sizes=(1024, 2048), repeats=(8, 4), blas="numpy",
                settle_seconds=0.25, seed=0):
    """Square-GEMM throughput of a BLAS: the compute-bound reference.

    ``blas="numpy"`` times ``np.matmul(A, B, out=C)``, NumPy's own matmul
    (the reference the benchmarks' "% of peak" uses).  ``blas="scipy"`` times
    SciPy's ``?gemm`` on Fortran-ordered operands, i.e. the library Numba's
    ``np.dot`` calls from compiled code; the two are separate OpenBLAS builds
    and need not agree.  The output is preallocated so only the GEMM is timed,
    and the best run is reported because a peak is a capability (what the
    BLAS can reach on this machine right now), not a typical cost.

    Parameters
    ----------
    dtype : numpy dtype
    sizes : sequence of int
        Square sizes tried; the peak is the best over all of them.
    repeats : sequence of int
        Timed runs per size (after one untimed warmup run).
    blas : {"numpy", "scipy"}
    settle_seconds : float
        Sleep first, so another library's spinning BLAS threads go idle.

    Returns
    -------
    dict
        ``peak_gflops``, ``per_size`` (size -> best GFLOP/s) and
        ``background`` (cores used by other processes meanwhile).
    """
    rng = np.random.default_rng(seed)
    time.sleep(settle_seconds)
    probe = BackgroundLoad()
    probe.start()
    per_size = {}
    for n, reps in zip(sizes, repeats):
        order = "C" if blas == "numpy" else "F"
        A = np.asarray(rng.standard_normal((n, n)), dtype=dtype, order=order)
        B = np.asarray(rng.standard_normal((n, n)), dtype=dtype, order=order)
        C = np.empty((n, n), dtype=dtype, order=order)
        if blas == "numpy":
            def gemm():
                np.matmul(A, B, out=C)
        elif blas == "scipy":
            import scipy.linalg.blas
            fgemm = scipy.linalg.blas.get_blas_funcs("gemm", dtype=np.dtype(dtype))

            def gemm():
                fgemm(1.0, A, B, beta=0.0, c=C, overwrite_c=True)
        else:
            raise ValueError(f"blas must be 'numpy' or 'scipy', got {blas!r}")
        gemm()  # wake the thread pool and page C in
        best = min(_run_calls(gemm, 1) for _ in range(reps))
        per_size[n] = 2.0 * n ** 3 / best / 1e9
    return {"peak_gflops": max(per_size.values()), "per_size": per_size,
            "background": probe.stop()}


def copy_bandwidth(n_bytes=64 * 2 ** 20, repeats=10):
    """NumPy copy bandwidth in GB/s (read + write bytes), the memory-bound reference."""
    a = np.ones(n_bytes // 8, dtype=np.float64)
    b = np.empty_like(a)
    np.copyto(b, a)
    best = min(_run_calls(lambda: np.copyto(b, a), 1) for _ in range(repeats))
    return 2.0 * a.nbytes / best / 1e9


def blas_report():
    """Loaded BLAS / OpenMP libraries and their thread counts (via threadpoolctl).

    Each entry is tagged with the package that ships the library, read off
    its path, because NumPy, SciPy (whose BLAS is the one Numba's ``np.dot``
    calls) and PyTorch each bring their own.  gdcore's products call the one
    ``gdcore.kernels.blas.BOUND_TO`` names.

    Returns
    -------
    list of dict or None
        None when threadpoolctl is not installed.
    """
    try:
        import threadpoolctl
    except ImportError:
        return None
    rows = []
    for info in threadpoolctl.threadpool_info():
        path = info.get("filepath", "")
        owner = "?"
        for pkg in ("numpy", "scipy", "torch", "sklearn"):
            if f"/{pkg}.libs/" in path or f"/{pkg}/" in path:
                owner = pkg
                break
        rows.append({
            "owner": owner,
            "user_api": info.get("user_api"),
            "internal_api": info.get("internal_api"),
            "version": info.get("version"),
            "num_threads": info.get("num_threads"),
            "threading_layer": info.get("threading_layer"),
            "architecture": info.get("architecture"),
            "filepath": path,
        })
    return rows


def blas_threads(report, owner):
    """Thread count of the BLAS shipped by ``owner`` (e.g. "numpy"), or None."""
    for row in report or ():
        if row["owner"] == owner and row["user_api"] == "blas":
            return row["num_threads"]
    return None


# Compilation cost ----------------------------------------------------------------------
def first_call_in_subprocess(code, cache_dir, timeout=300):
    """Run ``code`` in a fresh interpreter with ``NUMBA_CACHE_DIR=cache_dir``.

    A fresh process is the only honest way to see the first-call cost: in the
    benchmark process everything is already compiled and loaded.  ``code``
    must print one JSON object as its last stdout line; it is returned, with
    ``process_s`` (the subprocess' wall time, interpreter start included) and
    ``background`` (cores used by processes other than this one and the
    subprocess meanwhile) added.
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    busy0 = BackgroundLoad._busy_ticks()
    own0 = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    own1 = os.times()
    busy1 = BackgroundLoad._busy_ticks()
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    result["background"] = None
    if busy0 is not None and busy1 is not None:
        mine = sum(own1[:4]) - sum(own0[:4])  # self + waited-for children, user + system
        hz = os.sysconf("SC_CLK_TCK")
        result["background"] = max(0.0, ((busy1 - busy0) / hz - mine) / wall)
    return result


# Reporting ---------------------------------------------------------------------------
def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_generation():
    """Family, model and widest vector extension from ``/proc/cpuinfo``, e.g.
    ``"family 25 model 17, AVX-512"``, or None.

    A VM's model name can be a bare "AMD EPYC" for several generations (Zen 3,
    AVX2, and Zen 4, AVX-512, both seen); these tell them apart.
    """
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("cpu family", "model", "flags") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        return None
    if "cpu family" not in fields:
        return None
    flags = set(fields.get("flags", "").split())
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return f"family {fields['cpu family']} model {fields.get('model', '?')}, {simd}"


def print_machine():
    """Print the CPU model and generation, core count and OPENBLAS_CORETYPE (every bench
    run names them)."""
    print(f"CPU: {cpu_model()} ({cpu_generation() or 'generation unknown'}), "
          f"{os.cpu_count()} cores; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE') or 'not set'}")


def environment():
    """Versions and machine facts worth storing beside every result."""
    import numpy
    env = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_generation": cpu_generation(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }
    for mod in ("numba", "scipy", "torch", "gdcore"):
        m = sys.modules.get(mod)
        env[mod] = getattr(m, "__version__", None) if m else None
    env["git"] = _git_state(Path(__file__).resolve().parent.parent)
    return env


def _git_state(repo):
    """HEAD commit and whether the tree is dirty: results must name the code they timed."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "gdcore"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head or None, "gdcore_dirty": bool(dirty)}


def markdown_table(headers, rows):
    """A GitHub-flavoured Markdown table; numeric-looking columns right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [bool(cells) and all(_looks_numeric(r[i]) for r in cells)
               for i in range(len(headers))]

    def fmt(row):
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w)
                                 for c, w, num in zip(row, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric)) + "|"
    return "\n".join([fmt(headers), rule] + [fmt(r) for r in cells])


def _looks_numeric(text):
    text = text.strip().rstrip("x%").replace(",", "")
    if text in ("", "-", "n/a"):
        return True
    try:
        float(text)
        return True
    except ValueError:
        return False


def write_json(path, obj):
    """Write ``obj`` as indented JSON, creating the directory (bench/results is gitignored).

    Returns the path relative to the working directory when it lies below it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def write_results(path, out, t_start):
    """Add ``total_seconds`` (since ``t_start``) to ``out``, write it, say where and how long."""
    out["total_seconds"] = time.perf_counter() - t_start
    path = write_json(path, out)
    print(f"\nwrote {path} ({out['total_seconds']:.0f} s in all)")
    return path


def match_torch_threads(blas, torch, skipped="PyTorch peer skipped"):
    """Give torch NumPy's BLAS thread count, print what each library uses.

    Parameters
    ----------
    blas : list of dict or None
        :func:`blas_report`.
    torch : module or None
        None when torch is not installed (then ``skipped`` is printed).

    Returns
    -------
    dict
        Thread counts of NumPy's BLAS, SciPy's BLAS and torch.
    """
    threads = blas_threads(blas, "numpy") or os.cpu_count()
    scipy_threads = blas_threads(blas, "scipy")
    if scipy_threads is not None and scipy_threads != threads:
        print(f"  note: NumPy's BLAS uses {threads} threads but SciPy's {scipy_threads}")
    if torch is None:
        print(f"torch: not installed -- {skipped}")
    else:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}: set_num_threads({threads}) to match NumPy's BLAS; "
              f"get_num_threads()={torch.get_num_threads()}")
    return {"numpy_blas": threads, "scipy_blas": scipy_threads,
            "torch": torch.get_num_threads() if torch is not None else None}


def _jsonable(value):
    if isinstance(value, Timing):
        return value.as_dict()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def verdict(target, value, ok, contended):
    """A target's PASS/MISS line as a dict, flagged when the machine was contended."""
    status = "PASS" if ok else "MISS"
    if contended:
        status += " (CONTENDED machine: rerun when quiet)"
    return {"target": target, "value": value, "status": status, "contended": contended}


def print_verdicts(verdicts):
    """Print the PASS/MISS lines of :func:`verdict` dicts, one per target."""
    for v in verdicts:
        print(f"[{v['status']}] {v['target']}: {v['value']}")


def print_background(max_background, unit="blocks"):
    """Print (and return) the load other processes put on the machine before a run."""
    idle = background_load()
    print(f"background load before start: {fmt_load(idle)} of {os.cpu_count()}"
          + (f"  (busy machine: disturbed {unit} will be dropped)"
             if idle is not None and idle > max_background else ""))
    return idle


def fmt_load(cores):
    """Background load for the report."""
    return "unknown" if cores is None else f"{cores:.2f} cores"


def fmt_time(us, small_digits=2):
    """A duration given in µs, in s, ms or µs (``small_digits`` decimals for µs)."""
    if us >= 1e6:
        return f"{us / 1e6:,.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:,.2f} ms"
    return f"{us:,.{small_digits}f} µs"


def print_blas(report, note, missing="threadpoolctl not installed: BLAS unknown"):
    """Print the BLAS/OpenMP libraries of :func:`blas_report`, a note on who uses which,
    and OPENBLAS_CORETYPE."""
    print("BLAS / OpenMP libraries (threadpoolctl):")
    if report is None:
        print(f"  {missing}")
        return
    for row in report:
        print(f"  {row['owner']:<7} {row['user_api']:<7} {row['internal_api']:<10} "
              f"v{row['version']}  threads={row['num_threads']}  "
              f"arch={row['architecture']}  layer={row['threading_layer']}")
    print(f"  ({note})")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<not set>')}")
