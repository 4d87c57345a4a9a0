// Causal GQA attention on the CPU, tiled like FlashAttention-2 (FACTS.md): the matrix products of
// a tile go through oneDNN (AMX for bf16), the online softmax stays in fp32. In bf16 mode the
// probabilities P (and dS) are rounded to bf16 before their products, as on tensor cores.
//
// GQA packing: the G = H / KV query heads that share a KV head are stacked into one tile, so one
// product Q K^T serves the whole group (rows ordered (t, g)). Tiles are then G times taller and
// there are G times fewer of them, and K/V are read once per group.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/vec_math.h"

namespace llamatron::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// C = alpha * op(A) op(B) (+ C), A/B of storage type T, C fp32.
template <typename T>
void tile_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
               int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  gemm(GemmArgs{dtype_of<T>(), DType::F32, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, alpha, accumulate});
}

// Visibility in a block of keys: query row t (local) sits at global position q_offset + t and key
// column c of a block starting at local key j0 at k_offset + j0 + c. Causal: the row sees the
// first visible() columns; packed documents: none before its document's start (doc: the
// sequence's row of global document starts, null: one document), i.e. from first_visible() on.
inline int64_t visible(const AttentionShape& s, int64_t t, int64_t j0, int64_t nk) {
  return std::clamp<int64_t>(s.q_offset + t - s.k_offset - j0 + 1, 0, nk);
}
inline int64_t first_visible(const AttentionShape& s, const int32_t* doc, int64_t t, int64_t j0, int64_t nk) {
  return doc ? std::clamp<int64_t>(doc[t] - s.k_offset - j0, 0, nk) : 0;
}

// [B, T, KV*G, D] -> [B, KV, T, G, D]: the rows a tile reads become one dense block (oneDNN's AMX
// kernels need dense operands; strided bf16 ones fall back to a path several times slower).
// For K and V, G = 1 and this is [B, KV, T, D]. O(B*T*H*D) extra memory, like the inputs.
template <typename T>
const T* kv_major(Slot slot, const T* x, int64_t b, int64_t t, int64_t kv, int64_t g, int64_t d) {
  T* out = scratch<T>(slot, static_cast<size_t>(b * t * kv * g * d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t k = 0; k < kv; ++k)
        std::copy_n(x + ((bi * t + ti) * kv + k) * g * d, g * d, out + (((bi * kv + k) * t + ti) * g) * d);
  return out;
}

// The inverse for one packed row block: row (t - t0) * G + g of `rows` goes to x[b, t, k*G + g, :].
template <typename T>
void scatter_rows(const float* rows, T* x, int64_t b, int64_t t0, int64_t nt, int64_t k, const AttentionShape& s) {
  const int64_t G = s.h / s.kv;
  for (int64_t r = 0; r < nt * G; ++r) {
    T* dst = x + ((b * s.t + t0 + r / G) * s.h + k * G + r % G) * s.d;  // q's rows: t of them
#pragma omp simd
    for (int64_t d = 0; d < s.d; ++d) dst[d] = from_f32<T>(rows[r * s.d + d]);
  }
}

}  // namespace

