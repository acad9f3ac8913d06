/* mma.h for the host emulation (see cuda_emu.h): CUDA's nvcuda::wmma tensor core API, warp-collective.
 *
 * On a GPU the 32 lanes of a warp each hold a part of a fragment and call every wmma function
 * together. Here a fragment is the whole tile, row-major, in each thread's own copy, and lane 0
 * of the warp (linear thread index a multiple of 32) performs each call on its copy while the
 * other lanes do nothing: only lane 0's fragments ever hold data, and each tile of shared or
 * global memory is read or written once per warp. This is the reference interpreter's reading
 * of the same builtins (tecomp/tir/interp_wmma.py). mma_sync forms products and sums in double
 * and rounds once to the accumulator type. Layouts: row_major / col_major fragments (matrix_a,
 * matrix_b), mem_row_major / mem_col_major memory (accumulator loads and stores). */
#ifndef TECOMP_MMA_H
#define TECOMP_MMA_H

#include "cuda_fp16.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K> struct tecomp_tile;
template <int M, int N, int K> struct tecomp_tile<matrix_a, M, N, K> { enum { rows = M, cols = K }; };
template <int M, int N, int K> struct tecomp_tile<matrix_b, M, N, K> { enum { rows = K, cols = N }; };
template <int M, int N, int K> struct tecomp_tile<accumulator, M, N, K> { enum { rows = M, cols = N }; };

template <typename Layout> struct tecomp_col_major { enum { value = 0 }; };
template <> struct tecomp_col_major<col_major> { enum { value = 1 }; };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  enum { rows = tecomp_tile<Use, M, N, K>::rows, cols = tecomp_tile<Use, M, N, K>::cols,
         num_elements = rows * cols };
  T x[num_elements];
};

static inline bool tecomp_lane0() {
  unsigned int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  return t % warpSize == 0;
}
template <typename T> static inline double tecomp_wide(T v) { return (double)v; }
static inline double tecomp_wide(half v) { return (double)__half2float(v); }
template <typename T> static inline void tecomp_narrow(T* out, double v) { *out = (T)v; }
static inline void tecomp_narrow(half* out, double v) { *out = __float2half((float)v); }

/* element (r, c) of a tile at p with row pitch ldm, in memory row- or column-major */
template <typename T> static inline T* tecomp_at(T* p, unsigned ldm, int r, int c, bool col) {
  return col ? p + (unsigned long)c * ldm + r : p + (unsigned long)r * ldm + c;
}

template <typename Use, int M, int N, int K, typename T, typename L>
static inline void tecomp_load(fragment<Use, M, N, K, T, L>& f, const T* p, unsigned ldm, bool col) {
  typedef fragment<Use, M, N, K, T, L> F;
  if (!tecomp_lane0()) return;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = *tecomp_at(p, ldm, r, c, col);
}

template <typename Use, int M, int N, int K, typename T, typename L>
static inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const T* p, unsigned ldm) {
  tecomp_load(f, p, ldm, tecomp_col_major<L>::value);
}

template <int M, int N, int K, typename T>
static inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t l) {
  tecomp_load(f, p, ldm, l == mem_col_major);
}

template <int M, int N, int K, typename T>
static inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t l) {
  if (!tecomp_lane0()) return;
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) *tecomp_at(p, ldm, r, c, l == mem_col_major) = f.x[r * N + c];
}

template <typename Use, int M, int N, int K, typename T, typename L>
static inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const T& v) {
  if (!tecomp_lane0()) return;
  for (int i = 0; i < fragment<Use, M, N, K, T, L>::num_elements; ++i) f.x[i] = v;
}

template <int M, int N, int K, typename Tc, typename Ta, typename La, typename Tb, typename Lb>
static inline void mma_sync(fragment<accumulator, M, N, K, Tc>& d, const fragment<matrix_a, M, N, K, Ta, La>& a,
                            const fragment<matrix_b, M, N, K, Tb, Lb>& b, const fragment<accumulator, M, N, K, Tc>& c) {
  if (!tecomp_lane0()) return;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0.0;
      for (int k = 0; k < K; ++k) s += tecomp_wide(a.x[i * K + k]) * tecomp_wide(b.x[k * N + j]);
      tecomp_narrow(&d.x[i * N + j], s + tecomp_wide(c.x[i * N + j]));
    }
}

}  // namespace wmma
}  // namespace nvcuda

#endif
