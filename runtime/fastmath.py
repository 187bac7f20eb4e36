"""Vectorizable transcendental functions for numba-generated CPU kernels.

numba lowers ``np.exp`` / ``math.exp`` (and log, tanh, erf) to scalar libm calls
(``expf`` ...).  A call inside a loop stops LLVM's loop vectorizer, so a fused
softmax with ``np.exp`` runs 4-5x slower than torch (see
shared/research/numba_codegen.md, section 4).  This module provides replacements
built only from arithmetic, ``llvm.fma``, ``llvm.rint`` and integer bit tricks,
which LLVM vectorizes to zmm/ymm code when they are inlined into a kernel loop.

Public API (all usable inside ``@njit`` code, including ``parallel=True`` /
``prange`` kernels, and from plain Python on scalars or arrays)::

    fast_exp(x)  fast_log(x)  fast_tanh(x)  fast_sigmoid(x)  fast_erf(x)
    fast_max(a, b)  fast_min(a, b)   llvm.maxnum / minnum (njit code only)
    FAST_FUNCTIONS = {"exp": fast_exp, "log": ..., "tanh": ..., "sigmoid": ..., "erf": ...}
    bitcast_to_float(i)   int32 -> float32, int64 -> float64 (same bits)
    bitcast_to_int(x)     float32 -> int32, float64 -> int64 (same bits)
    vector_asm_stats(name, dtype)  asm evidence for a loop over fast_<name>
    elementwise_kernel(name, fastmath)  cached njit loop out[i] = fast_<name>(x[i])
    SOURCE_HASH           hash of this file, for kernel cache keys (numba's
                          cache does not see edits of inlined callees)

Typing / dispatch / inlining
----------------------------
Each public name is a plain Python function registered with
``numba.extending.overload``; numba picks the implementation by the argument
type at compile time:

* ``float32``  -> the polynomial implementations below (vectorizable, no libm).
* ``float64``  -> libm (``math.exp``, ``math.log``, ``math.tanh``, ``math.erf``;
  sigmoid = the overflow-safe ``e/(1+e)`` form with ``math.exp``).  Fully
  float64-accurate but *not* vectorized (one libm call per element).
* integers / bool -> converted to float64 (numpy's rule for ``np.exp(int)``).
* anything else (float16, complex, arrays) -> numba typing error.

The overload is compiled ``inline="never"`` with its *own* fastmath flags
(``{"contract", "nsz"}``): numba compiles it once per signature and process,
and LLVM inlines the (small, branch-free) function into the kernel, whose loop
vectorizer then widens it with the rest of the loop body.  Consequences:

* Results do not depend on the kernel's fastmath flags: a kernel compiled with
  ``fastmath=True`` and one with ``fastmath=False`` get bit-identical values,
  FMAs are used in both, and inf/nan handling (compares against 0/inf) is not
  removed by the kernel's ``nnan``/``ninf``.
* Compile time: numba-IR inlining (``inline="always"``) re-types the whole body
  at every call site: 64 call sites took 44 s to compile instead of 2.4 s.
* Conditionals are emitted as LLVM ``select`` (``_select``), never as
  branches, and the exp scaling has one integer chain and one multiply: code
  that LLVM optimised separately must not contain anything the loop vectorizer
  cannot widen (a callee that SimplifyCFG / VectorCombine left with branches or
  ``<2 x float>`` ops did not vectorize after inlining).
* The exactness-critical range reductions use ``llvm.fma`` (never split or
  re-associated), and divisions are plain IEEE ``fdiv`` (no ``arcp``, so LLVM
  does not replace them by ``rcp14`` + Newton, which was 1 ulp off).

Called from Python, ``fast_exp(x)`` etc. run the same compiled code on a scalar
or an ndarray (elementwise; float32 in -> float32 out, else float64).

Accuracy guarantee (float32 input)
----------------------------------
Relative error ``|y - f(x)| / |f(x)|`` against the exact value (float64), for
any kernel fastmath flags.  Checked on every 61st float32 bit pattern (35-70
million inputs per function); measured maxima in brackets.  numpy's own float32
exp/log differ from the exact value by up to 2.5e-7/3.6e-7, so against
``np.<fn>(float32)`` the bounds are about 2x these (all < 5e-7, far inside the
2e-6 the project asks for).

* fast_exp      x in [-87.33, 88.72] (normal results): <= 2e-7 (8.3e-8, 1 ulp).
                x > 88.7228 -> +inf; x < -87.34: gradual underflow, absolute
                error < 0.75 * 2**-149 (one subnormal ulp); x < -103.97 -> +0.
* fast_log      every positive float32 incl. subnormals: <= 2e-7 (9.3e-8).
                Relative to log(x), also near x = 1.  log(+-0) = -inf,
                log(x < 0) = nan, log(+inf) = +inf.
* fast_tanh     all x: <= 2e-7 (1.4e-7); odd polynomial for |x| < 0.625 so
                tiny and subnormal x keep full relative accuracy; exactly
                +-1 for |x| >= 9.02 (where tanh rounds to 1) and +-inf.
                tanh(-0.0) may return +0.0 (``nsz``).
* fast_sigmoid  x >= -87: <= 3e-7 (1.7e-7); below, subnormal results with
                absolute error < 2**-149, +0 below -103.97; 1 for x >= 17.33
                and +inf, exactly 0.5 at 0.
* fast_erf      |x| >= 2**-126: <= 3e-7 (1.7e-7), i.e. relative also around
                the zero crossing (odd polynomial for |x| < 1); subnormal x:
                absolute error <= 1.5 * 2**-149; exactly +-1 for |x| >= 3.92.

nan in -> nan out for all five (through the computation; no nan test is used).

Portability: ``llvm.fma`` is one instruction on every x86-64 CPU with FMA3
(Haswell and later, all Zen) and on aarch64; on older x86 it becomes a correct
but scalar ``fmaf`` libcall (no vectorization).
"""
import hashlib
import math
import os

