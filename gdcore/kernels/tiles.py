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

for ``c < width``; :data:`pair_tile` does the same for a second row at
``o + o_row``, ``i + i_row``, ``s + s_row`` with the same ``M`` rows, so each
vector of ``M`` is loaded once for two rows and eight accumulators are in
flight.  The vectors are 32 bytes (8 float32 or 4 float64:
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


def _make_tile(vecs, rows, scaled=True):
    @intrinsic
    def tile_of(typingctx, out, o, o_row, init, i, i_row, S, s, s_row, s_step, M, m, m_step,
                count):
        arrays = (out, init, S, M)
        ints = (o, o_row, i, i_row, s, s_row, s_step, m, m_step, count)
        if not (all(_flat(a) for a in arrays) and all(isinstance(t, types.Integer) for t in ints)
                and len({a.dtype for a in arrays}) == 1
                and isinstance(out.dtype, types.Float)):
            return None
        sig = types.void(out, o, o_row, init, i, i_row, S, s, s_row, s_step, M, m, m_step,
                         count)

        def codegen(context, builder, signature, args):
            tys = signature.args
            intp = context.get_value_type(types.intp)

            def data(k):
                return make_array(tys[k])(context, builder, args[k]).data

            def index(k):
                return context.cast(builder, args[k], tys[k], types.intp)

            out_p, init_p, s_p, m_p = data(0), data(3), data(6), data(10)
            o_, o_row_, i_, i_row_, s_, s_row_, s_step_, m_, m_step_, count_ = (
                index(k) for k in (1, 2, 4, 5, 7, 8, 9, 11, 12, 13))
            elem = context.get_value_type(tys[0].dtype)
            n_lanes = lanes(tys[0].dtype)
            vec = ir.VectorType(elem, n_lanes)
            align = tys[0].dtype.bitwidth // 8

            def vector_at(ptr, at):
                return builder.bitcast(builder.gep(ptr, [at]), vec.as_pointer())

            def offset(at, row, row_step, v):
                at = builder.add(at, ir.Constant(intp, v * n_lanes))
                return builder.add(at, builder.mul(ir.Constant(intp, row), row_step))

            accs = {}
            for row in range(rows):
                for v in range(vecs):
                    slot = cgutils.alloca_once(builder, vec)
                    first = builder.load(vector_at(init_p, offset(i_, row, i_row_, v)),
                                         align=align)
                    builder.store(first, slot)
                    accs[row, v] = slot
            zeros = ir.Constant(ir.VectorType(ir.IntType(32), n_lanes), [0] * n_lanes)
            with cgutils.for_range(builder, count_) as loop:
                q = loop.index
                at = builder.add(s_, builder.mul(q, s_step_))
                m_row = builder.add(m_, builder.mul(q, m_step_))
                mvs = [builder.load(vector_at(m_p, offset(m_row, 0, m_step_, v)), align=align)
                       for v in range(vecs)]
                for row in range(rows):
                    if scaled:
                        a = builder.load(builder.gep(s_p, [offset(at, row, s_row_, 0)]))
                        one = builder.insert_element(ir.Constant(vec, ir.Undefined), a,
                                                     ir.Constant(ir.IntType(32), 0))
                        a_vec = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                                       zeros)
                    for v in range(vecs):
                        slot = accs[row, v]
                        term = (builder.fmul(a_vec, mvs[v], flags=("contract",)) if scaled
                                else mvs[v])
                        builder.store(builder.fadd(builder.load(slot), term,
                                                   flags=("contract",)), slot)
            for (row, v), slot in accs.items():
                builder.store(builder.load(slot), vector_at(out_p, offset(o_, row, o_row_, v)),
                              align=align)
            return context.get_dummy_value()

        return sig, codegen

    return tile_of


# ``pair_tile`` covers VECS vectors of two rows, ``tile`` of one row,
# ``vector_tile`` one vector of one row (the columns left over); the caller
# loops over what none covers.
pair_tile = _make_tile(VECS, 2)
tile = _make_tile(VECS, 1)
vector_tile = _make_tile(1, 1)
# The same without the scalars (``S``, ``s``, ``s_row``, ``s_step`` are not
# read): sums of rows of ``M``, such as a bias gradient.
sum_tile = _make_tile(VECS, 1, scaled=False)
sum_vector_tile = _make_tile(1, 1, scaled=False)
