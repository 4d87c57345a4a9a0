// Causal grouped-query attention on tensor cores, FlashAttention-2 style (FACTS.md); the CPU
// reference is csrc/ops/cpu/attention.cpp. bf16 operands through mma.sync m16n8k16 and ldmatrix
// (kernels/ptx.cuh), fp32 accumulators and softmax statistics, K/V (or Q/dO) tiles double-buffered
// in shared memory with cp.async. Four warps per CTA, each owning 16 rows of every product (32 in
// the default forward).
//
// Forward: a CTA owns 128 (or 64) query rows of one head and walks the key tiles up to the diagonal
// with an online softmax (log2 domain); only tiles that cross the diagonal are masked. Saves LSE
// for the backward.
// Packed documents (doc_start [B, T], include/llamatron/documents.h): a query row sees no key
// before its document's start. Key tiles wholly before the earliest start of a CTA's rows are
// skipped (the loops start past them; for the dK/dV CTA, query tiles wholly after its keys'
// documents end it), and tiles that cross a document boundary are masked per row.
// Backward: a pre-pass computes D = rowsum(dO * O). A CTA owns 64 keys of one KV head and walks
// every query tile of every query head in its group, keeping dK and dV in fp32 registers (no
// per-query-head copies to sum). dQ either goes to an fp32 accumulator by atomics (fast) or comes
// from a second pass per query tile that recomputes P and dS (deterministic).
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/common.cuh"  // first: under g++ it sets up the emulator before any CUDA header
#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/ptx.cuh"

namespace llamatron::kernels {
namespace {

constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int kBlockM = 64;  // query rows per dQ CTA (16 per warp)
constexpr int kBlockN = 64;  // keys per tile of the backward, and per dK/dV CTA (16 per warp)
constexpr float kLog2e = 1.4426950408889634f;

// Query rows per step of the dK/dV CTA: 32 at D = 128 keeps dK, dV, S and dP in registers.
template <int D>
constexpr int kBwdBlockM = D == 128 ? 32 : 64;

// A [rows][W] bf16 tile in shared memory. Its 16-byte chunks are XOR-swizzled so that the 8 row
// addresses of one ldmatrix phase fall in 8 different 16-byte bank groups (no bank conflicts).
template <int W>
__device__ __forceinline__ int swz(int row, int col) {
  constexpr int kChunks = W / 8, kRowsPerLine = kChunks >= 8 ? 1 : 8 / kChunks, kMask = (kChunks >= 8 ? 8 : kChunks) - 1;
  return row * W + ((((col >> 3) ^ ((row / kRowsPerLine) & kMask)) << 3) | (col & 7));
}

// Rows [row0, row0 + ROWS) of a global [*, ld] matrix into a swizzled [ROWS][W] tile by cp.async.
// Rows at or past `valid` are zero-filled: they meet only masked scores, and 0 * 0 is never NaN.
template <int ROWS, int W>
__device__ __forceinline__ void stage_tile(bf16* tile, const bf16* g, int64_t ld, int row0, int valid) {
  constexpr int kChunks = W / 8;
  for (int c = threadIdx.x; c < ROWS * kChunks; c += kThreads) {
    const int r = c / kChunks, ch = c % kChunks;
    bf16* dst = tile + swz<W>(r, ch * 8);
    if (row0 + r < valid)
      cp_async<16>(dst, g + (row0 + r) * ld + ch * 8);
    else
      as_vec<uint4>(dst) = uint4{0u, 0u, 0u, 0u};
  }
}

// Fragment loads for mma m16n8k16 (layouts in ptx.cuh). Lane 8i + r addresses row r of matrix i.
// A, rows [m0, m0 + 16) x k [k0, k0 + 16) of a row-major [m][k] tile.
template <int W>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int m0, int k0) {
  const int i = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
  ldmatrix<4, false>(a, tile + swz<W>(m0 + r + (i & 1) * 8, k0 + (i >> 1) * 8));
}
// A = X^T where the tile holds X as [k][m].
template <int W>
__device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const bf16* tile, int m0, int k0) {
  const int i = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
  ldmatrix<4, true>(a, tile + swz<W>(k0 + r + (i >> 1) * 8, m0 + (i & 1) * 8));
}
// B for the n-tiles n0 and n0 + 8 (b[0..1], b[2..3]) over k [k0, k0 + 16), the tile holding B^T as
// [n][k] (K in Q K^T) ...
template <int W>
__device__ __forceinline__ void load_b(uint32_t (&b)[4], const bf16* tile, int n0, int k0) {
  const int i = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
  ldmatrix<4, false>(b, tile + swz<W>(n0 + r + (i >> 1) * 8, k0 + (i & 1) * 8));
}
// ... or B itself as [k][n] (V in P V).
template <int W>
__device__ __forceinline__ void load_b_trans(uint32_t (&b)[4], const bf16* tile, int n0, int k0) {
  const int i = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
  ldmatrix<4, true>(b, tile + swz<W>(k0 + r + (i & 1) * 8, n0 + (i >> 1) * 8));
}