import numpy as np
import numba
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload, register_jitable

__all__ = [
    "fast_exp", "fast_log", "fast_tanh", "fast_sigmoid", "fast_erf", "fast_max", "fast_min",
    "FAST_FUNCTIONS", "bitcast_to_float", "bitcast_to_int", "vector_asm_stats",
    "elementwise_kernel", "KERNEL_FASTMATH", "SOURCE_HASH",
]

# Helpers are inlined at numba-IR level into the public implementation; the
# public overloads are compiled once (own flags) and inlined by LLVM.
_INLINE = "always"
_INLINE_PUBLIC = "never"
_CALLEE_FASTMATH = {"contract", "nsz"}

# Hash of this file.  Kernels cached with cache=True contain the inlined code of
# these functions, but numba's cache index only tracks the kernel's own source
# file: put SOURCE_HASH into the kernel cache key (content hash) so that a
# change here invalidates them.
with open(os.path.abspath(__file__), "rb") as _f:
    SOURCE_HASH = hashlib.sha256(_f.read()).hexdigest()[:16]
del _f

# ---------------------------------------------------------------------------
# LLVM intrinsics
# ---------------------------------------------------------------------------

_FLOAT_FOR_INT = {types.int32: types.float32, types.int64: types.float64,
                  types.uint32: types.float32, types.uint64: types.float64}
_INT_FOR_FLOAT = {types.float32: types.int32, types.float64: types.int64}


@intrinsic
def bitcast_to_float(typingctx, i):
    """Reinterpret the bits of an int32 (int64) as a float32 (float64)."""
    if i not in _FLOAT_FOR_INT:
        return None
    fty = _FLOAT_FOR_INT[i]

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(fty))
    return fty(i), codegen


@intrinsic
def bitcast_to_int(typingctx, x):
    """Reinterpret the bits of a float32 (float64) as an int32 (int64)."""
    if x not in _INT_FOR_FLOAT:
        return None
    ity = _INT_FOR_FLOAT[x]

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(ity))
    return ity(x), codegen