template <typename T>
void attention_fwd(const T* q, const T* k, const T* v, T* o, float* lse, const AttentionShape& s) {
  const int64_t D = s.d, G = s.h / s.kv, Bq = s.block_q, Bk = s.block_k, Tk = s.keys();
  const int64_t n_qblocks = (s.t + Bq - 1) / Bq;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const T* qp = kv_major(Slot::Q, q, s.b, s.t, s.kv, G, D);
  const T* kp = kv_major(Slot::K, k, s.b, Tk, s.kv, 1, D);
  const T* vp = kv_major(Slot::V, v, s.b, Tk, s.kv, 1, D);
#pragma omp parallel
  {
    float* S = scratch<float>(Slot::TileS, Bq * G * Bk);
    float* acc = scratch<float>(Slot::Acc, Bq * G * D);
    float* m = scratch<float>(Slot::Rows1, Bq * G);
    float* l = scratch<float>(Slot::Rows2, Bq * G);
    T* P = scratch<T>(Slot::TileP, Bq * G * Bk);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t kvh = 0; kvh < s.kv; ++kvh)
        for (int64_t qb = 0; qb < n_qblocks; ++qb) {
          const int64_t i0 = qb * Bq, nq = std::min(Bq, s.t - i0), rows = nq * G;
          const T* qt = qp + ((b * s.kv + kvh) * s.t + i0) * G * D;
          std::fill_n(m, rows, kNegInf);
          std::fill_n(l, rows, 0.f);
          std::fill_n(acc, rows * D, 0.f);
          const int32_t* doc = s.doc_start ? s.doc_start + b * s.t : nullptr;
          // Keys from the tile's earliest document start (key blocks wholly before it are skipped)
          // up to its last query row.
          const int64_t first_key = std::max<int64_t>(0, doc ? doc[i0] - s.k_offset : 0);
          const int64_t end_key = std::clamp<int64_t>(s.q_offset + i0 + nq - s.k_offset, 0, Tk);
          for (int64_t j0 = first_key; j0 < end_key; j0 += Bk) {
            const int64_t nk = std::min(Bk, end_key - j0);
            const T* kt = kp + ((b * s.kv + kvh) * Tk + j0) * D;
            const T* vt = vp + ((b * s.kv + kvh) * Tk + j0) * D;
            tile_gemm(false, true, rows, nk, D, qt, D, kt, D, S, nk, scale, false);
            for (int64_t r = 0; r < rows; ++r) {
              float* sr = S + r * nk;
              T* pr = P + r * nk;
              const int64_t lo = first_visible(s, doc, i0 + r / G, j0, nk), hi = visible(s, i0 + r / G, j0, nk);
              if (lo >= hi) {  // no key of this block is in the row's document: nothing to add
                std::fill_n(pr, nk, from_f32<T>(0.f));
                continue;
              }
              std::fill(sr, sr + lo, kNegInf);  // masked: exp(-inf - mx) is exactly 0
              std::fill(sr + hi, sr + nk, kNegInf);
              float mx = m[r];
#pragma omp simd reduction(max : mx)
              for (int64_t c = 0; c < nk; ++c) mx = sr[c] > mx ? sr[c] : mx;
              const float alpha = fast_exp(m[r] - mx);  // 0 while m[r] is -inf (no key seen yet)
              float sum = 0.f;
#pragma omp simd reduction(+ : sum)
              for (int64_t c = 0; c < nk; ++c) {
                const float p = fast_exp(sr[c] - mx);
                sum += p;
                pr[c] = from_f32<T>(p);
              }
              l[r] = l[r] * alpha + sum;
              m[r] = mx;
              float* ar = acc + r * D;
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) ar[d] *= alpha;
            }
            tile_gemm(false, false, rows, D, nk, P, nk, vt, D, acc, D, 1.0f, true);
          }
          for (int64_t r = 0; r < rows; ++r) {  // a row that saw no key of the block: O = 0, LSE = -inf
            const float inv = l[r] > 0 ? 1.0f / l[r] : 0.f;
            for (int64_t d = 0; d < D; ++d) acc[r * D + d] *= inv;
            lse[(b * s.h + kvh * G + r % G) * s.t + i0 + r / G] = l[r] > 0 ? m[r] + std::log(l[r]) : kNegInf;
          }
          scatter_rows(acc, o, b, i0, nq, kvh, s);
        }
  }
}