// acc[mt] (16 x 8NT, fp32) += A_mt (16 x 16KS) B for MT m-tiles of 16 rows: a_frag(mt, ks, a) gives
// A_mt's k-step ks, b_frag(ks, nt, b) the B fragments of n-tiles nt and nt + 1. Each B fragment
// loaded from shared memory feeds MT x 2 mma.
template <int MT, int NT, int KS, typename AFrag, typename BFrag>
__device__ __forceinline__ void warp_mma_tiles(float (&acc)[MT][NT][4], AFrag&& a_frag, BFrag&& b_frag) {
  static_assert(NT % 2 == 0, "n-tiles come in pairs");
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) a_frag(mt, ks, a[mt]);
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
      uint32_t b[4];
      b_frag(ks, nt, b);
      const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_m16n8k16_bf16(acc[mt][nt], a[mt], b0, acc[mt][nt]);
        mma_m16n8k16_bf16(acc[mt][nt + 1], a[mt], b1, acc[mt][nt + 1]);
      }
    }
  }
}

// One m-tile: acc (16 x 8NT) += A (16 x 16KS) B, a_frag(ks, a).
template <int NT, int KS, typename AFrag, typename BFrag>
__device__ __forceinline__ void warp_mma(float (&acc)[NT][4], AFrag&& a_frag, BFrag&& b_frag) {
  warp_mma_tiles<1, NT, KS>(reinterpret_cast<float (&)[1][NT][4]>(acc),
                            [&](int, int ks, uint32_t (&a)[4]) { a_frag(ks, a); }, b_frag);
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16(lo))) |
         static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16(hi))) << 16;
}

// A 16 x 8NT accumulator rounded to bf16 as the A fragments of its NT/2 k-steps: the C layout of two
// adjacent n-tiles is the A layout of one k-step, so P never leaves registers.
template <int NT>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[NT / 2][4], const float (&c)[NT][4]) {
#pragma unroll
  for (int ks = 0; ks < NT / 2; ++ks) {
    a[ks][0] = pack_bf16(c[2 * ks][0], c[2 * ks][1]);
    a[ks][1] = pack_bf16(c[2 * ks][2], c[2 * ks][3]);
    a[ks][2] = pack_bf16(c[2 * ks + 1][0], c[2 * ks + 1][1]);
    a[ks][3] = pack_bf16(c[2 * ks + 1][2], c[2 * ks + 1][3]);
  }
}

// A fragments held in registers, as a_frag for warp_mma (one m-tile) or warp_mma_tiles (MT).
template <int KS>
__device__ __forceinline__ auto from_regs(const uint32_t (&f)[KS][4]) {
  return [&f](int ks, uint32_t (&a)[4]) {
    for (int i = 0; i < 4; ++i) a[i] = f[ks][i];
  };
}
template <int MT, int KS>
__device__ __forceinline__ auto from_regs(const uint32_t (&f)[MT][KS][4]) {
  return [&f](int mt, int ks, uint32_t (&a)[4]) { from_regs(f[mt])(ks, a); };
}

