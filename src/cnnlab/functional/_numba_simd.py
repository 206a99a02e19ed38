"""Eight-lane float32 vectors for compiled kernels (Numba): a type and the operations on it.

Numba's loop vectoriser turns a simple loop into SIMD code, but not a matrix product's register
block: the 12 running sums of a 6 x 16 tile, each updated once per step of the shared dimension,
stay scalar (measured: 4.4 GFLOP/s for such a kernel written with scalar or array sums).  Here
a value of type :data:`f32x8` is an LLVM ``<8 x float>``, which the compiler keeps in one AVX
register, and each operation is a few lines of LLVM IR (``numba.extending.intrinsic``):

- :func:`vzero` ``()`` -> eight zeros;
- :func:`vload` ``(a, i)`` -> ``a[i:i+8]`` of a contiguous float32 array;
- :func:`vstore` ``(a, i, v)``: ``a[i:i+8] = v``;
- :func:`vfma_at` ``(acc, a, i, v)`` -> ``acc + a[i] * v`` (``a[i]`` broadcast to the eight lanes,
  one rounding per lane: LLVM's ``fma``);
- :func:`vadd`, :func:`vsub` ``(a, b)`` -> ``a + b``, ``a - b`` lane by lane (the Winograd transforms);
- :func:`vfma` ``(acc, a, b)`` -> ``acc + a * b`` lane by lane, one rounding; :func:`vsum` ``(v,
  scratch)`` -> the lanes' sum in a fixed order (the first layers' weight gradient);
- :func:`prefetch_write` ``(a, i)``: a hint; and :func:`fma_block`, one step of the 6 x 16
  register block that every product kernel runs (twelve :func:`vfma_at`, inlined).

And sixteen-lane vectors, :data:`f32x16` (an LLVM ``<16 x float>``: one AVX-512 register, or two
AVX ones where the CPU has no AVX-512): :func:`wload`, :func:`wstore`, :func:`wfma_at` as their
eight-lane namesakes, :func:`wfma` and :func:`wmul` lane by lane, :func:`wfma_rows`, six rows
of a block of 16 filters, and :func:`wstore_lanes`, a store of some of the lanes (a mask).  The product
kernels run their 6 x 16 blocks with these, and where :data:`WIDE` (the CPU has AVX-512) two
blocks at once, 12 x 16 in 12 registers of the 32: each step one load of 16 weights, 12 broadcast
inputs and 12 ``vfmadd231ps`` of 16 lanes, half the instructions of two 8-lane 6 x 16 steps for
the same sums (on the 2-core AMD EPYC of docs/BENCHMARKS.md, the forward of N32 C16 24x24 -> 32
k5 p2: 3,067 -> 2,791 us on 2 threads, 5,377 -> 5,011 on one, the same bits).  Without AVX-512
a 16-lane operation is compiled as two 8-lane ones, and the 6 x 16 block is the 8-lane code.

There is no bounds check and no wrap-around of negative indices: the caller guarantees
``0 <= i`` and ``i + 8 <= a.size`` (``i < a.size`` for :func:`vfma_at`).  With these, the 6 x 16
block of :mod:`cnnlab.functional._numba_implicit` compiles to the loop a BLAS writes by hand (two
vector loads, six broadcasts and twelve ``vfmadd231ps`` per step) and ran a 64 x 288 by 288 x 12544
product at 129-138 GFLOP/s on 2 cores, against 93-100 for OpenBLAS on the same operands.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 8
_VEC = ir.VectorType(ir.FloatType(), LANES)
_WIDE_VEC = ir.VectorType(ir.FloatType(), 2 * LANES)
_BYTE_PTR = ir.IntType(8).as_pointer()


class F32x8(types.Type):
    """The Numba type of eight float32 lanes (an LLVM ``<8 x float>``)."""

    def __init__(self) -> None:
        super().__init__(name="f32x8")


f32x8 = F32x8()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


class F32x16(types.Type):
    """The Numba type of sixteen float32 lanes (an LLVM ``<16 x float>``)."""

    def __init__(self) -> None:
        super().__init__(name="f32x16")


f32x16 = F32x16()


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _WIDE_VEC)


def _wide_cpu() -> bool:
    """Whether the compiled kernels' target CPU has AVX-512 (Foundation): Numba's own target (the
    host's CPU unless ``NUMBA_CPU_NAME`` names another, with ``NUMBA_CPU_FEATURES``)."""
    import llvmlite.binding as llvm

    name, features = numba.config.CPU_NAME, numba.config.CPU_FEATURES
    if name and name != "host":
        return "+avx512f" in (features or "").split(",")
    try:
        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:  # (features not known on this platform)
        return False


# Whether the product kernels run two 6 x 16 blocks at once (see the module's notes).
WIDE = _wide_cpu()
# Whether the steps of :func:`_slide_sums` write their instructions out (AVX-512 ones): fixed at import, as the
# target CPU is, apart from ``WIDE``, which tests switch to run the kernels' other block.
WIDE_ASM = WIDE
if WIDE_ASM:  # (the instructions are parsed by LLVM's assembler, which Numba does not set up)
    import llvmlite.binding as _llvm

    _llvm.initialize_native_asmparser()


def _element_ptr(context, builder, arr_type, arr, index):
    data = context.make_array(arr_type)(context, builder, arr).data
    return builder.gep(data, [index])


def _fma(builder, a, b, c):
    vec = a.type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                        f"llvm.fma.v{vec.count}f32")
    return builder.call(fn, [a, b, c])


