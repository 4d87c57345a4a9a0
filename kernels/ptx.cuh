// Tensor-core and async-copy instructions, the only way kernels reach them: inline PTX under nvcc,
// exact emulation under g++ by the per-lane fragment layouts of the PTX ISA (FACTS.md).
// Every function here is warp-collective (all 32 lanes call it), as the instruction is.
#pragma once
#include <cstdint>
#include <cmath>
#include <cstring>

#include "kernels/launch.cuh"

namespace llamatron::kernels {

#if !defined(__CUDACC__)
namespace emu_detail {
inline float bf16_lo(uint64_t w) { return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(w & 0xffff))); }
inline float bf16_hi(uint64_t w) { return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(w >> 16 & 0xffff))); }
inline uint32_t load_u32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint16_t load_u16(const unsigned char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
}  // namespace emu_detail
#endif

// D = A * B + C, m16n8k16, A row-major bf16 (4 regs), B "col" bf16 (2 regs), C/D fp32 (4 regs).
// g = lane / 4, t = lane % 4. A: a_i at row g (i in 0,1,4,5) or g+8, col 2t + (i&1) (+8 for i >= 4);
// B: b_i at k = 2t + (i&1) (+8 for i >= 2), n = g; C/D: c_i at row g (i < 2) or g+8, col 2t + (i&1).
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                  const float (&c)[4]) {
#if defined(__CUDACC__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
  using namespace emu_detail;
  const uint64_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  uint64_t all[32][6];
  ::llamatron::emu::warp_all_gather(0xffffffffu, mine, 6, &all[0][0], __FILE__, __LINE__);
  // This lane's outputs need rows g, g+8 of A (held by lanes 4g..4g+3, registers 0-3) and
  // columns 2t, 2t+1 of B (held by lanes 4n..4n+3, registers 4-5); decode just those.
  const int g = static_cast<int>(::llamatron::emu::lane_id()) / 4, t = static_cast<int>(::llamatron::emu::lane_id()) % 4;
  const auto half = [](uint64_t w, int k) { return (k & 1) ? bf16_hi(w) : bf16_lo(w); };
  for (int i = 0; i < 4; ++i) {
    const int upper = i < 2 ? 0 : 1, col = 2 * t + (i & 1);
    float acc = c[i];
    for (int k = 0; k < 16; ++k) {
      const int src = (k % 8) / 2, hi8 = k >= 8 ? 1 : 0;
      const float av = half(all[4 * g + src][upper + 2 * hi8], k);
      const float bv = half(all[4 * col + src][4 + hi8], k);
      acc += av * bv;
    }
    d[i] = acc;
  }
#endif
}

// ldmatrix.sync.aligned.m8n8.xN[.trans].shared.b16: lane 8i + r passes the address of row r of
// matrix i; lane l receives, per matrix, the word at row l/4, columns 2(l%4), 2(l%4)+1 (with
// .trans: the transposed matrix's word, i.e. rows 2(l%4), 2(l%4)+1 of column l/4).
template <int N, bool Trans>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[N], const void* smem_row) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(__CUDACC__)
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_row));
  if constexpr (N == 1 && !Trans) asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(addr));
  if constexpr (N == 1 && Trans) asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(addr));
  if constexpr (N == 2 && !Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
  if constexpr (N == 2 && Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
  if constexpr (N == 4 && !Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
  if constexpr (N == 4 && Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
#else
  using namespace emu_detail;
  const unsigned l = ::llamatron::emu::lane_id();
  if (l < 8 * N) ::llamatron::emu::check_aligned(smem_row, 16, "ldmatrix row address");  // other lanes' are unused
  const uint64_t mine = reinterpret_cast<uintptr_t>(smem_row);
  uint64_t rows[32];
  ::llamatron::emu::warp_all_gather(0xffffffffu, &mine, 1, rows, __FILE__, __LINE__);
  if (l == 0) ::llamatron::emu::record_ldmatrix(rows, N);
  for (int i = 0; i < N; ++i) {
    const auto row = [&](unsigned rr) { return reinterpret_cast<const unsigned char*>(rows[8 * i + rr]); };
    if constexpr (!Trans) {
      r[i] = load_u32(row(l / 4) + 4 * (l % 4));
    } else {
      const uint32_t lo = load_u16(row(2 * (l % 4)) + 2 * (l / 4)), hi = load_u16(row(2 * (l % 4) + 1) + 2 * (l / 4));
      r[i] = lo | hi << 16;
    }
  }
#endif
}

// 2^x by ex2.approx.ftz (about 2 ulp; 2^-inf = 0; subnormal results flush to zero), the
// softmax's exponential. The emulator returns the exact value moved by that error.
__device__ __forceinline__ float ex2(float x) {
#if defined(__CUDACC__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#else
  const float y = static_cast<float>(std::exp2(static_cast<double>(x)));
  if (y < 1.17549435e-38f) return 0.f;  // .ftz
  return ::llamatron::emu::ulps_moved(y, 2, ::llamatron::emu::low_bit(x));
#endif
}

// cp.async of 4, 8 or 16 bytes global -> shared, with commit / wait. The emulator keeps each copy
// pending until a wait lands its group (or lands it at issue, see emu::set_cp_async_landing), so a
// read before the right wait sees poison, and checks both addresses' alignment.
template <int Bytes>
__device__ __forceinline__ void cp_async(void* smem_dst, const void* gmem_src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(__CUDACC__)
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  if constexpr (Bytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(dst), "l"(gmem_src), "n"(Bytes));
#else
  ::llamatron::emu::cp_async_issue(smem_dst, gmem_src, Bytes);
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDACC__)
  asm volatile("cp.async.commit_group;\n" ::);
#else
  ::llamatron::emu::cp_async_commit();
#endif
}

template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDACC__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
#else
  ::llamatron::emu::cp_async_wait(Pending);
#endif
}

}  // namespace llamatron::kernels