// body(i, buf) for i in [0, n), with stage(i + 1, buf ^ 1) (cp.async) in flight meanwhile; the
// caller issues its own first loads before, so they join step 0's group.
template <typename Stage, typename Body>
__device__ __forceinline__ void pipelined(int n, Stage&& stage, Body&& body) {
  stage(0, 0);
  cp_async_commit();
  for (int i = 0; i < n; ++i) {
    if (i + 1 < n) {
      stage(i + 1, (i + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    body(i, i & 1);
    __syncthreads();  // buffer i & 1 is restaged next step
  }
}

// Element e (0..3) of an m16n8 accumulator sits at row g + 8 (e / 2), column 2 t + e % 2.
__device__ __forceinline__ int acc_row(int e) { return threadIdx.x % 32 / 4 + 8 * (e >> 1); }
__device__ __forceinline__ int acc_col(int e) { return 2 * (threadIdx.x % 4) + (e & 1); }

// The first row in [0, t) whose document starts at or after `key` (t if none): rows before it may
// see key - 1, rows from it on see no key before `key`. Document starts never decrease along t.
__device__ __forceinline__ int first_row_starting_at(const int32_t* doc, int t, int key) {
  int lo = 0, hi = t;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (doc[mid] >= key) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// Row stride and the address of (b, row 0, head) in a [B, T, heads, D] tensor.
struct Rows {
  int64_t ld;
  int64_t base;
  __device__ __forceinline__ Rows(int b, int t, int heads, int head, int d)
      : ld(static_cast<int64_t>(heads) * d), base(static_cast<int64_t>(b) * t * ld + static_cast<int64_t>(head) * d) {}
};

// Writes rows [row0, row0 + 16) of a warp's 16 x D accumulator, times `scale`, as bf16.
template <int D>
__device__ __forceinline__ void store_rows(bf16* out, const Rows& at, int row0, int t, const float (&acc)[D / 8][4],
                                           const float (&scale)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + acc_row(2 * r);
    if (row >= t) continue;
    bf16* dst = out + at.base + row * at.ld + acc_col(0);
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      as_vec<uint32_t>(dst + dt * 8) = pack_bf16(acc[dt][2 * r] * scale[r], acc[dt][2 * r + 1] * scale[r]);
  }
}

// Forward tiling: each warp owns MT m-tiles of 16 query rows. With two, every K and V fragment a warp
// loads from shared memory feeds twice the mma: half the shared-memory traffic per mma
// (FlashAttention-2's 128-row tile), which Hopper's mma.sync rate needs; one leaves more CTAs per SM.
template <int MT>
constexpr int kFwdBlockM = 16 * kWarps * MT;
// Q stays in registers when it fits beside O and S; else its fragments are reloaded every k-step.
template <int D, int MT>
constexpr bool kQInRegs = MT * D <= 128;

// Keys per forward tile: 32 where O's 32 x 128 fp32 accumulator leaves no registers for a 64-wide S.
template <int D, int MT>
constexpr int kFwdBlockN = D * MT > 128 ? 32 : 64;

template <int D, int MT>
constexpr size_t kFwdSmem = (kFwdBlockM<MT> + 4 * kFwdBlockN<D, MT>) * D * sizeof(bf16) +
                            kFwdBlockM<MT> * sizeof(int32_t);  // Q, 2 x K, 2 x V, the rows' document starts

template <int D, int MT>
__global__ void __launch_bounds__(kThreads)
    attention_fwd_kernel(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, const int32_t* doc_start, int t,
                         int tk, int q_off, int k_off, int h, int kv, float scale_log2) {
  constexpr int BM = kFwdBlockM<MT>, BN = kFwdBlockN<D, MT>;
  constexpr bool kQRegs = kQInRegs<D, MT>;
  const int m_block = gridDim.x - 1 - blockIdx.x;  // the longest (last) query tiles start first
  const int head = blockIdx.y, b = blockIdx.z, m0 = m_block * BM, warp = threadIdx.x / 32;
  const Rows qa(b, t, h, head, D), kva(b, tk, kv, head / (h / kv), D);
  // First row (in the CTA) of the warp's m-tile mt: the tiles interleave over the warps, so the
  // masked diagonal is shared out evenly.
  const auto tile_row = [warp](int mt) { return (mt * kWarps + warp) * 16; };
  bf16* sq = dynamic_smem<bf16>();
  bf16* sk = sq + BM * D;
  bf16* sv = sk + 2 * BN * D;
  int32_t* sdoc = reinterpret_cast<int32_t*>(sv + 2 * BN * D);  // read only in tiles that cross a boundary

  stage_tile<BM, D>(sq, q + qa.base, qa.ld, m0, t);
  uint32_t qf[kQRegs ? MT : 1][kQRegs ? D / 16 : 1][4];
  const auto q_frag = [&](int mt, int ks, uint32_t (&a)[4]) {
    if constexpr (kQRegs)
      from_regs(qf)(mt, ks, a);
    else
      load_a<D>(a, sq, tile_row(mt), ks * 16);
  };
  float acc[MT][D / 8][4] = {};
  float row_max[MT][2], row_sum[MT][2] = {};
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) row_max[mt][0] = row_max[mt][1] = -INFINITY;
  const int last_row = m0 + BM < t ? m0 + BM : t;
  // Keys up to the diagonal (in global positions: key k_off + j is visible to row q_off + i up to i = j + k_off - q_off).
  const int last_key = min(tk, q_off + last_row - k_off);
  // Documents: the first key tile holds the CTA's first row's document start; each row's own start
  // (rows past t take the last row's; in shared memory, as registers are full at D = 128) masks the
  // tiles before the CTA's last start. Starts are global positions.
  const int32_t* doc = doc_start ? doc_start + static_cast<int64_t>(b) * t : nullptr;
  const int first_tile = doc ? max(0, doc[m0] - k_off) / BN : 0, last_start = doc ? doc[last_row - 1] : 0;
  for (int r = threadIdx.x; r < BM; r += kThreads) sdoc[r] = doc ? doc[m0 + r < t ? m0 + r : t - 1] : 0;  // seen after pipelined's first barrier
  const int tiles = last_key > 0 ? (last_key + BN - 1) / BN - first_tile : 0;
  if (tiles > 0)
  pipelined(
      tiles,  // key tiles from the first document start up to the diagonal
      [&](int i, int buf) {
        stage_tile<BN, D>(sk + buf * BN * D, k + kva.base, kva.ld, (first_tile + i) * BN, tk);
        stage_tile<BN, D>(sv + buf * BN * D, v + kva.base, kva.ld, (first_tile + i) * BN, tk);
      },
      [&](int i, int buf) {
        const int j = first_tile + i;
        const bf16 *kt = sk + buf * BN * D, *vt = sv + buf * BN * D;
        if constexpr (kQRegs) {
          if (i == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
              for (int ks = 0; ks < D / 16; ++ks) load_a<D>(qf[mt][ks], sq, tile_row(mt), ks * 16);
          }
        }
        float s[MT][BN / 8][4] = {};
        warp_mma_tiles<MT, BN / 8, D / 16>(s, q_frag, [&](int ks, int nt, uint32_t (&bb)[4]) { load_b<D>(bb, kt, nt * 8, ks * 16); });
        const bool diagonal = k_off + (j + 1) * BN - 1 > q_off + m0;  // a key of this tile is past a row of the CTA
        const bool boundary = k_off + j * BN < last_start;            // a key of this tile is before a row's document
        // The zero-filled keys past tk: past every row when the keys are the queries' own (tk = t,
        // no offsets), but not for a block of keys that ends before the queries do.
        const int key_end = (j + 1) * BN > tk ? k_off + tk : 0x7fffffff;
        // Online softmax in the log2 domain; each row's BN scores are spread over a quad of lanes.
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int row = m0 + tile_row(mt) + acc_row(2 * r);
            float mx = row_max[mt][r];
#pragma unroll
            for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
              for (int e = 2 * r; e < 2 * r + 2; ++e) {
                float& x = s[mt][nt][e];
                const int key = k_off + j * BN + nt * 8 + acc_col(e);  // global positions
                x = (diagonal && key > q_off + row) || (boundary && key < sdoc[row - m0]) || key >= key_end ? -INFINITY : x * scale_log2;
                mx = fmaxf(mx, x);
              }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            // A row that has seen no key of its document yet keeps max -inf: exponents against 0
            // then give alpha = 0 and p = 0 (not NaN). Without documents key 0 is always seen.
            const float base = mx == -INFINITY ? 0.f : mx;
            const float alpha = ex2(row_max[mt][r] - base);
            row_max[mt][r] = mx;
            float sum = 0.f;
#pragma unroll
            for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
              for (int e = 2 * r; e < 2 * r + 2; ++e) sum += s[mt][nt][e] = ex2(s[mt][nt][e] - base);
            row_sum[mt][r] = row_sum[mt][r] * alpha + sum;  // this lane's partial; the quad is summed at the end
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) acc[mt][dt][2 * r] *= alpha, acc[mt][dt][2 * r + 1] *= alpha;
          }
        uint32_t p[MT][BN / 16][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) acc_to_a(p[mt], s[mt]);
        warp_mma_tiles<MT, D / 8, BN / 16>(acc, from_regs(p), [&](int ks, int nt, uint32_t (&bb)[4]) { load_b_trans<D>(bb, vt, nt * 8, ks * 16); });
      });

#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      inv[r] = l > 0.f ? 1.0f / l : 0.f;  // a row that saw no key of the block: O = 0, LSE = -inf
      const int row = m0 + tile_row(mt) + acc_row(2 * r);
      if (row < t && threadIdx.x % 4 == 0)
        lse[(static_cast<int64_t>(b) * h + head) * t + row] = l > 0.f ? (row_max[mt][r] + log2f(l)) / kLog2e : -INFINITY;
    }
    store_rows<D>(o, qa, m0 + tile_row(mt), t, acc[mt], inv);
  }
}