def _splat(builder, scalar, vec):
    """``scalar`` in every lane of a vector of type ``vec``."""
    lane0 = builder.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(lane0, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), vec.count), [0] * vec.count))


def _float32_array(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.layout == "C"


def _vector_ops(vec, vtype):
    """``(zero, load, store, fma_at)``: the intrinsics of vectors of LLVM type ``vec`` (Numba type
    ``vtype``), as documented at their names below."""
    lanes = vec.count

    @intrinsic
    def zero(typingctx):
        def codegen(context, builder, sig, args):
            return ir.Constant(vec, [0.0] * lanes)
        return vtype(), codegen

    @intrinsic
    def load(typingctx, arr, index):
        if not (_float32_array(arr) and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
            return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=4)
        return vtype(arr, index), codegen

    @intrinsic
    def store(typingctx, arr, index, value):
        if not (_float32_array(arr) and isinstance(index, types.Integer) and value == vtype):
            return None

        def codegen(context, builder, sig, args):
            ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
            builder.store(args[2], builder.bitcast(ptr, vec.as_pointer()), align=4)
            return context.get_dummy_value()
        return types.none(arr, index, value), codegen

    @intrinsic
    def fma_at(typingctx, acc, arr, index, value):
        if not (acc == vtype and _float32_array(arr) and isinstance(index, types.Integer) and value == vtype):
            return None

        def codegen(context, builder, sig, args):
            scalar = builder.load(_element_ptr(context, builder, sig.args[1], args[1], args[2]), align=4)
            return _fma(builder, _splat(builder, scalar, vec), args[3], args[0])
        return vtype(acc, arr, index, value), codegen

    return zero, load, store, fma_at


# vzero() -> eight zeros; vload(a, i) -> a[i:i+8] as a vector (a: C-contiguous float32; no bounds
# check); vstore(a, i, v): a[i:i+8] = v; vfma_at(acc, a, i, v) -> acc + a[i] * v, a[i] broadcast to
# every lane, one rounding.  And the same of sixteen lanes: wzero, wload, wstore, wfma_at.
vzero, vload, vstore, vfma_at = _vector_ops(_VEC, f32x8)
wzero, wload, wstore, wfma_at = _vector_ops(_WIDE_VEC, f32x16)


def _steps_codegen(positions: int, panels: int):
    """The code of an intrinsic whose arguments are ``positions * panels`` sums, ``arr, base,
    index`` and ``panels`` values: the new sums ``sum + arr[base + index + o] * v`` for the
    offsets ``o = 0 .. positions - 1``, the panels of one offset together, one rounding per lane:
    a slide of one tap (:func:`_slide_sums`)."""
    n = positions * panels

    def codegen(context, builder, sig, args):
        base_ptr = _element_ptr(context, builder, sig.args[n], args[n], args[n + 1])
        idx = context.cast(builder, args[n + 2], sig.args[n + 2], types.int64)
        new = _slide_sums(builder, list(args[:n]), base_ptr, idx, list(args[n + 3:]), positions, 1, panels)
        return context.make_tuple(builder, sig.return_type, new)
    return codegen


def _steps_types(sums, arr, base, index, values) -> bool:
    return (all(t == f32x16 for t in (*sums, *values)) and _float32_array(arr)
            and isinstance(base, types.Integer) and isinstance(index, types.Integer))


@intrinsic
def wfma_idx(typingctx, c, arr, base, index, v):
    """``c + arr[base + index] * v`` (sixteen lanes, the input broadcast, one rounding per lane),
    the address written as base and index (:func:`_slide_sums`): a block's step at one position."""
    if not _steps_types((c,), arr, base, index, (v,)):
        return None
    return f32x16(c, arr, base, index, v), _single(_steps_codegen(1, 1))


@intrinsic
def wfma2_idx(typingctx, c, e, arr, base, index, v, u):
    """``(c + a * v, e + a * u)``, ``a = arr[base + index]`` broadcast once for both (the two
    panels' step at one position, the address as base and index)."""
    if not _steps_types((c, e), arr, base, index, (v, u)):
        return None
    return types.UniTuple(f32x16, 2)(c, e, arr, base, index, v, u), _steps_codegen(1, 2)


@intrinsic
def wfma_run6(typingctx, c0, c1, c2, c3, c4, c5, arr, base, index, v):
    """Six rows ``c_i + arr[base + index + i] * v``, i = 0 .. 5: six positions one after another,
    each input read at a fixed distance from one address."""
    sums = (c0, c1, c2, c3, c4, c5)
    if not _steps_types(sums, arr, base, index, (v,)):
        return None
    return types.UniTuple(f32x16, 6)(*sums, arr, base, index, v), _steps_codegen(6, 1)


@intrinsic
def wfma2_run6(typingctx, c0, e0, c1, e1, c2, e2, c3, e3, c4, e4, c5, e5, arr, base, index, v, u):
    """:func:`wfma_run6` by two panels: ``(c_i + a_i * v, e_i + a_i * u)``, ``a_i = arr[base +
    index + i]`` broadcast once for both (the new sums in the order of the arguments)."""
    sums = (c0, e0, c1, e1, c2, e2, c3, e3, c4, e4, c5, e5)
    if not _steps_types(sums, arr, base, index, (v, u)):
        return None
    return types.UniTuple(f32x16, 12)(*sums, arr, base, index, v, u), _steps_codegen(6, 2)


def _single(codegen):
    """``codegen`` of a one-sum intrinsic, returning the sum rather than a tuple of one."""
    def single(context, builder, sig, args):
        tup = codegen(context, builder, sig.replace(return_type=types.UniTuple(f32x16, 1)), args)
        return builder.extract_value(tup, 0)
    return single


def _slide_sums(builder, sums, base_ptr, idx, ws, positions: int, width: int, panels: int):
    """``positions`` positions one after another by ``width`` taps one after another (inputs
    ``a[t]``, ``t = 0 .. positions + width - 2``, from ``base_ptr + 4 * idx``), each input
    broadcast once and multiplied into every sum it reaches: sum ``(i, j)`` (position ``i``, panel
    ``j``, at ``i * panels + j``) plus ``a[i + r] * ws[r * panels + j]`` for r = 0, 1, ... in that
    order, one rounding each: the same sums, in the same order, as ``width`` steps of one tap each.
    With AVX-512 one unit of inline assembly (``vbroadcastss`` into a scratch register read by the
    ``vfmadd231ps``: LLVM folds a broadcast into the multiply-add it feeds, and such multiply-adds
    ran at one a cycle on the Zen 5 of round 35; each address as base, index and displacement, no
    ``lea`` per input); LLVM's ``fma`` of a broadcast otherwise (the same bits)."""
    n, vec = positions * panels, _WIDE_VEC
    if WIDE_ASM:
        scratch, base_op = n, 2 * n + 1  # (operands: sums, scratch, tied sums, base, index, weights)
        lines = []
        for t in range(positions + width - 1):
            lines.append(f"vbroadcastss {4 * t}(${base_op}, ${base_op + 1}, 4), ${scratch}")
            for r in range(width):
                i = t - r
                if 0 <= i < positions:
                    for j in range(panels):
                        lines.append(f"vfmadd231ps ${scratch}, ${base_op + 2 + r * panels + j}, ${i * panels + j}")
        constraints = ",".join(["=v"] * n + ["=&v"] + [str(i) for i in range(n)] + ["r", "r"] + ["v"] * len(ws))
        fn = ir.FunctionType(ir.LiteralStructType([vec] * (n + 1)), [vec] * n + [base_ptr.type, idx.type]
                             + [vec] * len(ws))
        out = builder.asm(fn, "\n\t".join(lines), constraints, [*sums, base_ptr, idx, *ws], False)
        return [builder.extract_value(out, i) for i in range(n)]
    new = list(sums)
    for t in range(positions + width - 1):
        at = builder.gep(base_ptr, [builder.add(idx, ir.Constant(ir.IntType(64), t))])
        spread = _splat(builder, builder.load(at, align=4), vec)
        for r in range(width):
            i = t - r
            if 0 <= i < positions:
                for j in range(panels):
                    new[i * panels + j] = _fma(builder, spread, ws[r * panels + j], new[i * panels + j])
    return new


def _slide_codegen(positions: int, width: int, panels: int):
    """The code of :func:`wfma_slide` / :func:`wfma2_slide` (:func:`_slide_sums`; the sums and the
    weights come as tuples)."""
    def codegen(context, builder, sig, args):
        sums, ws = list(cgutils.unpack_tuple(builder, args[0])), list(cgutils.unpack_tuple(builder, args[4]))
        base_ptr = _element_ptr(context, builder, sig.args[1], args[1], args[2])
        idx = context.cast(builder, args[3], sig.args[3], types.int64)
        return context.make_tuple(builder, sig.return_type,
                                  _slide_sums(builder, sums, base_ptr, idx, ws, positions, width, panels))
    return codegen


def _slide_types(sums, arr, base, index, weights, panels: int):
    """``(positions, width)`` of a slide's arguments, or None where they do not fit."""
    if not (isinstance(sums, types.UniTuple) and sums.dtype == f32x16 and isinstance(weights, types.UniTuple)
            and weights.dtype == f32x16 and _float32_array(arr) and isinstance(base, types.Integer)
            and isinstance(index, types.Integer) and sums.count % panels == 0 and weights.count % panels == 0):
        return None
    return sums.count // panels, weights.count // panels


@intrinsic
def wfma_slide(typingctx, sums, arr, base, index, weights):
    """A run of positions by a row of taps one after another, in one step: ``sums`` (a tuple of
    ``P`` sixteen-lane sums, position ``i``'s at ``i``), ``weights`` (``R`` vectors, tap ``r``'s at
    ``r``); sum ``i`` plus ``arr[base + index + i + r] * weights[r]`` for r = 0 .. R-1 in order,
    one rounding each (as ``R`` one-tap steps, the same bits).  Each of the ``P + R - 1`` inputs
    is read once (``vbroadcastss``) for every sum it reaches: ``P + R - 1`` reads for ``P * R``
    multiply-adds, where one tap at a time reads ``P`` inputs per ``P``."""
    shape = _slide_types(sums, arr, base, index, weights, 1)
    if shape is None:
        return None
    return sums(sums, arr, base, index, weights), _slide_codegen(shape[0], shape[1], 1)


@intrinsic
def wfma2_slide(typingctx, sums, arr, base, index, weights):
    """:func:`wfma_slide` by two panels of 16 filters: ``sums`` position by position, the two
    panels' of a position together (``2i``, ``2i + 1``); ``weights`` tap by tap, the two panels'
    together; each input broadcast once for both panels."""
    shape = _slide_types(sums, arr, base, index, weights, 2)
    if shape is None:
        return None
    return sums(sums, arr, base, index, weights), _slide_codegen(shape[0], shape[1], 2)


@intrinsic
def wfma_pair_at(typingctx, acc, arr, index, value):
    """``acc + [a[i], a[i+1], a[i], a[i+1], ...] * value``: the two values ``a[i]``, ``a[i+1]``
    (C-contiguous float32) broadcast to the even and the odd lanes of sixteen (one 8-byte load
    broadcast, ``vbroadcastsd``), one rounding per lane.  The product kernels' blocks of 8 filters
    and 2 positions: lane ``2j + e`` holds filter ``j`` at position ``p + e``."""
    if not (acc == f32x16 and _float32_array(arr) and isinstance(index, types.Integer) and value == f32x16):
        return None

    def codegen(context, builder, sig, args):
        pair = ir.VectorType(ir.FloatType(), 2)
        ptr = _element_ptr(context, builder, sig.args[1], args[1], args[2])
        two = builder.load(builder.bitcast(ptr, pair.as_pointer()), align=4)
        spread = builder.shuffle_vector(two, ir.Constant(pair, ir.Undefined),
                                        ir.Constant(ir.VectorType(ir.IntType(32), 16), [0, 1] * 8))
        return _fma(builder, spread, args[3], args[0])
    return f32x16(acc, arr, index, value), codegen


@intrinsic
def copy_pair(typingctx, dst, i, src, j):
    """``dst[i:i+2] = src[j:j+2]`` (C-contiguous float32 arrays) as one 8-byte load and store, the
    bits unchanged: the pairs' kernels store two adjacent outputs of a filter at once."""
    if not (_float32_array(dst) and isinstance(i, types.Integer) and _float32_array(src)
            and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        word = ir.IntType(64).as_pointer()
        value = builder.load(builder.bitcast(_element_ptr(context, builder, sig.args[2], args[2], args[3]), word),
                             align=4)
        builder.store(value, builder.bitcast(_element_ptr(context, builder, sig.args[0], args[0], args[1]), word),
                      align=4)
        return context.get_dummy_value()
    return types.none(dst, i, src, j), codegen


@intrinsic
def wstore_lanes(typingctx, arr, index, value, lo, hi):
    """``arr[index + l] = value[l]`` for the lanes ``lo <= l < hi`` of a sixteen-lane ``value``
    (C-contiguous float32 ``arr``), the others left alone: one masked store (LLVM's
    ``masked.store``; a ``vmovups`` under a mask register with AVX-512), the bits unchanged.  Only
    the stored lanes' addresses need lie in ``arr``: ``index`` itself may be up to ``lo`` before
    its start.  No bounds check."""
    if not (_float32_array(arr) and isinstance(index, types.Integer) and value == f32x16
            and isinstance(lo, types.Integer) and isinstance(hi, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        index = context.cast(builder, args[1], sig.args[1], types.int64)
        ptr = builder.bitcast(_element_ptr(context, builder, sig.args[0], args[0], index), _WIDE_VEC.as_pointer())
        lanes = ir.Constant(ir.VectorType(i64, 16), list(range(16)))
        low, high = (_splat(builder, context.cast(builder, args[k], sig.args[k], types.int64), lanes.type)
                     for k in (3, 4))
        mask = builder.and_(builder.icmp_signed(">=", lanes, low), builder.icmp_signed("<", lanes, high))
        mask_type = ir.VectorType(ir.IntType(1), 16)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_WIDE_VEC, _WIDE_VEC.as_pointer(), i32, mask_type]),
            "llvm.masked.store.v16f32.p0")
        builder.call(fn, [args[2], ptr, ir.Constant(i32, 4), mask])
        return context.get_dummy_value()
    return types.none(arr, index, value, lo, hi), codegen


def _swap_mask(b: int, second: bool) -> ir.Constant:
    """The shuffle of two rows ``i`` and ``i + b`` (``i``'s bit ``b`` clear) of a 16 x 16 block that
    swaps their off-diagonal blocks of ``b`` lanes: row ``i`` keeps its lanes without bit ``b`` and
    takes row ``i + b``'s lanes ``j - b`` in the others (``second``: row ``i + b``'s new lanes)."""
    lanes = [(16 + j if j & b else j + b) if second else (16 + j - b if j & b else j) for j in range(16)]
    return ir.Constant(ir.VectorType(ir.IntType(32), 16), lanes)


def _transposed(cols: int, strided: bool = False):
    """The intrinsic ``dst[j + 16*c + r] = src[i + r*stride + c]`` for ``r`` in 0 .. 15 and ``c``
    in 0 .. cols-1 (16 or 8; see :func:`transpose16`); ``strided``: with a last argument
    ``dstride``, ``dst[j + dstride*c + r]`` (:func:`transpose16_to`)."""

    def typed(arrays, ints, signature):
        if not (all(_float32_array(a) for a in arrays)
                and all(isinstance(t, types.Integer) and t.bitwidth == 64 for t in ints)):
            return None
        return signature, codegen

    def codegen(context, builder, sig, args):
        at, step, out = args[1], args[2], args[4]
        pitch = args[5] if strided else ir.Constant(out.type, 16)
        vec = ir.VectorType(ir.FloatType(), cols)
        rows = []
        for r in range(16):
            index = builder.add(at, builder.mul(step, ir.Constant(step.type, r)))
            ptr = builder.bitcast(_element_ptr(context, builder, sig.args[0], args[0], index), vec.as_pointer())
            rows.append(builder.load(ptr, align=4))
        if cols == 8:  # (row r's 8 values and row r + 8's in one vector: two 8 x 8 blocks side by side)
            both = ir.Constant(ir.VectorType(ir.IntType(32), 16), list(range(16)))
            rows = [builder.shuffle_vector(rows[r], rows[r + 8], both) for r in range(8)]
        b = cols // 2
        while b:
            for r in range(cols):
                if not r & b:
                    first, second = rows[r], rows[r + b]
                    rows[r] = builder.shuffle_vector(first, second, _swap_mask(b, False))
                    rows[r + b] = builder.shuffle_vector(first, second, _swap_mask(b, True))
            b //= 2
        for c in range(cols):
            index = builder.add(out, builder.mul(pitch, ir.Constant(out.type, c)))
            ptr = builder.bitcast(_element_ptr(context, builder, sig.args[3], args[3], index),
                                  _WIDE_VEC.as_pointer())
            builder.store(rows[c], ptr, align=4)
        return context.get_dummy_value()

    if strided:
        @intrinsic
        def transpose_to(typingctx, src, i, stride, dst, j, dstride):
            return typed((src, dst), (i, stride, j, dstride), types.none(src, i, stride, dst, j, dstride))
        return transpose_to

    @intrinsic
    def transpose(typingctx, src, i, stride, dst, j):
        return typed((src, dst), (i, stride, j), types.none(src, i, stride, dst, j))
    return transpose


transpose16 = _transposed(16)
transpose16.__doc__ = """``dst[j + 16*c + r] = src[i + r*stride + c]`` for ``r, c`` in 0 .. 15 (C-contiguous float32
arrays, 64-bit indices): a 16 x 16 block transposed, its rows read as 16 vectors, swapped
block by block in registers (off-diagonal blocks of 8, 4, 2 and 1 lanes: 64 two-vector
shuffles) and written as 16 vectors; the bits unchanged.  No bounds check.  The weight
gradient copies 16 filters of 16 positions of the upstream gradient channels-last with it
(one value at a time, that copy took a fifth of the kernel where each thread had 100 taps)."""
transpose16_to = _transposed(16, strided=True)
transpose16_to.__doc__ = """:func:`transpose16` into rows ``dstride`` apart: ``dst[j + dstride*c + r] =
src[i + r*stride + c]`` for ``r, c`` in 0 .. 15 (each of the 16 vectors written to a row of its own).  The weight
gradient's sums, 16 filters a tap, go to the gradient's rows of taps this way, 16 taps of a filter
in one vector."""
transpose8 = _transposed(8)
transpose8.__doc__ = """:func:`transpose16` of 16 rows of 8 values (``c`` in 0 .. 7): row ``r``'s 8 values and row
``r + 8``'s joined in one vector, then the two 8 x 8 blocks transposed side by side (off-diagonal
blocks of 4, 2 and 1 lanes); 8 vectors of 16 written."""


@intrinsic
def prefetch_write(typingctx, arr, index):
    """A hint that ``arr[index]`` (C-contiguous float32) is about to be written: its cache line is
    fetched into every level now (LLVM's ``prefetch``, for writing), so that a later burst of
    stores to lines out of the cache does not stall.  No effect on any value; no bounds check
    (a hint for an address outside the array does not fault)."""
    if not (_float32_array(arr) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_element_ptr(context, builder, sig.args[0], args[0], args[1]), _BYTE_PTR)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_BYTE_PTR] + [ir.IntType(32)] * 3), "llvm.prefetch.p0")
        rw, locality, data = (ir.Constant(ir.IntType(32), v) for v in (1, 3, 1))
        builder.call(fn, [ptr, rw, locality, data])
        return context.get_dummy_value()
    return types.none(arr, index), codegen