def _float_arg(*tys):
    return all(isinstance(t, types.Float) for t in tys) and len(set(tys)) == 1


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with a single rounding (llvm.fma); never split by fastmath."""
    if not _float_arg(a, b, c):
        return None

    def codegen(context, builder, sig, args):
        return builder.fma(*args)
    return a(a, b, c), codegen


_DIV_FLAGS = ("nsz",)


@intrinsic
def _fdiv(typingctx, a, b):
    """a / b as a plain fdiv: no ZeroDivisionError check (numba adds one under
    the default error_model='python', and its branch can block vectorization)."""
    if not _float_arg(a, b):
        return None

    def codegen(context, builder, sig, args):
        # Giving the fdiv a flag of our own keeps numba's fastmath pass from
        # adding the enclosing function's flags (it only flags unflagged
        # instructions), so ``arcp`` can never turn it into rcp14 + Newton
        # (1 ulp off: sigmoid(0) came out as 0.49999997).
        return builder.fdiv(*args, flags=_DIV_FLAGS)
    return a(a, b), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select``: branch-free however the
    function is inlined (a Python conditional expression becomes control flow
    that LLVM does not always if-convert, which blocks vectorization)."""
    if not (isinstance(cond, types.Boolean) and _float_arg(a, b)):
        return None

    def codegen(context, builder, sig, args):
        c = context.cast(builder, args[0], sig.args[0], types.boolean)
        return builder.select(c, args[1], args[2])
    return a(cond, a, b), codegen