// D[b, head, t] = rowsum(dO * O) in fp32, one warp per (b, t, head) row; zeroes the row of the dQ
// accumulator when there is one.
__global__ void __launch_bounds__(kThreads)
    attention_bwd_prepass_kernel(const bf16* o, const bf16* dout, float* dvec, float* dq_accum, int t, int h, int d,
                                 int64_t rows) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float acc = 0.f;
  for (int i = lane * 8; i < d; i += 32 * 8) {
    float a[8], c[8];
    load_bf16(o + row * d + i, 8, a);
    load_bf16(dout + row * d + i, 8, c);
    for (int e = 0; e < 8; ++e) acc += a[e] * c[e];
  }
  acc = warp_sum(acc);
  const int64_t bt = row / h;
  if (lane == 0) dvec[(bt / t * h + row % h) * t + bt % t] = acc;
  if (dq_accum != nullptr)
    for (int i = lane * 4; i < d; i += 32 * 4) as_vec<float4>(dq_accum + row * d + i) = float4{0.f, 0.f, 0.f, 0.f};
}

// Per-row softmax statistics of the backward in the log2 domain: rows past t get LSE = +inf, so
// their P is exactly 0.
__device__ __forceinline__ float lse2_of(const float* lse, int64_t at, bool valid) { return valid ? lse[at] * kLog2e : INFINITY; }

template <int D>
constexpr size_t kDkDvSmem = (2 * kBlockN * D + 4 * kBwdBlockM<D> * D + kBlockN * kBwdBlockM<D>) * sizeof(bf16) +
                             6 * kBwdBlockM<D> * sizeof(float);  // K, V, 2 x Q, 2 x dO, dS^T, 2 x (LSE, D, doc start)

