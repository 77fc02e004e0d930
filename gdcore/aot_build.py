"""``python -m gdcore aot``: compile gdcore's generic kernels into C extensions.

One extension per dtype, ``gdcore/_aot_kernels_f32*.so`` and
``gdcore/_aot_kernels_f64*.so`` (``numba.pycc``), each built in its own
process so that two cores work at once.  They hold the kernels the public
calls make (see :data:`EXPORTS`), compiled for this machine's CPU
(``target_cpu="host"``) with each kernel's own jit options, and the BLAS setter and
build stamp the loader needs (:mod:`gdcore.kernels._aot`).  A cold first
call then loads machine code in a millisecond instead of compiling for
10-20 s; the Makefile's install step runs this after pip.

Not exported (Numba compiles them on first use, as before): the
minimization drivers (specialised on a user's objective), the threaded
update (``prange``, which pycc cannot compile), gradient checks and kinks.
The float64 extension also holds the L-BFGS state machine's two kernels that
``gd.minimize`` calls from Python (``lbfgs_step``, ``restart``), and fit's
shuffle (``pcg64_shuffle``), which takes no floats.

The build compiles with an empty Numba cache of its own (a temporary
directory): while :data:`gdcore.kernels.blas.AOT_BUILD` is set, compiled
code reads the BLAS address from the extension's globals, and such code
must never reach the JIT cache (nor JIT-cached code, which names a symbol
bound at run time, reach an extension).
"""

import argparse
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = ("float32", "float64")


def export_signatures(dtype):
    """Each exported kernel's Python function and signature for ``dtype``.

    The argument types are exactly those the Python callers pass (C-contiguous
    arrays in the params dtype, the model's read-only int64 offset table, a
    read-only float64 hyperparameter vector, Python ints and floats).

    Parameters
    ----------
    dtype : {"float32", "float64"}

    Returns
    -------
    dict
        ``{name: (python function, numba signature)}``, names as
        :data:`gdcore.kernels._aot.EXPORTS`.
    """
    from numba import types

    from .kernels import checks, entry, epoch, finite, lbfgs, shuffle, updates

    f = types.float32 if dtype == "float32" else types.float64
    i8, f8, boolean = types.int64, types.float64, types.boolean
    vec, mat = types.Array(f, 1, "C"), types.Array(f, 2, "C")
    ints, f8vec = types.Array(i8, 1, "C"), types.Array(f8, 1, "C")
    offsets = types.Array(i8, 2, "C", readonly=True)
    hyper = types.Array(f8, 1, "C", readonly=True)
    status = types.UniTuple(i8, 2)
    status_loss = types.Tuple((i8, i8, f8))
    data = types.Tuple((mat, mat, ints, vec))  # (X, Y, labels, weights)
    batch = (vec, offsets, data, i8)  # params, offsets, data, loss_code
    progress = types.Tuple((i8, f8, f8))  # (updates, loss_sum, weight_sum)
    signatures = {
        "any_value_and_grad": (entry.any_value_and_grad,
                               status_loss(*batch, f8, vec, vec)),
        "any_loss": (entry.any_loss, status_loss(*batch, f8, vec)),
        "any_predict": (entry.any_predict, status(*batch, vec, mat)),
        "run_epoch": (epoch.run_epoch, types.Tuple((i8, i8, progress, boolean))(
            vec, vec, offsets, data, i8, types.Tuple((f8, boolean)),
            types.Tuple((ints, i8, i8, i8)), i8, types.Tuple((hyper, f8vec, mat, f8vec)), vec,
            vec, data, progress, i8, boolean)),
        "evaluate": (epoch.evaluate, types.UniTuple(f8, 2)(*batch, i8, vec, i8)),
        "apply_update": (updates.apply_update,
                         boolean(i8, hyper, f8, vec, vec, mat, f8vec, vec, boolean)),
        "scan_inputs": (checks.scan_inputs, status(vec, data, i8, i8)),
        "first_nonfinite": (finite.first_nonfinite, i8(vec)),
    }
    if dtype == "float64":  # gd.minimize's L-BFGS state is float64 for every x0
        state = (types.Array(f8, 2, "C"), types.Array(f8, 3, "C"), f8vec, f8vec, f8vec, ints)
        signatures["lbfgs_step"] = (lbfgs.lbfgs_step, i8(*state, f8, f8vec, f8vec))
        signatures["restart"] = (lbfgs.restart, i8(*state, f8vec, f8vec))
        # fit's shuffle takes no floats: one export serves every dtype.
        u8 = types.uint64
        signatures["pcg64_shuffle"] = (shuffle.pcg64_shuffle, types.Tuple((u8, u8, boolean, u8))(
            ints, u8, u8, u8, u8, boolean, u8))
    return signatures


