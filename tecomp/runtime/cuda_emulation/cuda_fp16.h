/* cuda_fp16.h for the host emulation (see cuda_emu.h): CUDA's half type in IEEE binary16.
 *
 * A half holds its 16 bits; every operation converts to float, computes there and rounds back
 * to the nearest half (ties to even), which is exactly a binary16 operation for + - * / and a
 * correctly rounded result for the math functions computed in float. */
#ifndef TECOMP_CUDA_FP16_H
#define TECOMP_CUDA_FP16_H

struct half { unsigned short bits; };
typedef half __half;

static inline float __half2float(half h) {
  unsigned int sign = (unsigned int)(h.bits & 0x8000u) << 16, exp = (h.bits >> 10) & 0x1fu,
               man = h.bits & 0x3ffu, out;
  if (exp == 0x1f) {
    out = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    out = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    out = sign;
  } else {  /* subnormal: normalise */
    int e = 113;
    while (!(man & 0x400u)) { man <<= 1; --e; }
    out = sign | ((unsigned int)e << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  __builtin_memcpy(&f, &out, 4);
  return f;
}

static inline half __float2half(float f) {
  unsigned int x;
  __builtin_memcpy(&x, &f, 4);
  unsigned int sign = (x >> 16) & 0x8000u, absx = x & 0x7fffffffu;
  half h;
  if (absx >= 0x7f800000u) {                       /* inf or nan */
    h.bits = (unsigned short)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
  } else if (absx >= 0x477ff000u) {                /* rounds to >= 65520: inf */
    h.bits = (unsigned short)(sign | 0x7c00u);
  } else if (absx < 0x38800000u) {                 /* below the smallest normal half */
    if (absx < 0x33000000u) {                      /* below half the smallest subnormal */
      h.bits = (unsigned short)sign;
    } else {
      unsigned int e = absx >> 23, man = (absx & 0x7fffffu) | 0x800000u, shift = 126u - e;
      unsigned int q = man >> shift, rest = man & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
      if (rest > halfway || (rest == halfway && (q & 1u))) ++q;
      h.bits = (unsigned short)(sign | q);
    }
  } else {
    unsigned int q = ((absx - 0x38000000u) >> 13), rest = absx & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (q & 1u))) ++q;
    h.bits = (unsigned short)(sign | q);
  }
  return h;
}

#define TECOMP_HALF_BINARY(op) \
  static inline half operator op(half a, half b) { return __float2half(__half2float(a) op __half2float(b)); }
TECOMP_HALF_BINARY(+) TECOMP_HALF_BINARY(-) TECOMP_HALF_BINARY(*) TECOMP_HALF_BINARY(/)
#undef TECOMP_HALF_BINARY
#define TECOMP_HALF_COMPARE(op) \
  static inline bool operator op(half a, half b) { return __half2float(a) op __half2float(b); }
TECOMP_HALF_COMPARE(<) TECOMP_HALF_COMPARE(<=) TECOMP_HALF_COMPARE(>) TECOMP_HALF_COMPARE(>=)
TECOMP_HALF_COMPARE(==) TECOMP_HALF_COMPARE(!=)
#undef TECOMP_HALF_COMPARE

#define TECOMP_HALF_MATH(name, fn) \
  static inline half name(half a) { return __float2half(fn(__half2float(a))); }
TECOMP_HALF_MATH(hexp, expf) TECOMP_HALF_MATH(hlog, logf) TECOMP_HALF_MATH(hsqrt, sqrtf)
TECOMP_HALF_MATH(hrsqrt, rsqrtf) TECOMP_HALF_MATH(__habs, fabsf) TECOMP_HALF_MATH(hfloor, floorf)
TECOMP_HALF_MATH(hceil, ceilf) TECOMP_HALF_MATH(hexp2, exp2f) TECOMP_HALF_MATH(hlog2, log2f)
TECOMP_HALF_MATH(hlog10, log10f) TECOMP_HALF_MATH(hsin, sinf) TECOMP_HALF_MATH(hcos, cosf)
TECOMP_HALF_MATH(htrunc, truncf) TECOMP_HALF_MATH(hrint, rintf)
#undef TECOMP_HALF_MATH

#endif