template <int D, bool kAtomicDq>
__global__ void __launch_bounds__(kThreads)
    attention_bwd_dkdv_kernel(const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse,
                              const float* dvec, const int32_t* doc_start, float* dq_accum, bf16* dk, bf16* dv, int t, int tk,
                              int q_off, int k_off, int h, int kv, float scale_log2, float scale) {
  constexpr int BM = kBwdBlockM<D>;
  const int kvh = blockIdx.y, b = blockIdx.z, n0 = blockIdx.x * kBlockN, warp = threadIdx.x / 32, group = h / kv;
  const int kg0 = k_off + n0;  // the CTA's first key, global
  const Rows kva(b, tk, kv, kvh, D);
  bf16* sk = dynamic_smem<bf16>();
  bf16* sv = sk + kBlockN * D;
  bf16* sq = sv + kBlockN * D;
  bf16* sdo = sq + 2 * BM * D;
  bf16* sds = sdo + 2 * BM * D;
  float* slse = reinterpret_cast<float*>(sds + kBlockN * BM);
  float* sd = slse + 2 * BM;
  int32_t* sdoc = reinterpret_cast<int32_t*>(sd + 2 * BM);

  // Steps: (query head of the group, query tile from the first that sees key n0 to the last that
  // sees a key of the CTA: with documents, the rows before the first whose document starts past them).
  const int32_t* doc = doc_start ? doc_start + static_cast<int64_t>(b) * t : nullptr;
  const int row_end = doc ? first_row_starting_at(doc, t, kg0 + kBlockN) : t;
  const int m_first = max(0, kg0 - q_off) / BM, per_head = max(0, (row_end + BM - 1) / BM - m_first);
  const auto head_of = [&](int i) { return kvh * group + i / per_head; };
  const auto m0_of = [&](int i) { return (m_first + i % per_head) * BM; };

  float dk_acc[D / 8][4] = {}, dv_acc[D / 8][4] = {};
  if (per_head > 0) {  // else no query of the block sees these keys: dK = dV = 0
  stage_tile<kBlockN, D>(sk, k + kva.base, kva.ld, n0, tk);
  stage_tile<kBlockN, D>(sv, v + kva.base, kva.ld, n0, tk);
  pipelined(
      group * per_head,
      [&](int i, int buf) {
        const int head = head_of(i), m0 = m0_of(i);
        const Rows qa(b, t, h, head, D);
        stage_tile<BM, D>(sq + buf * BM * D, q + qa.base, qa.ld, m0, t);
        stage_tile<BM, D>(sdo + buf * BM * D, dout + qa.base, qa.ld, m0, t);
        for (int r = threadIdx.x; r < BM; r += kThreads) {
          const int64_t at = (static_cast<int64_t>(b) * h + head) * t + m0 + r;
          slse[buf * BM + r] = lse2_of(lse, at, m0 + r < t);
          sd[buf * BM + r] = m0 + r < t ? dvec[at] : 0.f;
          sdoc[buf * BM + r] = doc ? doc[m0 + r < t ? m0 + r : t - 1] : 0;
        }
      },
      [&](int i, int buf) {
        const int head = head_of(i), m0 = m0_of(i);
        const bf16 *qt = sq + buf * BM * D, *dot = sdo + buf * BM * D;
        const float *l2 = slse + buf * BM, *dd = sd + buf * BM;
        const int32_t* ds = sdoc + buf * BM;
        // Transposed tiles (keys x queries): S^T = K Q^T, dP^T = V dO^T.
        float s[BM / 8][4] = {}, dp[BM / 8][4] = {};
        warp_mma<BM / 8, D / 16>(s, [&](int ks, uint32_t (&a)[4]) { load_a<D>(a, sk, warp * 16, ks * 16); },
                                 [&](int ks, int nt, uint32_t (&bb)[4]) { load_b<D>(bb, qt, nt * 8, ks * 16); });
        warp_mma<BM / 8, D / 16>(dp, [&](int ks, uint32_t (&a)[4]) { load_a<D>(a, sv, warp * 16, ks * 16); },
                                 [&](int ks, int nt, uint32_t (&bb)[4]) { load_b<D>(bb, dot, nt * 8, ks * 16); });
        const bool diagonal = q_off + m0 < kg0 + kBlockN;  // some key of this CTA lies after some query row
        const bool boundary = ds[BM - 1] > kg0;             // some key of this CTA is before some row's document
#pragma unroll
        for (int nt = 0; nt < BM / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int qi = nt * 8 + acc_col(e), key = kg0 + warp * 16 + acc_row(e);  // global positions
            const bool hidden = (diagonal && key > q_off + m0 + qi) || (boundary && key < ds[qi]);
            const float p = hidden ? 0.f : ex2(s[nt][e] * scale_log2 - l2[qi]);
            dp[nt][e] = p * (dp[nt][e] - dd[qi]);  // dS^T
            s[nt][e] = p;                           // P^T
          }
        uint32_t pf[BM / 16][4], dsf[BM / 16][4];
        acc_to_a(pf, s);
        acc_to_a(dsf, dp);
        // dV += P^T dO, dK += dS^T Q (scaled at the end).
        warp_mma<D / 8, BM / 16>(dv_acc, from_regs(pf), [&](int ks, int nt, uint32_t (&bb)[4]) { load_b_trans<D>(bb, dot, nt * 8, ks * 16); });
        warp_mma<D / 8, BM / 16>(dk_acc, from_regs(dsf), [&](int ks, int nt, uint32_t (&bb)[4]) { load_b_trans<D>(bb, qt, nt * 8, ks * 16); });
        if constexpr (kAtomicDq) {
          // dQ = dS K needs dS by query rows: dS^T goes through shared memory, then each warp
          // takes 16 query rows x 64 columns of dQ and adds them to the fp32 accumulator.
          const int key = warp * 16 + acc_row(0);
#pragma unroll
          for (int ks = 0; ks < BM / 16; ++ks)
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int qi = ks * 16 + half * 8 + acc_col(0);
              as_vec<uint32_t>(sds + swz<BM>(key, qi)) = dsf[ks][2 * half];
              as_vec<uint32_t>(sds + swz<BM>(key + 8, qi)) = dsf[ks][2 * half + 1];
            }
          __syncthreads();
          constexpr int kRowGroups = BM / 16, kCols = D * kRowGroups / kWarps;
          const int rg = warp % kRowGroups, c0 = warp / kRowGroups * kCols;
          float dq[kCols / 8][4] = {};
          warp_mma<kCols / 8, kBlockN / 16>(dq, [&](int ks, uint32_t (&a)[4]) { load_a_trans<BM>(a, sds, rg * 16, ks * 16); },
                                            [&](int ks, int nt, uint32_t (&bb)[4]) { load_b_trans<D>(bb, sk, c0 + nt * 8, ks * 16); });
          const Rows qa(b, t, h, head, D);
#pragma unroll
          for (int nt = 0; nt < kCols / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int row = m0 + rg * 16 + acc_row(e);
              if (row < t) atomicAdd(dq_accum + qa.base + row * qa.ld + c0 + nt * 8 + acc_col(e), dq[nt][e] * scale);
            }
        }
      });
  }
  const float one[2] = {1.f, 1.f}, scaled[2] = {scale, scale};
  store_rows<D>(dk, kva, n0 + warp * 16, tk, dk_acc, scaled);
  store_rows<D>(dv, kva, n0 + warp * 16, tk, dv_acc, one);
}