def _policy_flags(functions):
    """Compile each export with its own kernel's jit options.

    pycc compiles every export with one set of default flags (error_model
    python, no fastmath, GIL held).  Here each Python function in
    ``functions`` (``{py_func: dispatcher}``) gets its dispatcher's error
    model, fastmath flags (none for the ``exact`` L-BFGS kernels) and
    ``nogil``; other exports (the setter, the stamp) get the default policy
    (:func:`gdcore.kernels._jit.options`).
    """
    import numba.pycc.compiler as pycc_compiler
    from numba.core.cpu import FastMathOptions

    from .kernels._jit import options

    plain = pycc_compiler.compile_extra

    def compile_extra(typingctx, targetctx, func, args, return_type, flags, locals, library):
        dispatcher = functions.get(func)
        policy = dispatcher.targetoptions if dispatcher is not None else options()
        flags = flags.copy()
        flags.error_model = policy["error_model"]
        flags.fastmath = FastMathOptions(policy["fastmath"])
        flags.release_gil = policy["nogil"]
        return plain(typingctx, targetctx, func, args, return_type, flags, locals=locals,
                     library=library)

    pycc_compiler.compile_extra = compile_extra


def build_one(dtype, output_dir=HERE, only=None):
    """Compile the extension of ``dtype`` in this process; return its path.

    Must run in a process whose Numba cache is empty and private (see the
    module docstring): :func:`main` starts one per dtype.  ``only`` (a list
    of names) builds those exports alone, an incomplete extension that the
    loader refuses (for tests of the build).
    """
    # pycc is deprecated in favour of numba-pixie, which cannot build this yet; the
    # warning is for our build, not the user's code.
    from numba.core.errors import NumbaPendingDeprecationWarning

    warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
    from numba import types
    from numba.pycc import CC

    from .kernels import _aot, blas

    blas.AOT_BUILD = True  # before anything compiles
    exports = {name: export for name, export in export_signatures(dtype).items()
               if only is None or name in only}
    _policy_flags({function.py_func: function for function, _ in exports.values()})
    name = _aot.module_name(dtype).rsplit(".", 1)[1]
    cc = CC(name)
    cc.output_dir = output_dir
    cc.target_cpu = "host"
    cc.verbose = False
    for export, (function, signature) in exports.items():
        cc.export(export, signature)(function.py_func)

    def set_gemm(address, is_double):
        return blas.set_gemm_pointer(address, is_double)

    built_from = _aot.stamp()

    def stamp():
        return built_from

    cc.export("set_gemm", types.int64(types.int64, types.int64))(set_gemm)
    cc.export("stamp", types.unicode_type())(stamp)
    cc.compile()
    return os.path.join(output_dir, name + sysconfig.get_config_var("EXT_SUFFIX"))


def main(argv=None):
    """Build both extensions at once, one process each; print what was built.

    Returns
    -------
    int
        0 when both were built, 1 otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="python -m gdcore aot",
        description="Compile gdcore's kernels for this machine into C extensions "
                    "(both dtypes, one process each).")
    parser.add_argument("--dtype", choices=DTYPES + ("both",), default="both")
    parser.add_argument("--force", action="store_true",
                        help="build even when fresh extensions are installed")
    parser.add_argument("--output-dir", default=HERE, help=argparse.SUPPRESS)  # tests
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)  # tests: a,b,...
    args = parser.parse_args(argv)
    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    if not (args.force or args.only or args.output_dir != HERE) and _fresh():
        print("gdcore's kernels compiled ahead of time are up to date (built from these "
              "sources, this Numba and this CPU): nothing to do (--force rebuilds)")
        return 0
    t0 = time.perf_counter()
    jobs = []
    with tempfile.TemporaryDirectory(prefix="gdcore-aot-") as scratch:
        for dtype in dtypes:
            cache = os.path.join(scratch, dtype)
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            env.pop("NUMBA_CPU_NAME", None)  # the build targets the host, as the loader checks
            env.pop("NUMBA_CPU_FEATURES", None)
            command = [sys.executable, "-c", "import sys, time; t = time.perf_counter(); "
                       "from gdcore import aot_build; "
                       "path = aot_build.build_one(sys.argv[1], sys.argv[2], "
                       "sys.argv[3].split(',') if sys.argv[3] else None); "
                       "print(time.perf_counter() - t, path)", dtype, args.output_dir, args.only]
            jobs.append((dtype, time.perf_counter(),
                         subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)))
        failed = 0
        for dtype, started, job in jobs:
            out, err = job.communicate()
            seconds = time.perf_counter() - started  # until its output was read
            if job.returncode == 0:
                seconds, path = out.strip().splitlines()[-1].split(" ", 1)
                seconds = float(seconds)  # the build's own (Python start-up excluded)
                size = os.path.getsize(path) / 2 ** 20
                print(f"{dtype:<8} {seconds:6.1f} s  {path} ({size:.1f} MiB)")
            else:
                failed += 1
                print(f"{dtype:<8} {seconds:6.1f} s  FAILED (exit {job.returncode}):\n{err}",
                      file=sys.stderr)
    print(f"built {len(dtypes) - failed} of {len(dtypes)} extensions in "
          f"{time.perf_counter() - t0:.1f} s (exports: {args.only or ', '.join(export_names())}); "
          f"kernels in this install are compiled ahead of time for this machine's CPU")
    return 1 if failed else 0


def _fresh():
    """Whether both installed extensions load and match this process's stamp."""
    from .kernels import _aot

    logger = logging.getLogger("gdcore")
    disabled, logger.disabled = logger.disabled, True  # not the users' "stale" warning
    try:
        return bool(_aot.exports())
    finally:
        logger.disabled = disabled


def export_names():
    """The exported kernels' names (without building anything)."""
    from .kernels._aot import EXPORTS

    return list(EXPORTS)


if __name__ == "__main__":
    sys.exit(main())