def _binary(name: str, doc: str, vtype=f32x8):
    """The intrinsic ``op(a, b)`` of two vectors of ``vtype``: LLVM's instruction ``name``, lane by lane."""
    @intrinsic
    def op(typingctx, a, b):
        if not (a == vtype and b == vtype):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1])
        return vtype(a, b), codegen
    op.__doc__ = doc
    return op


def _lanewise_fma(vtype, doc: str):
    """The intrinsic ``fma(acc, a, b)`` of three vectors of ``vtype``: ``acc + a * b`` lane by lane."""
    @intrinsic
    def fma(typingctx, acc, a, b):
        if not (acc == vtype and a == vtype and b == vtype):
            return None

        def codegen(context, builder, sig, args):
            return _fma(builder, args[1], args[2], args[0])
        return vtype(acc, a, b), codegen
    fma.__doc__ = doc
    return fma


vadd = _binary("fadd", "``a + b``, lane by lane.")
vsub = _binary("fsub", "``a - b``, lane by lane.")
vmul = _binary("fmul", "``a * b``, lane by lane.")
vfma = _lanewise_fma(f32x8, "``acc + a * b``, lane by lane, one rounding per lane (LLVM's ``fma``).")
wmul = _binary("fmul", "``a * b`` on sixteen lanes.", f32x16)
wfma = _lanewise_fma(f32x16, "``acc + a * b`` on sixteen lanes, one rounding per lane (the FFT's products).")