template <int D>
constexpr size_t kDqSmem = (2 * kBlockM + 4 * kBlockN) * D * sizeof(bf16);  // Q, dO, 2 x K, 2 x V

// Deterministic dQ: per 64 query rows, recompute P and dS over the key tiles, dQ = scale dS K.
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_bwd_dq_kernel(const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse,
                            const float* dvec, const int32_t* doc_start, bf16* dq, int t, int tk, int q_off, int k_off, int h,
                            int kv, float scale_log2, float scale) {
  const int m_block = gridDim.x - 1 - blockIdx.x;
  const int head = blockIdx.y, b = blockIdx.z, m0 = m_block * kBlockM, warp = threadIdx.x / 32;
  const Rows qa(b, t, h, head, D), kva(b, tk, kv, head / (h / kv), D);
  bf16* sq = dynamic_smem<bf16>();
  bf16* sdo = sq + kBlockM * D;
  bf16* sk = sdo + kBlockM * D;
  bf16* sv = sk + 2 * kBlockN * D;

  // Documents as in the forward: key tiles from the first row's document start, per-row starts.
  const int32_t* doc = doc_start ? doc_start + static_cast<int64_t>(b) * t : nullptr;
  const int last_row = min(m0 + kBlockM, t), last_key = min(tk, q_off + last_row - k_off);  // keys up to the diagonal
  const int first_tile = doc ? max(0, doc[m0] - k_off) / kBlockN : 0, last_start = doc ? doc[last_row - 1] : 0;
  const int tiles = last_key > 0 ? (last_key + kBlockN - 1) / kBlockN - first_tile : 0;
  float l2[2], dd[2];
  int row_doc[2];
  for (int r = 0; r < 2; ++r) {
    const int row = m0 + warp * 16 + acc_row(2 * r);
    const int64_t at = (static_cast<int64_t>(b) * h + head) * t + row;
    l2[r] = lse2_of(lse, at, row < t);
    dd[r] = row < t ? dvec[at] : 0.f;
    row_doc[r] = doc ? doc[row < t ? row : t - 1] : 0;
  }
  float dq_acc[D / 8][4] = {};
  if (tiles > 0) {  // else no key of the block is visible to these rows: dQ = 0
  stage_tile<kBlockM, D>(sq, q + qa.base, qa.ld, m0, t);
  stage_tile<kBlockM, D>(sdo, dout + qa.base, qa.ld, m0, t);
  pipelined(
      tiles,
      [&](int i, int buf) {
        stage_tile<kBlockN, D>(sk + buf * kBlockN * D, k + kva.base, kva.ld, (first_tile + i) * kBlockN, tk);
        stage_tile<kBlockN, D>(sv + buf * kBlockN * D, v + kva.base, kva.ld, (first_tile + i) * kBlockN, tk);
      },
      [&](int i, int buf) {
        const int j = first_tile + i;
        const bool boundary = k_off + j * kBlockN < last_start;
        const bool diagonal = k_off + (j + 1) * kBlockN - 1 > q_off + m0;
        const bf16 *kt = sk + buf * kBlockN * D, *vt = sv + buf * kBlockN * D;
        float s[kBlockN / 8][4] = {}, dp[kBlockN / 8][4] = {};
        warp_mma<kBlockN / 8, D / 16>(s, [&](int ks, uint32_t (&a)[4]) { load_a<D>(a, sq, warp * 16, ks * 16); },
                                      [&](int ks, int nt, uint32_t (&bb)[4]) { load_b<D>(bb, kt, nt * 8, ks * 16); });
        warp_mma<kBlockN / 8, D / 16>(dp, [&](int ks, uint32_t (&a)[4]) { load_a<D>(a, sdo, warp * 16, ks * 16); },
                                      [&](int ks, int nt, uint32_t (&bb)[4]) { load_b<D>(bb, vt, nt * 8, ks * 16); });
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int r = e >> 1, row = q_off + m0 + warp * 16 + acc_row(e), key = k_off + j * kBlockN + nt * 8 + acc_col(e);
            const bool hidden = (diagonal && key > row) || (boundary && key < row_doc[r]);
            const float p = hidden ? 0.f : ex2(s[nt][e] * scale_log2 - l2[r]);
            dp[nt][e] = p * (dp[nt][e] - dd[r]);
          }
        uint32_t dsf[kBlockN / 16][4];
        acc_to_a(dsf, dp);
        warp_mma<D / 8, kBlockN / 16>(dq_acc, from_regs(dsf), [&](int ks, int nt, uint32_t (&bb)[4]) { load_b_trans<D>(bb, kt, nt * 8, ks * 16); });
      });
  }
  const float scaled[2] = {scale, scale};
  store_rows<D>(dq, qa, m0 + warp * 16, t, dq_acc, scaled);
}