@intrinsic
def _rint(typingctx, x):
    """Round to nearest integer, ties to even (llvm.rint -> vrndscaleps)."""
    if not _float_arg(x):
        return None

    def codegen(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.rint", [args[0].type])
        return builder.call(fn, args)
    return x(x), codegen


@intrinsic
def fast_max(typingctx, a, b):
    """The larger of two floats of one type, as ``llvm.maxnum``: LLVM vectorizes a max
    reduction over it (10x faster than numba's ``max``, whose compare-and-select is not
    recognized as a reduction).  A NaN operand loses to a number, as in C's fmax."""
    return _minmax(a, b, "llvm.maxnum")


@intrinsic
def fast_min(typingctx, a, b):
    """The smaller of two floats of one type, as ``llvm.minnum`` (see ``fast_max``)."""
    return _minmax(a, b, "llvm.minnum")


def _minmax(a, b, name):
    if not _float_arg(a, b):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic(name, [t], ir.FunctionType(t, [t, t]))
        return builder.call(fn, args)
    return a(a, b), codegen


def _fmt(fty):
    # (bit width, mantissa bits, exponent bias)
    return (32, 23, 127) if fty == types.float32 else (64, 52, 1023)


@intrinsic
def _pow2i(typingctx, n):
    """2.0 ** n for a float n holding an integer in the normal exponent range
    ([-126, 127] for float32), built from bits: (n + bias) << mantissa_bits."""
    if not _float_arg(n):
        return None
    bits, mbits, bias = _fmt(n)

    def codegen(context, builder, sig, args):
        ity = ir.IntType(bits)
        k = builder.fptosi(args[0], ity)
        k = builder.shl(builder.add(k, ity(bias)), ity(mbits))
        return builder.bitcast(k, args[0].type)
    return n(n), codegen


@intrinsic
def _scale_bits(typingctx, x, n):
    """x * 2**n computed by adding n to the exponent field of x (no rounding,
    no fp operation that fastmath could reassociate).  Valid only when the
    result is a normal number."""
    if not _float_arg(x, n):
        return None
    bits, mbits, bias = _fmt(x)

    def codegen(context, builder, sig, args):
        ity = ir.IntType(bits)
        k = builder.shl(builder.fptosi(args[1], ity), ity(mbits))
        k = builder.add(builder.bitcast(args[0], ity), k)
        return builder.bitcast(k, args[0].type)
    return x(x, n), codegen


@intrinsic
def _mantissa(typingctx, x):
    """For a positive normal x = m * 2**e (1 <= m < 2), return m."""
    if not _float_arg(x):
        return None
    bits, mbits, bias = _fmt(x)

    def codegen(context, builder, sig, args):
        ity = ir.IntType(bits)
        k = builder.bitcast(args[0], ity)
        k = builder.or_(builder.and_(k, ity((1 << mbits) - 1)), ity(bias << mbits))
        return builder.bitcast(k, args[0].type)
    return x(x), codegen


@intrinsic
def _exponent(typingctx, x):
    """For a positive normal x = m * 2**e (1 <= m < 2), return float(e)."""
    if not _float_arg(x):
        return None
    bits, mbits, bias = _fmt(x)

    def codegen(context, builder, sig, args):
        ity = ir.IntType(bits)
        k = builder.lshr(builder.bitcast(args[0], ity), ity(mbits))
        k = builder.sub(k, ity(bias))
        return builder.sitofp(k, args[0].type)
    return x(x), codegen


# ---------------------------------------------------------------------------
# float32 constants (module globals of type float32 are frozen as float32
# constants by numba; never mix python float literals into float32 code, that
# would promote the whole expression to float64)
# ---------------------------------------------------------------------------
f32 = np.float32
_ZERO, _HALF, _ONE, _TWO = f32(0.0), f32(0.5), f32(1.0), f32(2.0)
_INF, _NAN = f32(np.inf), f32(np.nan)

# exp: x = n*ln2 + r, |r| <= ln2/2; exp(r) = 1 + r + r^2 * P(r)
# P: near-minimax (Lawson) fit of (exp(r) - 1 - r) / r^2, relative weight, on
# |r| <= 0.3484; fit error 3.2e-9.
_LOG2E = f32(1.4426950408889634)
_LN2_HI = f32(0.6931471824645996)                 # float32(ln 2)
_LN2_LO = f32(math.log(2.0) - 0.6931471824645996)  # ln2 - _LN2_HI
_EXP_P0 = f32(0.4999999403953552)
_EXP_P1 = f32(0.166665181517601)
_EXP_P2 = f32(0.041668422520160675)
_EXP_P3 = f32(0.00836906861513853)
_EXP_P4 = f32(0.0013813868863508105)
_EXP_LO = f32(-104.0)    # exp(-104) < 2**-150: rounds to +0
_EXP_HI = f32(88.8)      # > log(FLT_MAX) = 88.7228 (-> +inf), and n <= 128
_EXP_NLOW = f32(-100.0)
_SIXTYFOUR = f32(64.0)
_TWO_M64 = f32(2.0 ** -64)

# log: x = m * 2**e, m in [sqrt(.5), sqrt(2)), f = m - 1 (exact),
# log1p(f) = f - f^2/2 + f^3 * P(f); P: Lawson fit on [sqrt(.5)-1, sqrt2-1],
# relative weight on log1p(f), fit error 3.1e-8.
_SQRT2 = f32(1.4142135623730951)
_FLT_MIN = f32(1.1754943508222875e-38)
_TWO24 = f32(16777216.0)
_TWENTYFOUR = f32(24.0)
_LOG_P0 = f32(0.3333390951156616)
_LOG_P1 = f32(-0.2500133812427521)
_LOG_P2 = f32(0.19963063299655914)
_LOG_P3 = f32(-0.1657758504152298)
_LOG_P4 = f32(0.14914768934249878)
_LOG_P5 = f32(-0.14267486333847046)
_LOG_P6 = f32(0.08700434863567352)

# tanh: |x| < 0.625: x + x^3 * P(x^2) (Lawson fit, fit error 4.4e-9);
# otherwise sign(x) * (1 - 2 / (exp(2|x|) + 1)), |x| clamped to 10.
_TANH_SMALL = f32(0.625)
_TANH_CLAMP = f32(10.0)   # 2/(exp(20)+1) < 2**-26: 1 - that rounds to 1
_TANH_P0 = f32(-0.3333328068256378)
_TANH_P1 = f32(0.13331441581249237)
_TANH_P2 = f32(-0.05373971536755562)
_TANH_P3 = f32(0.0206390880048275)
_TANH_P4 = f32(-0.005704987328499556)

# erf: |x| < 1: x * P(x^2) (Lawson fit, relative, fit error 1.2e-9);
# 1 <= |x| <= 4: 1 - exp(-x^2) * R(t), t = (|x| - 2.5) / 1.5 in [-1, 1]
# (Lawson fit of erfc(x) * exp(x^2), weighted to the absolute error of erf,
# fit error 1.3e-8).  erf(3.92) already rounds to 1.0f.
_ERF_P0 = f32(1.1283791065216064)
_ERF_P1 = f32(-0.3761262595653534)
_ERF_P2 = f32(0.1128358542919159)
_ERF_P3 = f32(-0.026853812858462334)
_ERF_P4 = f32(0.005188329145312309)
_ERF_P5 = f32(-0.0008010203600861132)
_ERF_P6 = f32(7.853892020648345e-05)
_ERF_T_SCALE = f32(2.0 / 3.0)
_ERF_T_SHIFT = f32(5.0 / 3.0)
_ERF_CLAMP = f32(4.0)
_ERF_R0 = f32(0.21080654859542847)
_ERF_R1 = f32(-0.11144955456256866)
_ERF_R2 = f32(0.05660505220293999)
_ERF_R3 = f32(-0.02633965015411377)
_ERF_R4 = f32(0.009953344240784645)
_ERF_R5 = f32(-0.01490138377994299)
_ERF_R6 = f32(-0.009116453118622303)
_ERF_R7 = f32(-0.006644450128078461)


# ---------------------------------------------------------------------------
# float32 implementations
# Clamps are written ``v = _select(v > HI, HI, v)`` so that a nan input is kept.
# ---------------------------------------------------------------------------

@register_jitable(inline=_INLINE)
def _exp_poly_f32(x):
    # returns (exp(r), n) with x = n*ln2 + r
    n = _rint(x * _LOG2E)
    r = _fma(-n, _LN2_HI, x)
    r = _fma(-n, _LN2_LO, r)
    p = _EXP_P4 * r + _EXP_P3
    p = p * r + _EXP_P2
    p = p * r + _EXP_P1
    p = p * r + _EXP_P0
    p = (r * r) * p + r
    return p + _ONE, n


@register_jitable(inline=_INLINE)
def _exp_core_f32(x):
    # exp for x in [-87, 88] (n in [-126, 127]: normal result); no clamping.
    p, n = _exp_poly_f32(x)
    return p * _pow2i(n)


@register_jitable(inline=_INLINE)
def _exp_f32(x):
    x = _select(x < _EXP_LO, _EXP_LO, x)
    x = _select(x > _EXP_HI, _EXP_HI, x)
    p, n = _exp_poly_f32(x)
    # p in [0.70, 1.42], n in [-150, 128].  p * 2**k is formed by adding k to
    # p's exponent field (exact while the result is normal), then one fp
    # multiply by s applies the rest: k = n - 1, s = 2 normally (so n = 128
    # overflows to +inf in the multiply), k = n + 64, s = 2**-64 for n < -100
    # (one rounding: correct gradual underflow to subnormals and +0).
    # A single integer chain and a single fp multiply: nothing that fastmath
    # could re-associate (p * 2**n1 * 2**n2 -> p * inf) and nothing for LLVM's
    # VectorCombine to pack into short vectors (which stops loop vectorization).
    low = n < _EXP_NLOW
    k = n + _select(low, _SIXTYFOUR, -_ONE)
    return _scale_bits(p, k) * _select(low, _TWO_M64, _TWO)


@register_jitable(inline=_INLINE)
def _log_f32(x):
    tiny = x < _FLT_MIN
    xs = _select(tiny, x * _TWO24, x)
    m = _mantissa(xs)
    e = _exponent(xs)
    e = _select(tiny, e - _TWENTYFOUR, e)
    big = m > _SQRT2
    m = _select(big, m * _HALF, m)
    e = _select(big, e + _ONE, e)
    f = m - _ONE
    p = _LOG_P6 * f + _LOG_P5
    p = p * f + _LOG_P4
    p = p * f + _LOG_P3
    p = p * f + _LOG_P2
    p = p * f + _LOG_P1
    p = p * f + _LOG_P0
    p = p * f - _HALF
    y = (f * f) * p + f
    y = _fma(e, _LN2_LO, y)
    y = _fma(e, _LN2_HI, y)
    y = _select(x < _INF, y, x)           # +inf -> +inf, nan -> nan
    y = _select(x > _ZERO, y, _select(x == _ZERO, -_INF, _NAN))
    return y


@register_jitable(inline=_INLINE)
def _tanh_f32(x):
    ax = abs(x)
    z = x * x
    p = _TANH_P4 * z + _TANH_P3
    p = p * z + _TANH_P2
    p = p * z + _TANH_P1
    p = p * z + _TANH_P0
    small = (x * z) * p + x
    a = _select(ax > _TANH_CLAMP, _TANH_CLAMP, ax)
    e = _exp_core_f32(a + a)
    big = _ONE - _fdiv(_TWO, e + _ONE)
    big = _select(x > _ZERO, big, -big)
    return _select(ax < _TANH_SMALL, small, big)


@register_jitable(inline=_INLINE)
def _sigmoid_f32(x):
    e = _exp_f32(-abs(x))
    num = _select(x > _ZERO, _ONE, e)
    return _fdiv(num, _ONE + e)


@register_jitable(inline=_INLINE)
def _erf_f32(x):
    ax = abs(x)
    z = x * x
    p = _ERF_P6 * z + _ERF_P5
    p = p * z + _ERF_P4
    p = p * z + _ERF_P3
    p = p * z + _ERF_P2
    p = p * z + _ERF_P1
    p = p * z + _ERF_P0
    small = x * p
    a = _select(ax > _ERF_CLAMP, _ERF_CLAMP, ax)
    t = a * _ERF_T_SCALE - _ERF_T_SHIFT
    q = _ERF_R7 * t + _ERF_R6
    q = q * t + _ERF_R5
    q = q * t + _ERF_R4
    q = q * t + _ERF_R3
    q = q * t + _ERF_R2
    q = q * t + _ERF_R1
    q = q * t + _ERF_R0
    big = _ONE - _exp_core_f32(-(a * a)) * q
    big = _select(x > _ZERO, big, -big)
    return _select(ax < _ONE, small, big)


# ---------------------------------------------------------------------------
# float64: libm
# ---------------------------------------------------------------------------

@register_jitable(inline=_INLINE)
def _sigmoid_f64(x):
    e = math.exp(-abs(x))
    num = _select(x > 0.0, 1.0, e)
    return _fdiv(num, 1.0 + e)


# ---------------------------------------------------------------------------
# public generic functions
# ---------------------------------------------------------------------------

KERNEL_FASTMATH = frozenset({"nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"})
_KERNELS = {}


def elementwise_kernel(name, fastmath=KERNEL_FASTMATH):
    """A cached njit loop ``kern(x, out)`` doing ``out[i] = fast_<name>(x[i])``
    over 1-d arrays, compiled like a generated kernel (``fastmath`` flags,
    ``boundscheck=False``, ``error_model='numpy'``).  Used for Python-level
    calls, ``vector_asm_stats`` and the tests."""
    fm_key = fastmath if isinstance(fastmath, bool) else frozenset(fastmath)
    key = (name, fm_key)
    kern = _KERNELS.get(key)
    if kern is None:
        stub = FAST_FUNCTIONS[name]
        flags = fm_key if isinstance(fm_key, bool) else set(fm_key)

        @numba.njit(fastmath=flags, boundscheck=False, error_model="numpy")
        def kern(x, out):
            for i in range(x.shape[0]):
                out[i] = stub(x[i])

        _KERNELS[key] = kern
    return kern


def _py_eval(name, x):
    """Python-level call: run the compiled code elementwise on a scalar or an
    array.  float32 in -> float32 out; anything else is computed in float64."""
    kern = elementwise_kernel(name)
    if isinstance(x, np.ndarray):
        dt = np.float32 if x.dtype == np.float32 else np.float64
        src = np.ascontiguousarray(x, dtype=dt).reshape(-1)
        out = np.empty(src.shape, dtype=dt)
        kern(src, out)
        return out.reshape(x.shape)
    if isinstance(x, np.float32):
        out = np.empty(1, np.float32)
        kern(np.array([x], np.float32), out)
        return out[0]
    out = np.empty(1, np.float64)
    kern(np.array([x], np.float64), out)
    return float(out[0])


def fast_exp(x):
    """exp(x); float32: vectorizable polynomial, float64: libm."""
    return _py_eval("exp", x)


def fast_log(x):
    """log(x); float32: vectorizable polynomial, float64: libm."""
    return _py_eval("log", x)


def fast_tanh(x):
    """tanh(x); float32: vectorizable polynomial, float64: libm."""
    return _py_eval("tanh", x)


def fast_sigmoid(x):
    """1 / (1 + exp(-x)); float32: vectorizable, float64: libm exp."""
    return _py_eval("sigmoid", x)


def fast_erf(x):
    """erf(x); float32: vectorizable polynomial, float64: libm."""
    return _py_eval("erf", x)


def _register(stub, impl_f32, impl_f64):
    @overload(stub, inline=_INLINE_PUBLIC, jit_options={"fastmath": _CALLEE_FASTMATH})
    def _ov(x):
        if x == types.float32:
            return lambda x: impl_f32(x)
        if x == types.float64:
            return lambda x: impl_f64(x)
        if isinstance(x, (types.Integer, types.Boolean)):
            return lambda x: impl_f64(np.float64(x))
        return None


_register(fast_exp, _exp_f32, math.exp)
_register(fast_log, _log_f32, math.log)
_register(fast_tanh, _tanh_f32, math.tanh)
_register(fast_sigmoid, _sigmoid_f32, _sigmoid_f64)
_register(fast_erf, _erf_f32, math.erf)

FAST_FUNCTIONS = {
    "exp": fast_exp,
    "log": fast_log,
    "tanh": fast_tanh,
    "sigmoid": fast_sigmoid,
    "erf": fast_erf,
}


# ---------------------------------------------------------------------------
# vectorization evidence
# ---------------------------------------------------------------------------

_LIBM_NAMES = ("expf", "logf", "tanhf", "erff", "exp", "log", "tanh", "erf")


def vector_asm_stats(name, dtype=np.float32, fastmath=KERNEL_FASTMATH):
    """Compile ``for i in range(n): out[i] = fast_<name>(x[i])`` like a
    generated kernel (see ``elementwise_kernel``) and count what its assembly
    contains.

    Returns a dict: ``zmm`` / ``ymm`` = number of references to those
    registers, ``packed_fma`` = packed FMAs (``vf[n]madd/sub...ps|pd``) on
    ymm/zmm, ``libm_calls`` = calls to exp/log/tanh/erf (float or double,
    direct or via ``movabsq $expf, %reg``), ``calls`` = the operands of all
    call instructions, ``asm`` = the text.
    The loop vectorizer does this vectorization; NUMBA_SLP_VECTORIZE is not
    needed.
    """
    import re
    kern = elementwise_kernel(name, fastmath)
    dt = np.dtype(dtype)
    arr = np.zeros(4, dtype=dt)
    kern(arr, np.empty_like(arr))
    sig = [s for s in kern.signatures if s[0].dtype == numba.from_dtype(dt)][0]
    asm = kern.inspect_asm(sig)
    suffix = "ps" if dt == np.float32 else "pd"
    calls = re.findall(r"^\s*call\w*\s+(.*)$", asm, flags=re.M)
    # numba calls external functions directly or through a register loaded
    # with ``movabsq $expf, %rax``
    libm = re.findall(r"(?:call\w*\s+|movabsq\s+\$)(?:%s)(?:@PLT)?\b" % "|".join(_LIBM_NAMES), asm)
    return {
        "zmm": len(re.findall(r"%zmm\d+", asm)),
        "ymm": len(re.findall(r"%ymm\d+", asm)),
        "packed_fma": len(re.findall(r"vfn?m(?:add|sub)\w*%s\s[^\n]*%%[yz]mm" % suffix, asm)),
        "libm_calls": len(libm),
        "calls": calls,
        "asm": asm,
    }
