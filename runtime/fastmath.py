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
    FAST_FUNCTIONS = {"exp": fast_exp, "log": ..., "tanh": ..., "sigmoid": ..., "erf": ...}
    bitcast_to_float(i)   int32 -> float32, int64 -> float64 (same bits)
    bitcast_to_int(x)     float32 -> int32, float64 -> int64 (same bits)
    vector_asm_stats(name, dtype)  asm evidence for a loop over fast_<name>

Typing / dispatch
-----------------
Each public name is a plain Python function registered with
``numba.extending.overload``; numba picks the implementation by the argument
type at compile time:

* ``float32``  -> polynomial implementation below (vectorizable, no libm call).
* ``float64``  -> libm (``math.exp``, ``math.log``, ``math.tanh``, ``math.erf``;
  sigmoid = the overflow-safe ``e/(1+e)`` form with ``math.exp``).  Fully
  float64-accurate but *not* vectorized (one libm call per element).
* integers     -> converted to float64 (numpy's rule for ``np.exp(int)``), then
  as float64.

The overloads use ``inline="always"``: the body is inlined at numba-IR level
into the calling kernel, so it is compiled with the *caller's* fastmath flags
and LLVM vectorizes it together with the caller's loop.  Kernels should be
compiled with fastmath containing ``contract`` so the Horner steps become FMAs
(without it the code is still correct and still vectorized, just ~2x more
instructions).  Accuracy does not depend on the caller's flags: the range
reductions that need exactness use explicit ``llvm.fma`` calls, which no
fastmath flag lets LLVM split or reassociate.

Called from Python, ``fast_exp(x)`` etc. run the same compiled float32/float64
code on a scalar or an ndarray (elementwise, returns float32 for float32 input,
float64 otherwise).

Accuracy guarantee (float32; measured numbers in tests/test_fastmath.py)
------------------------------------------------------------------------
Error is measured against float64 math rounded to float32 (numpy float32 libm
differs from that by <= 1 ulp, so the bounds hold against np.<fn> on float32
too, within +6e-8).  All bounds are max relative error ``|y - ref| / |ref|``:

* fast_exp      x in [-87.3, 88.7] (normal results): rel <= 2e-7 (~2 ulp).
                x > 88.73 -> +inf, x < -103.98 -> +0, results in between are
                gradual-underflow subnormals (absolute error < 1.5e-45 * 2).
* fast_log      every positive finite float32 including subnormals:
                rel <= 2e-7 (near x = 1 too; relative to log(x)).
                log(0) = -inf, log(x<0) = nan, log(+inf) = +inf, log(nan) = nan
                (these edge values rely on compares against 0 / inf; a caller
                compiled with ``ninf``/``nnan`` fastmath may get finite garbage
                instead, as allowed by those flags).
* fast_tanh     all x: rel <= 2e-7; odd polynomial for |x| < 0.625 so tiny
                arguments (incl. subnormals) keep full relative accuracy;
                |x| >= 9 returns exactly +-1.
* fast_sigmoid  x in [-87, +inf): rel <= 3e-7.  For x < -87.3 the result is
                subnormal; absolute error <= 3e-45 there, -> +0 below -103.9.
                x -> +inf gives exactly 1.
* fast_erf      all x: rel <= 3e-7 (also near 0: odd polynomial for |x| < 1);
                |x| >= 3.92 returns exactly +-1 (erf rounds to 1 in float32).

nan inputs give nan for exp/log/tanh/sigmoid/erf when the caller is compiled
without ``nnan`` (with ``nnan`` LLVM may do anything with nan, by definition).

Portability: ``llvm.fma`` is a single instruction on every x86-64 CPU with FMA3
(Haswell+, Zen) and on aarch64; on older x86 it becomes a (correct, slow,
scalar) ``fmaf`` libcall.
"""
import math

import numpy as np
import numba
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload, register_jitable

__all__ = [
    "fast_exp", "fast_log", "fast_tanh", "fast_sigmoid", "fast_erf",
    "FAST_FUNCTIONS", "bitcast_to_float", "bitcast_to_int", "vector_asm_stats",
]

_INLINE = "always"

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


@intrinsic
def _rint(typingctx, x):
    """Round to nearest integer, ties to even (llvm.rint -> vrndscaleps)."""
    if not _float_arg(x):
        return None

    def codegen(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.rint", [args[0].type])
        return builder.call(fn, args)
    return x(x), codegen


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
_EXP_HI = f32(89.0)      # exp(89) > FLT_MAX: overflows to +inf
_EXP_CORE_LO = f32(-87.0)  # _exp_core is valid on [-87.3, 88.3]

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
# otherwise sign(x) * (1 - 2 / (exp(2|x|) + 1)), |x| clamped to 9.
_TANH_SMALL = f32(0.625)
_TANH_CLAMP = f32(9.0)
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
# Clamps are written ``v = HI if v > HI else v`` so that a nan input is kept.
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
    # exp for x in [-87.3, 88.3] (normal result, no overflow); no clamping.
    p, n = _exp_poly_f32(x)
    return p * _pow2i(n)


@register_jitable(inline=_INLINE)
def _exp_f32(x):
    x = _EXP_LO if x < _EXP_LO else x
    x = _EXP_HI if x > _EXP_HI else x
    p, n = _exp_poly_f32(x)
    # n in [-150, 129]: scale in two steps so that both factors are normal
    # numbers; the product then overflows to inf / underflows gradually.
    n1 = _rint(n * _HALF)
    return (p * _pow2i(n1)) * _pow2i(n - n1)


@register_jitable(inline=_INLINE)
def _log_f32(x):
    tiny = x < _FLT_MIN
    xs = x * _TWO24 if tiny else x
    m = _mantissa(xs)
    e = _exponent(xs)
    e = e - _TWENTYFOUR if tiny else e
    big = m > _SQRT2
    m = m * _HALF if big else m
    e = e + _ONE if big else e
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
    y = y if x < _INF else x                       # +inf -> +inf, nan -> nan
    y = y if x > _ZERO else (-_INF if x == _ZERO else _NAN)
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
    a = _TANH_CLAMP if ax > _TANH_CLAMP else ax
    e = _exp_core_f32(a + a)
    big = _ONE - _TWO / (e + _ONE)
    big = big if x > _ZERO else -big
    return small if ax < _TANH_SMALL else big


@register_jitable(inline=_INLINE)
def _sigmoid_f32(x):
    e = _exp_f32(-abs(x))
    num = _ONE if x > _ZERO else e
    return num / (_ONE + e)


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
    a = _ERF_CLAMP if ax > _ERF_CLAMP else ax
    t = a * _ERF_T_SCALE - _ERF_T_SHIFT
    q = _ERF_R7 * t + _ERF_R6
    q = q * t + _ERF_R5
    q = q * t + _ERF_R4
    q = q * t + _ERF_R3
    q = q * t + _ERF_R2
    q = q * t + _ERF_R1
    q = q * t + _ERF_R0
    big = _ONE - _exp_core_f32(-(a * a)) * q
    big = big if x > _ZERO else -big
    return small if ax < _ONE else big


# ---------------------------------------------------------------------------
# float64: libm
# ---------------------------------------------------------------------------

@register_jitable(inline=_INLINE)
def _sigmoid_f64(x):
    e = math.exp(-abs(x))
    num = 1.0 if x > 0.0 else e
    return num / (1.0 + e)


# ---------------------------------------------------------------------------
# public generic functions
# ---------------------------------------------------------------------------

_PY_KERNELS = {}


def _py_eval(name, x):
    """Python-level evaluation: run the compiled implementation elementwise."""
    kern = _PY_KERNELS.get(name)
    if kern is None:
        stub = FAST_FUNCTIONS[name]

        @numba.njit(fastmath=True, boundscheck=False)
        def _scalar(v):
            return stub(v)

        @numba.njit(fastmath=True, boundscheck=False)
        def _array(xf, out):
            for i in range(xf.shape[0]):
                out[i] = stub(xf[i])

        kern = _PY_KERNELS[name] = (_scalar, _array)
    scalar, array = kern
    if isinstance(x, np.ndarray):
        dt = np.float32 if x.dtype == np.float32 else np.float64
        src = np.ascontiguousarray(x, dtype=dt if x.dtype.kind == "f" else None)
        out = np.empty(x.shape, dtype=dt)
        array(src.reshape(-1), out.reshape(-1))
        return out
    return scalar(x)


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
    @overload(stub, inline=_INLINE)
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

KERNEL_FASTMATH = frozenset({"nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"})
_LIBM_NAMES = ("expf", "logf", "tanhf", "erff", "exp", "log", "tanh", "erf")


def vector_asm_stats(name, dtype=np.float32, fastmath=KERNEL_FASTMATH):
    """Compile ``for i in range(n): out[i] = fast_<name>(x[i])`` like a
    generated kernel and count what the assembly contains.

    Returns a dict: ``zmm`` / ``ymm`` = instructions using those registers,
    ``packed_fma`` = packed-single/double FMAs on zmm/ymm, ``libm_calls`` = calls
    to exp/log/tanh/erf (float or double), ``calls`` = all call instructions,
    plus ``asm`` (the text).
    """
    import re
    stub = FAST_FUNCTIONS[name]

    @numba.njit(fastmath=set(fastmath), boundscheck=False, error_model="numpy")
    def _loop(x, out):
        for i in range(x.shape[0]):
            out[i] = stub(x[i])

    arr = np.zeros(4, dtype=dtype)
    _loop(arr, np.empty_like(arr))
    asm = _loop.inspect_asm(_loop.signatures[0])
    suffix = "ps" if np.dtype(dtype) == np.float32 else "pd"
    calls = re.findall(r"^\s*call\w*\s+(.*)$", asm, flags=re.M)
    libm = [c for c in calls
            if re.search(r"\b(%s)(@PLT)?\b" % "|".join(_LIBM_NAMES), c)]
    return {
        "zmm": len(re.findall(r"%zmm\d+", asm)),
        "ymm": len(re.findall(r"%ymm\d+", asm)),
        "packed_fma": len(re.findall(r"vfn?m(add|sub)\w*%s\s[^\n]*%%[yz]mm" % suffix, asm)),
        "libm_calls": len(libm),
        "calls": calls,
        "asm": asm,
    }