// Decode: thread i scores key j0 + i of each tile of kDecodeThreads keys (a dot over D with the
// query, which sits in shared memory); the block's max and sum give the online softmax, the tile's
// probabilities go through shared memory, and thread i < D accumulates output dimension i.
// In bf16 the probabilities are rounded before P V, as the forward's tensor-core products take them.
constexpr int kDecodeThreads = 128;

template <int D>
__global__ void __launch_bounds__(kDecodeThreads) attention_decode_kernel(const bf16* q, const bf16* k, const bf16* v, bf16* o,
                                                                           int tk, int h, int kv, float scale) {
  __shared__ float qs[D];
  __shared__ float p[kDecodeThreads];
  const int seq = blockIdx.x / h, head = blockIdx.x % h, kvh = head / (h / kv), i = threadIdx.x;
  const int64_t row = static_cast<int64_t>(seq) * h + head;
  for (int c = i; c < D; c += kDecodeThreads) qs[c] = __bfloat162float(q[row * D + c]);
  __syncthreads();
  float m = -INFINITY, l = 0.f, acc = 0.f;
  for (int j0 = 0; j0 < tk; j0 += kDecodeThreads) {
    const int j = j0 + i, n = min(kDecodeThreads, tk - j0);
    float s = -INFINITY;
    if (j < tk) {
      const bf16* kr = k + ((static_cast<int64_t>(seq) * tk + j) * kv + kvh) * D;
      float dot = 0.f;
      for (int c = 0; c < D; ++c) dot += qs[c] * __bfloat162float(kr[c]);
      s = dot * scale;
    }
    const float mx = fmaxf(m, block_max(s));  // finite: key 0 is in the first tile
    const float pj = j < tk ? __bfloat162float(__float2bfloat16(__expf(s - mx))) : 0.f;
    const float alpha = __expf(m - mx);
    l = l * alpha + block_sum(j < tk ? __expf(s - mx) : 0.f);
    p[i] = pj;
    __syncthreads();
    if (i < D) {
      acc *= alpha;
      const bf16* vt = v + (static_cast<int64_t>(seq) * tk + j0) * kv * D + static_cast<int64_t>(kvh) * D + i;
      for (int c = 0; c < n; ++c) acc += p[c] * __bfloat162float(vt[static_cast<int64_t>(c) * kv * D]);
    }
    __syncthreads();  // p is rewritten by the next tile
    m = mx;
  }
  if (i < D) o[row * D + i] = __float2bfloat16(acc / l);
}

// One warp per (row i, head): every lane reads the old LSE, the weights follow, the warp's lanes
// update the row's D values, then lane 0 the LSE (after the others have read it).
__global__ void __launch_bounds__(kThreads)
    attention_merge_kernel(float* acc, float* acc_lse, const bf16* part, const float* part_lse, int64_t n, int h, int d) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;  // i * h + head
  if (row >= n * h) return;
  const int64_t i = row / h, head = row % h, at = head * n + i;
  const float l2 = part_lse[at];
  if (l2 == -INFINITY) return;
  const float l1 = acc_lse[at], m = fmaxf(l1, l2), merged = m + logf(expf(l1 - m) + expf(l2 - m));
  const float w1 = expf(l1 - merged), w2 = expf(l2 - merged);
  for (int x = threadIdx.x % 32; x < d; x += 32) acc[row * d + x] = w1 * acc[row * d + x] + w2 * __bfloat162float(part[row * d + x]);
  __syncwarp();
  if (threadIdx.x % 32 == 0) acc_lse[at] = merged;
}

void check(const AttentionDims& dims, std::initializer_list<const void*> ptrs) {
  const std::string why = attention_unsupported(dims);
  if (!why.empty()) throw std::invalid_argument(why);
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) throw std::invalid_argument("the attention kernels need 16-byte aligned tensors");
}

// Runs f(std::integral_constant<int, D>) for the supported head dims.
template <typename F>
void with_head_dim(int d, F&& f) {
  if (d == 64) f(std::integral_constant<int, 64>{});
  else f(std::integral_constant<int, 128>{});
}

int cdiv(int a, int b) { return (a + b - 1) / b; }
float softmax_scale(int d) { return 1.0f / sqrtf(static_cast<float>(d)); }

// D [B, H, T] fp32, then (16-byte aligned) the dQ accumulator [B, T, H, D] fp32.
int64_t dq_accum_offset(int64_t rows) { return (rows + 3) / 4 * 4; }

}  // namespace

std::string attention_unsupported(const AttentionDims& d) {
  if (d.d != 64 && d.d != 128)
    return "head_dim " + std::to_string(d.d) + " is not supported by the CUDA attention kernels (64 or 128)";
  if (d.kv < 1 || d.h % d.kv != 0) return "n_heads (" + std::to_string(d.h) + ") must be a multiple of n_kv_heads (" + std::to_string(d.kv) + ")";
  if (d.b < 1 || d.t < 1) return "attention on an empty batch or sequence";
  return {};
}

void attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, const AttentionDims& dims,
                       cudaStream_t stream, ForwardTiles tiles, const int32_t* doc_start) {
  check(dims, {q, k, v, o});
  const auto run = [&](auto dc, auto mtc) {
    constexpr int D = decltype(dc)::value, MT = decltype(mtc)::value;
    const auto fwd = LT_KERNEL(attention_fwd_kernel<D, MT>);
    set_max_dynamic_smem(fwd, kFwdSmem<D, MT>);
    launch(fwd, dim3(cdiv(dims.t, kFwdBlockM<MT>), dims.h, dims.b), dim3(kThreads), kFwdSmem<D, MT>,
           stream, q, k, v, o, lse, doc_start, dims.t, dims.keys(), dims.q_offset, dims.k_offset, dims.h, dims.kv,
           softmax_scale(D) * kLog2e);
  };
  with_head_dim(dims.d, [&](auto dc) {
    if (tiles == ForwardTiles::k32RowsPerWarp) run(dc, std::integral_constant<int, 2>{});
    else run(dc, std::integral_constant<int, 1>{});
  });
}

void attention_merge(float* acc, float* acc_lse, const bf16* part, const float* part_lse, int64_t n, int h, int d, cudaStream_t stream) {
  launch(LT_KERNEL(attention_merge_kernel), dim3(static_cast<unsigned>((n * h + kWarps - 1) / kWarps)), dim3(kThreads), 0, stream, acc,
         acc_lse, part, part_lse, n, h, d);
}

void attention_decode(const bf16* q, const bf16* k, const bf16* v, bf16* o, int b, int tk, int h, int kv, int d,
                      cudaStream_t stream) {
  const std::string why = attention_unsupported({b, tk, h, kv, d});
  if (!why.empty()) throw std::invalid_argument(why);
  with_head_dim(d, [&](auto dc) {
    constexpr int D = decltype(dc)::value;
    launch(LT_KERNEL(attention_decode_kernel<D>), dim3(static_cast<unsigned>(b * h)), dim3(kDecodeThreads), 0, stream, q, k, v, o, tk, h,
           kv, softmax_scale(D));
  });
}

size_t attention_backward_workspace_bytes(const AttentionDims& dims, bool deterministic) {
  const int64_t rows = static_cast<int64_t>(dims.b) * dims.t * dims.h;
  return static_cast<size_t>(deterministic ? rows : dq_accum_offset(rows) + rows * dims.d) * sizeof(float);
}

void attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* o, const float* lse, const bf16* dout,
                        bf16* dq, bf16* dk, bf16* dv, void* workspace, const AttentionDims& dims, bool deterministic,
                        cudaStream_t stream, const int32_t* doc_start) {
  check(dims, {q, k, v, o, dout, dq, dk, dv, workspace});
  const int64_t rows = static_cast<int64_t>(dims.b) * dims.t * dims.h;
  float* dvec = static_cast<float*>(workspace);
  float* dq_accum = deterministic ? nullptr : dvec + dq_accum_offset(rows);
  launch(LT_KERNEL(attention_bwd_prepass_kernel), dim3(static_cast<unsigned>((rows + kWarps - 1) / kWarps)), dim3(kThreads), 0, stream,
         o, dout, dvec, dq_accum, dims.t, dims.h, dims.d, rows);
  with_head_dim(dims.d, [&](auto dc) {
    constexpr int D = decltype(dc)::value;
    const float scale = softmax_scale(D), scale_log2 = scale * kLog2e;
    const dim3 kv_grid(cdiv(dims.keys(), kBlockN), dims.kv, dims.b);
    if (deterministic) {
      const auto dkdv = LT_KERNEL(attention_bwd_dkdv_kernel<D, false>);
      set_max_dynamic_smem(dkdv, kDkDvSmem<D>);
      launch(dkdv, kv_grid, dim3(kThreads), kDkDvSmem<D>, stream, q, k, v, dout, lse, dvec, doc_start,
             static_cast<float*>(nullptr), dk, dv, dims.t, dims.keys(), dims.q_offset, dims.k_offset, dims.h, dims.kv, scale_log2, scale);
      const auto dq_pass = LT_KERNEL(attention_bwd_dq_kernel<D>);
      set_max_dynamic_smem(dq_pass, kDqSmem<D>);
      launch(dq_pass, dim3(cdiv(dims.t, kBlockM), dims.h, dims.b), dim3(kThreads), kDqSmem<D>, stream,
             q, k, v, dout, lse, dvec, doc_start, dq, dims.t, dims.keys(), dims.q_offset, dims.k_offset, dims.h, dims.kv, scale_log2,
             scale);
    } else {
      const auto dkdv = LT_KERNEL(attention_bwd_dkdv_kernel<D, true>);
      set_max_dynamic_smem(dkdv, kDkDvSmem<D>);
      launch(dkdv, kv_grid, dim3(kThreads), kDkDvSmem<D>, stream, q, k, v, dout, lse, dvec, doc_start,
             dq_accum, dk, dv, dims.t, dims.keys(), dims.q_offset, dims.k_offset, dims.h, dims.kv, scale_log2, scale);
      cast_to_bf16(dq_accum, dq, rows * dims.d, stream);
    }
  });
}

}  // namespace llamatron::kernels
