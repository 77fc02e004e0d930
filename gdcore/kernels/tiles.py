"""Row tiles of small products, written with explicit SIMD vectors.

:mod:`.small` computes products too small for BLAS with loops.  Left to
LLVM's loop vectoriser, the natural loop (``Z[r, :] += a * W[p, :]`` for
each ``r, p``) pays the vectoriser's run-time checks (trip count, aliasing
of ``Z`` and ``W``) on every entry and loads and stores ``Z[r, :]`` for
every ``p``: about 9 ns per entry for a 32-wide float32 row on the benchmark
machine, so 2.9 us for the 32x10x32 forward product of the 10-32-1 network,
slower than BLAS.  Numba leaves LLVM's SLP vectoriser off
(``NUMBA_SLP_VECTORIZE=0``), so a tile written with scalar accumulators is
not vectorised either.

:func:`tile` emits the vector code itself: ``VECS`` SIMD vectors of one
output row stay in registers while a loop over the summed index adds
``scalar * vector`` products to them, and the row is stored once.

    out[o + c] = init[i + c] + sum_q S[s + q * s_step] * M[m + q * m_step + c]

for ``c < width``.  The vectors are 32 bytes (8 float32 or 4 float64:
AVX2's registers; on a CPU without AVX, LLVM splits each into halves), and
multiply and add are separate instructions with the ``contract`` flag, so
LLVM fuses them where the CPU has FMA, as it does for the kernels' loops.
NaN and Inf propagate as in any product.  Nothing is checked: callers pass
offsets whose tiles lie inside the arrays.
"""

from llvmlite import ir
from numba.core import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

VECTOR_BYTES = 32
# Vectors per tile: four independent accumulators hide the latency of the
# multiply-add (four cycles, two per cycle issued on AVX2 cores).
VECS = 4


def lanes(dtype):
    """Elements of ``dtype`` (a NumPy or Numba float type) per SIMD vector."""
    bits = getattr(dtype, "bitwidth", None) or dtype.itemsize * 8
    return VECTOR_BYTES * 8 // bits


def _flat(ty):
    return isinstance(ty, types.Array) and ty.ndim == 1 and ty.layout == "C"


def _make_tile(vecs):
    @intrinsic
    def tile_of(typingctx, out, o, init, i, S, s, s_step, M, m, m_step, count):
        arrays = (out, init, S, M)
        ints = (o, i, s, s_step, m, m_step, count)
        if not (all(_flat(a) for a in arrays) and all(isinstance(t, types.Integer) for t in ints)
                and len({a.dtype for a in arrays}) == 1
                and isinstance(out.dtype, types.Float)):
            return None
        sig = types.void(out, o, init, i, S, s, s_step, M, m, m_step, count)

        def codegen(context, builder, signature, args):
            tys = signature.args
            intp = context.get_value_type(types.intp)

            def data(k):
                return make_array(tys[k])(context, builder, args[k]).data

            def index(k):
                return context.cast(builder, args[k], tys[k], types.intp)

            out_p, init_p, s_p, m_p = data(0), data(2), data(4), data(7)
            o_, i_, s_, s_step_, m_, m_step_, count_ = (index(k) for k in (1, 3, 5, 6, 8, 9, 10))
            elem = context.get_value_type(tys[0].dtype)
            n_lanes = lanes(tys[0].dtype)
            vec = ir.VectorType(elem, n_lanes)
            align = tys[0].dtype.bitwidth // 8

            def vector_at(ptr, at):
                return builder.bitcast(builder.gep(ptr, [at]), vec.as_pointer())

            def offset(at, v):
                return builder.add(at, ir.Constant(intp, v * n_lanes))

            accs = []
            for v in range(vecs):
                slot = cgutils.alloca_once(builder, vec)
                builder.store(builder.load(vector_at(init_p, offset(i_, v)), align=align), slot)
                accs.append(slot)
            zeros = ir.Constant(ir.VectorType(ir.IntType(32), n_lanes), [0] * n_lanes)
            with cgutils.for_range(builder, count_) as loop:
                q = loop.index
                a = builder.load(builder.gep(s_p, [builder.add(s_, builder.mul(q, s_step_))]))
                one = builder.insert_element(ir.Constant(vec, ir.Undefined), a,
                                             ir.Constant(ir.IntType(32), 0))
                a_vec = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), zeros)
                row = builder.add(m_, builder.mul(q, m_step_))
                for v, slot in enumerate(accs):
                    mv = builder.load(vector_at(m_p, offset(row, v)), align=align)
                    prod = builder.fmul(a_vec, mv, flags=("contract",))
                    builder.store(builder.fadd(builder.load(slot), prod, flags=("contract",)),
                                  slot)
            for v, slot in enumerate(accs):
                builder.store(builder.load(slot), vector_at(out_p, offset(o_, v)), align=align)
            return context.get_dummy_value()

        return sig, codegen

    return tile_of


# ``tile`` covers VECS vectors of a row, ``vector_tile`` one (the columns
# left over); the caller loops over what neither covers.
tile = _make_tile(VECS)
vector_tile = _make_tile(1)