@numba.njit(inline="always")
def vsum(v, scratch):  # pragma: no cover - compiled
    """The sum of the eight lanes of ``v``, as ``((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7))``
    (stored through ``scratch``, a float32 array of at least 8 values)."""
    vstore(scratch, 0, v)
    low = (scratch[0] + scratch[1]) + (scratch[2] + scratch[3])
    return low + ((scratch[4] + scratch[5]) + (scratch[6] + scratch[7]))


@numba.njit(inline="always")
def fma_block(c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, arr, i0, i1, i2, i3, i4, i5, v0, v1
              ):  # pragma: no cover - compiled
    """One step of a 6 x 16 register block (the kernels' product): row ``r``'s two vectors of
    sums ``c<r>0, c<r>1`` plus ``arr[i_r]`` (broadcast) times ``v0`` and ``v1``, for the six rows;
    the 12 new sums.  Inlined into the caller's loop (the same machine code as the twelve
    :func:`vfma_at` written out)."""
    return (vfma_at(c00, arr, i0, v0), vfma_at(c01, arr, i0, v1), vfma_at(c10, arr, i1, v0), vfma_at(c11, arr, i1, v1),
            vfma_at(c20, arr, i2, v0), vfma_at(c21, arr, i2, v1), vfma_at(c30, arr, i3, v0), vfma_at(c31, arr, i3, v1),
            vfma_at(c40, arr, i4, v0), vfma_at(c41, arr, i4, v1), vfma_at(c50, arr, i5, v0), vfma_at(c51, arr, i5, v1))