// Backward (FACTS.md): Drow = rowsum(dO * O); per tile P = exp(S - LSE), dV += P^T dO,
// dP = dO V^T, dS = P * (dP - Drow), dK += scale dS^T Q, dQ += scale dS K.
// One task per (batch, KV head) owns dK, dV and the dQ of its query heads: no races, deterministic.
template <typename T>
void attention_bwd(const T* q, const T* k, const T* v, const T* o, const float* lse, const T* dout, T* dq,
                   T* dk, T* dv, const AttentionShape& s) {
  const int64_t D = s.d, G = s.h / s.kv, Bq = s.block_q, Bk = s.block_k, T_ = s.t, Tk = s.keys();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const T* qp = kv_major(Slot::Q, q, s.b, T_, s.kv, G, D);
  const T* kp = kv_major(Slot::K, k, s.b, Tk, s.kv, 1, D);
  const T* vp = kv_major(Slot::V, v, s.b, Tk, s.kv, 1, D);
  const T* dop = kv_major(Slot::DO, dout, s.b, T_, s.kv, G, D);
  const T* op = kv_major(Slot::O, o, s.b, T_, s.kv, G, D);
#pragma omp parallel
  {
    float* S = scratch<float>(Slot::TileS, Bq * G * Bk);
    float* dP = scratch<float>(Slot::TileDP, Bq * G * Bk);
    float* drow = scratch<float>(Slot::Rows1, T_ * G);
    float* lrow = scratch<float>(Slot::Rows2, T_ * G);
    float* dq_acc = scratch<float>(Slot::DQ, T_ * G * D);
    float* dk_acc = scratch<float>(Slot::DK, Tk * D);
    float* dv_acc = scratch<float>(Slot::DV, Tk * D);
    T* P = scratch<T>(Slot::TileP, Bq * G * Bk);
    T* dS = scratch<T>(Slot::TileDS, Bq * G * Bk);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t kvh = 0; kvh < s.kv; ++kvh) {
        const int64_t base = (b * s.kv + kvh) * T_;  // packed row index of (t = 0, g = 0)
        const int64_t kbase = (b * s.kv + kvh) * Tk;  // key row of (b, kvh, 0)
        const int32_t* doc = s.doc_start ? s.doc_start + b * T_ : nullptr;
        for (int64_t r = 0; r < T_ * G; ++r) {  // per packed row (t, g): Drow and the saved LSE
          const T* dor = dop + (base * G + r) * D;
          const T* orow = op + (base * G + r) * D;
          float acc = 0.f;
#pragma omp simd reduction(+ : acc)
          for (int64_t d = 0; d < D; ++d) acc += to_f32(dor[d]) * to_f32(orow[d]);
          drow[r] = acc;
          lrow[r] = lse[(b * s.h + kvh * G + r % G) * T_ + r / G];
        }
        std::fill_n(dq_acc, T_ * G * D, 0.f);
        std::fill_n(dk_acc, Tk * D, 0.f);
        std::fill_n(dv_acc, Tk * D, 0.f);
        for (int64_t j0 = 0; j0 < Tk; j0 += Bk) {
          const int64_t nk_block = std::min(Bk, Tk - j0), kg = s.k_offset + j0;  // kg: the block's global position
          const T* kt = kp + (kbase + j0) * D;
          const T* vt = vp + (kbase + j0) * D;
          // Only query rows that see a key of the block: from the block of the row at the block's
          // first key on, up to the first row whose document starts after the block (document
          // starts never decrease).
          for (int64_t i0 = std::max<int64_t>(0, kg - s.q_offset) / Bq * Bq; i0 < T_ && !(doc && doc[i0] >= kg + nk_block); i0 += Bq) {
            const int64_t nq = std::min(Bq, T_ - i0), rows = nq * G;
            const int64_t nk = std::min(nk_block, s.q_offset + i0 + nq - kg);  // keys past the last row are masked
            if (nk <= 0) continue;
            const T* qt = qp + (base + i0) * G * D;
            const T* dot = dop + (base + i0) * G * D;
            tile_gemm(false, true, rows, nk, D, qt, D, kt, D, S, nk, scale, false);
            tile_gemm(false, true, rows, nk, D, dot, D, vt, D, dP, nk, 1.0f, false);
            for (int64_t r = 0; r < rows; ++r) {
              // Masked scores become -inf, whose exp is exactly 0 (a two-sided select inside the simd
              // loop below was miscompiled by GCC 12 for AVX-512).
              const int64_t lo = first_visible(s, doc, i0 + r / G, j0, nk), vis = visible(s, i0 + r / G, j0, nk);
              std::fill(S + r * nk, S + r * nk + lo, kNegInf);
              std::fill(S + r * nk + vis, S + (r + 1) * nk, kNegInf);
              const float l = lrow[i0 * G + r], dr = drow[i0 * G + r];
#pragma omp simd
              for (int64_t c = 0; c < nk; ++c) {
                const int64_t x = r * nk + c;
                const float p = fast_exp(S[x] - l);
                P[x] = from_f32<T>(p);
                dS[x] = from_f32<T>(p * (dP[x] - dr));
              }
            }
            tile_gemm(true, false, nk, D, rows, P, nk, dot, D, dv_acc + j0 * D, D, 1.0f, true);
            tile_gemm(true, false, nk, D, rows, dS, nk, qt, D, dk_acc + j0 * D, D, scale, true);
            tile_gemm(false, false, rows, D, nk, dS, nk, kt, D, dq_acc + i0 * G * D, D, scale, true);
          }
        }
        scatter_rows(dq_acc, dq, b, 0, T_, kvh, s);
        for (int64_t j = 0; j < Tk; ++j)
          for (int64_t d = 0; d < D; ++d) {
            const int64_t at = ((b * Tk + j) * s.kv + kvh) * D + d;
            dk[at] = from_f32<T>(dk_acc[j * D + d]);
            dv[at] = from_f32<T>(dv_acc[j * D + d]);
          }
      }
  }
}

