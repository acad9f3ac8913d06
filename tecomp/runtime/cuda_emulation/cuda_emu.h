/* cuda_emu.h: the CUDA C that tecomp's CUDA backend emits, compiled by the host C++ compiler.
 *
 * Included before the emitted source (and nothing else: no C++ library header, so a kernel
 * compiles in a few hundredths of a second). It gives the CUDA keywords their host meaning
 * (__global__ and __device__ are ordinary functions, __shared__ arrays are static: one copy,
 * and blocks run one at a time), the thread indices as globals the scheduler sets, the vector
 * types with their real sizes and alignments, and the math functions the backend calls.
 * The scheduler (threads as fibers, __syncthreads() a real barrier, thread orders, fault and
 * misalignment reports) lives in cuda_emu_runtime.cpp, compiled once. */
#ifndef TECOMP_CUDA_EMU_H
#define TECOMP_CUDA_EMU_H

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct uint3 { unsigned int x, y, z; };
typedef uint3 dim3;
extern "C" {
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void tecomp_emu_syncthreads(void);
typedef void (*tecomp_emu_thunk)(void**);
int tecomp_emu_launch(tecomp_emu_thunk thunk, void** args, const long long* dims, int order,
                      unsigned int seed, int uses_barrier);
}
static const int warpSize = 32;
static inline void __syncthreads(void) { tecomp_emu_syncthreads(); }

/* ---- vector types: CUDA's sizes and alignments */
#define TECOMP_VECTOR2(T, N, A) \
  struct __attribute__((aligned(A))) N { T x, y; }; \
  static inline N make_##N(T x, T y) { N v; v.x = x; v.y = y; return v; }
#define TECOMP_VECTOR4(T, N, A) \
  struct __attribute__((aligned(A))) N { T x, y, z, w; }; \
  static inline N make_##N(T x, T y, T z, T w) { N v; v.x = x; v.y = y; v.z = z; v.w = w; return v; }
TECOMP_VECTOR2(float, float2, 8)
TECOMP_VECTOR4(float, float4, 16)
TECOMP_VECTOR2(int, int2, 8)
TECOMP_VECTOR4(int, int4, 16)
TECOMP_VECTOR2(unsigned int, uint2, 8)
TECOMP_VECTOR4(unsigned int, uint4, 16)
TECOMP_VECTOR2(double, double2, 16)
TECOMP_VECTOR2(long long, longlong2, 16)
TECOMP_VECTOR2(unsigned long long, ulonglong2, 16)
#undef TECOMP_VECTOR2
#undef TECOMP_VECTOR4

/* ---- integer min/max (CUDA's overloads) */
template <typename A, typename B> static inline auto min(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
template <typename A, typename B> static inline auto max(A a, B b) -> decltype(a + b) { return a < b ? b : a; }

/* ---- math: the C library's functions (declared here, not from <math.h>: it costs 0.3 s a compile) */
#define TECOMP_MATH1(name) extern "C" float name##f(float) noexcept; extern "C" double name(double) noexcept;
TECOMP_MATH1(exp) TECOMP_MATH1(log) TECOMP_MATH1(sqrt) TECOMP_MATH1(tanh) TECOMP_MATH1(erf)
TECOMP_MATH1(fabs) TECOMP_MATH1(floor) TECOMP_MATH1(ceil) TECOMP_MATH1(exp2) TECOMP_MATH1(log2)
TECOMP_MATH1(log10) TECOMP_MATH1(sin) TECOMP_MATH1(cos) TECOMP_MATH1(trunc) TECOMP_MATH1(rint)
#undef TECOMP_MATH1
extern "C" float powf(float, float) noexcept;
extern "C" double pow(double, double) noexcept;
extern "C" float fminf(float, float) noexcept;
extern "C" float fmaxf(float, float) noexcept;
extern "C" double fmin(double, double) noexcept;
extern "C" double fmax(double, double) noexcept;
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
/* fast-math intrinsics: computed precisely here (CUDA's are within a few ulp of these) */
static inline float __expf(float x) { return expf(x); }
static inline float __logf(float x) { return logf(x); }
static inline float __powf(float x, float y) { return powf(x, y); }
static inline float __log2f(float x) { return log2f(x); }
static inline float __log10f(float x) { return log10f(x); }
static inline float __sinf(float x) { return sinf(x); }
static inline float __cosf(float x) { return cosf(x); }
static inline float __int_as_float(int v) { float f; __builtin_memcpy(&f, &v, 4); return f; }
static inline double __longlong_as_double(long long v) { double d; __builtin_memcpy(&d, &v, 8); return d; }

/* ---- calling a kernel with its arguments from an array of pointers (scalars are passed by address) */
namespace tecomp_emu {
template <typename T> struct Arg { static T get(void* p) { return *(T*)p; } };
template <typename T> struct Arg<T*> { static T* get(void* p) { return (T*)p; } };
template <int...> struct Seq {};
template <int N, int... I> struct MakeSeq : MakeSeq<N - 1, N - 1, I...> {};
template <int... I> struct MakeSeq<0, I...> { typedef Seq<I...> type; };
template <typename... P, int... I> inline void call(void (*f)(P...), void** a, Seq<I...>) { f(Arg<P>::get(a[I])...); }
template <typename... P> inline void invoke(void (*f)(P...), void** a) { call(f, a, typename MakeSeq<sizeof...(P)>::type()); }
}  // namespace tecomp_emu

#endif