@numba.njit(inline="always")
def wfma_rows(c0, c1, c2, c3, c4, c5, arr, i0, i1, i2, i3, i4, i5, v):  # pragma: no cover - compiled
    """Six rows of a block of 16 filters: ``c<r> + arr[i_r] * v`` (broadcast) for the six rows
    (as :func:`fma_block`'s twelve eight-lane sums, in six sixteen-lane ones)."""
    return (wfma_at(c0, arr, i0, v), wfma_at(c1, arr, i1, v), wfma_at(c2, arr, i2, v), wfma_at(c3, arr, i3, v),
            wfma_at(c4, arr, i4, v), wfma_at(c5, arr, i5, v))


@numba.njit(inline="always")
def wfma_pair_rows(c0, c1, c2, c3, c4, c5, arr, i0, i1, i2, i3, i4, i5, v):  # pragma: no cover - compiled
    """:func:`wfma_rows` with each row's two positions ``arr[i_r]``, ``arr[i_r + 1]`` broadcast to
    the even and odd lanes (:func:`wfma_pair_at`)."""
    return (wfma_pair_at(c0, arr, i0, v), wfma_pair_at(c1, arr, i1, v), wfma_pair_at(c2, arr, i2, v),
            wfma_pair_at(c3, arr, i3, v), wfma_pair_at(c4, arr, i4, v), wfma_pair_at(c5, arr, i5, v))