template <typename T>
void attention_decode_fwd(const T* q, const T* k, const T* v, T* o, int64_t b, int64_t tk, int64_t h, int64_t kv, int64_t d) {
  const int64_t G = h / kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#pragma omp parallel
  {
    float* p = scratch<float>(Slot::TileS, tk);
    float* acc = scratch<float>(Slot::Acc, d);
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t hi = 0; hi < h; ++hi) {
        const T* qr = q + (bi * h + hi) * d;
        const int64_t kvh = hi / G;
        float mx = kNegInf;
        for (int64_t j = 0; j < tk; ++j) {
          const T* kr = k + ((bi * tk + j) * kv + kvh) * d;
          float dot = 0.f;
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < d; ++i) dot += to_f32(qr[i]) * to_f32(kr[i]);
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        float sum = 0.f;
        for (int64_t j = 0; j < tk; ++j) sum += p[j] = fast_exp(p[j] - mx);
        std::fill_n(acc, d, 0.f);
        for (int64_t j = 0; j < tk; ++j) {
          const float pj = to_f32(from_f32<T>(p[j]));  // bf16 P, as in the tiled path
          const T* vr = v + ((bi * tk + j) * kv + kvh) * d;
#pragma omp simd
          for (int64_t i = 0; i < d; ++i) acc[i] += pj * to_f32(vr[i]);
        }
        T* orow = o + (bi * h + hi) * d;
        for (int64_t i = 0; i < d; ++i) orow[i] = from_f32<T>(acc[i] / sum);
      }
  }
}

template <typename T>
void attention_merge(float* acc, float* acc_lse, const T* part, const float* part_lse, int64_t n, int64_t h, int64_t d) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t hi = 0; hi < h; ++hi)
    for (int64_t i = 0; i < n; ++i) {
      const float l2 = part_lse[hi * n + i];
      if (l2 == kNegInf) continue;  // the block gave this row nothing
      float& l1 = acc_lse[hi * n + i];
      const float m = std::max(l1, l2), merged = m + std::log(std::exp(l1 - m) + std::exp(l2 - m));
      const float w1 = std::exp(l1 - merged), w2 = std::exp(l2 - merged);
      float* row = acc + (i * h + hi) * d;
      const T* p = part + (i * h + hi) * d;
      for (int64_t x = 0; x < d; ++x) row[x] = w1 * row[x] + w2 * to_f32(p[x]);
      l1 = merged;
    }
}

template void attention_merge<float>(float*, float*, const float*, const float*, int64_t, int64_t, int64_t);
template void attention_merge<bf16>(float*, float*, const bf16*, const float*, int64_t, int64_t, int64_t);
template void attention_decode_fwd<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void attention_decode_fwd<bf16>(const bf16*, const bf16*, const bf16*, bf16*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void attention_fwd<float>(const float*, const float*, const float*, float*, float*, const AttentionShape&);
template void attention_fwd<bf16>(const bf16*, const bf16*, const bf16*, bf16*, float*, const AttentionShape&);
template void attention_bwd<float>(const float*, const float*, const float*, const float*, const float*,
                                   const float*, float*, float*, float*, const AttentionShape&);
template void attention_bwd<bf16>(const bf16*, const bf16*, const bf16*, const bf16*, const float*, const bf16*,
                                  bf16*, bf16*, bf16*, const AttentionShape&);

}  // namespace llamatron::cpu