@numba.njit(inline="always")
def wfma_span_rows(span, c0, c1, c2, c3, c4, c5, arr, i0, i1, i2, i3, i4, i5, v):  # pragma: no cover - compiled
    """:func:`wfma_rows` (``span`` 1) or :func:`wfma_pair_rows` (``span`` 2): for kernels written
    once for both, with ``span`` a constant of their closure (inlined, the other branch folds
    away; a closure that held the function itself would not be found again in Numba's disk cache
    by another process, whose function object is another)."""
    if span == 1:
        return wfma_rows(c0, c1, c2, c3, c4, c5, arr, i0, i1, i2, i3, i4, i5, v)
    return wfma_pair_rows(c0, c1, c2, c3, c4, c5, arr, i0, i1, i2, i3, i4, i5, v)


@numba.njit(inline="always")
def wfma_span_blocks(span, c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5, arr, i0, i1, i2, i3, i4, i5, j0, j1, j2, j3,
                     j4, j5, v):  # pragma: no cover - compiled
    """Two blocks' rows at once with the same ``v`` (:func:`wfma_span_rows` of ``c`` at the
    inputs ``i``, then of ``d`` at ``j``): a step of the product kernels' 12 x 16 block."""
    c = wfma_span_rows(span, c0, c1, c2, c3, c4, c5, arr, i0, i1, i2, i3, i4, i5, v)
    d = wfma_span_rows(span, d0, d1, d2, d3, d4, d5, arr, j0, j1, j2, j3, j4, j5, v)
    return c + d
