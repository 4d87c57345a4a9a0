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

// Causal mask: query t sees keys j <= t, i.e. the first visible(t, j0, nk) columns of a k block.
inline int64_t visible(int64_t t, int64_t j0, int64_t nk) { return std::clamp<int64_t>(t - j0 + 1, 0, nk); }

// [B, T, KV*G, D] -> [B, KV, T, G, D]: the rows a tile reads become one dense block (oneDNN's AMX
// kernels need dense operands; strided bf16 ones fall back to a path several times slower).
// For K and V, G = 1 and this is [B, KV, T, D]. O(B*T*H*D) extra memory, like the inputs.
template <typename T>
std::vector<T> kv_major(const T* x, int64_t b, int64_t t, int64_t kv, int64_t g, int64_t d) {
  std::vector<T> out(static_cast<size_t>(b * t * kv * g * d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t k = 0; k < kv; ++k)
        std::copy_n(x + ((bi * t + ti) * kv + k) * g * d, g * d, out.data() + (((bi * kv + k) * t + ti) * g) * d);
  return out;
}

// The inverse for one packed row block: row (t - t0) * G + g of `rows` goes to x[b, t, k*G + g, :].
template <typename T>
void scatter_rows(const float* rows, T* x, int64_t b, int64_t t0, int64_t nt, int64_t k, const AttentionShape& s) {
  const int64_t G = s.h / s.kv;
  for (int64_t r = 0; r < nt * G; ++r) {
    T* dst = x + ((b * s.t + t0 + r / G) * s.h + k * G + r % G) * s.d;
#pragma omp simd
    for (int64_t d = 0; d < s.d; ++d) dst[d] = from_f32<T>(rows[r * s.d + d]);
  }
}

}  // namespace

template <typename T>
void attention_fwd(const T* q, const T* k, const T* v, T* o, float* lse, const AttentionShape& s) {
  const int64_t D = s.d, G = s.h / s.kv, Bq = s.block_q, Bk = s.block_k;
  const int64_t n_qblocks = (s.t + Bq - 1) / Bq;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const std::vector<T> qp = kv_major(q, s.b, s.t, s.kv, G, D), kp = kv_major(k, s.b, s.t, s.kv, 1, D),
                       vp = kv_major(v, s.b, s.t, s.kv, 1, D);
#pragma omp parallel
  {
    std::vector<float> S(Bq * G * Bk), acc(Bq * G * D), m(Bq * G), l(Bq * G);
    std::vector<T> P(Bq * G * Bk);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t kvh = 0; kvh < s.kv; ++kvh)
        for (int64_t qb = 0; qb < n_qblocks; ++qb) {
          const int64_t i0 = qb * Bq, nq = std::min(Bq, s.t - i0), rows = nq * G;
          const T* qt = qp.data() + ((b * s.kv + kvh) * s.t + i0) * G * D;
          std::fill(m.begin(), m.end(), kNegInf);
          std::fill(l.begin(), l.end(), 0.f);
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t j0 = 0; j0 < i0 + nq; j0 += Bk) {  // causal: keys up to the last query row
            const int64_t nk = std::min(Bk, i0 + nq - j0);
            const T* kt = kp.data() + ((b * s.kv + kvh) * s.t + j0) * D;
            const T* vt = vp.data() + ((b * s.kv + kvh) * s.t + j0) * D;
            tile_gemm(false, true, rows, nk, D, qt, D, kt, D, S.data(), nk, scale, false);
            for (int64_t r = 0; r < rows; ++r) {
              float* sr = S.data() + r * nk;
              const int64_t vis = visible(i0 + r / G, j0, nk);
              for (int64_t c = vis; c < nk; ++c) sr[c] = kNegInf;
              float mx = m[r];
#pragma omp simd reduction(max : mx)
              for (int64_t c = 0; c < nk; ++c) mx = sr[c] > mx ? sr[c] : mx;
              const float alpha = fast_exp(m[r] - mx);  // m[r] is finite after block 0 (key 0 is visible)
              float sum = 0.f;
              T* pr = P.data() + r * nk;
#pragma omp simd reduction(+ : sum)
              for (int64_t c = 0; c < nk; ++c) {
                const float p = fast_exp(sr[c] - mx);
                sum += p;
                pr[c] = from_f32<T>(p);
              }
              l[r] = l[r] * alpha + sum;
              m[r] = mx;
              float* ar = acc.data() + r * D;
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) ar[d] *= alpha;
            }
            tile_gemm(false, false, rows, D, nk, P.data(), nk, vt, D, acc.data(), D, 1.0f, true);
          }
          for (int64_t r = 0; r < rows; ++r) {
            const float inv = 1.0f / l[r];
            for (int64_t d = 0; d < D; ++d) acc[r * D + d] *= inv;
            lse[(b * s.h + kvh * G + r % G) * s.t + i0 + r / G] = m[r] + std::log(l[r]);
          }
          scatter_rows(acc.data(), o, b, i0, nq, kvh, s);
        }
  }
}

// Backward (FACTS.md): Drow = rowsum(dO * O); per tile P = exp(S - LSE), dV += P^T dO,
// dP = dO V^T, dS = P * (dP - Drow), dK += scale dS^T Q, dQ += scale dS K.
// One task per (batch, KV head) owns dK, dV and the dQ of its query heads: no races, deterministic.
template <typename T>
void attention_bwd(const T* q, const T* k, const T* v, const T* o, const float* lse, const T* dout, T* dq,
                   T* dk, T* dv, const AttentionShape& s) {
  const int64_t D = s.d, G = s.h / s.kv, Bq = s.block_q, Bk = s.block_k, T_ = s.t;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const std::vector<T> qp = kv_major(q, s.b, T_, s.kv, G, D), kp = kv_major(k, s.b, T_, s.kv, 1, D),
                       vp = kv_major(v, s.b, T_, s.kv, 1, D), dop = kv_major(dout, s.b, T_, s.kv, G, D),
                       op = kv_major(o, s.b, T_, s.kv, G, D);
#pragma omp parallel
  {
    std::vector<float> S(Bq * G * Bk), dP(Bq * G * Bk), drow(T_ * G), lrow(T_ * G), dq_acc(T_ * G * D),
        dk_acc(T_ * D), dv_acc(T_ * D);
    std::vector<T> P(Bq * G * Bk), dS(Bq * G * Bk);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t kvh = 0; kvh < s.kv; ++kvh) {
        const int64_t base = (b * s.kv + kvh) * T_;  // packed row index of (t = 0, g = 0)
        for (int64_t r = 0; r < T_ * G; ++r) {  // per packed row (t, g): Drow and the saved LSE
          const T* dor = dop.data() + (base * G + r) * D;
          const T* orow = op.data() + (base * G + r) * D;
          float acc = 0.f;
#pragma omp simd reduction(+ : acc)
          for (int64_t d = 0; d < D; ++d) acc += to_f32(dor[d]) * to_f32(orow[d]);
          drow[r] = acc;
          lrow[r] = lse[(b * s.h + kvh * G + r % G) * T_ + r / G];
        }
        std::fill(dq_acc.begin(), dq_acc.end(), 0.f);
        std::fill(dk_acc.begin(), dk_acc.end(), 0.f);
        std::fill(dv_acc.begin(), dv_acc.end(), 0.f);
        for (int64_t j0 = 0; j0 < T_; j0 += Bk) {
          const int64_t nk_block = std::min(Bk, T_ - j0);
          const T* kt = kp.data() + (base + j0) * D;
          const T* vt = vp.data() + (base + j0) * D;
          for (int64_t i0 = j0 / Bq * Bq; i0 < T_; i0 += Bq) {  // only query rows that see key j0..
            const int64_t nq = std::min(Bq, T_ - i0), rows = nq * G;
            const int64_t nk = std::min(nk_block, i0 + nq - j0);  // keys past the last row are masked
            const T* qt = qp.data() + (base + i0) * G * D;
            const T* dot = dop.data() + (base + i0) * G * D;
            tile_gemm(false, true, rows, nk, D, qt, D, kt, D, S.data(), nk, scale, false);
            tile_gemm(false, true, rows, nk, D, dot, D, vt, D, dP.data(), nk, 1.0f, false);
            for (int64_t r = 0; r < rows; ++r) {
              const int64_t vis = visible(i0 + r / G, j0, nk);
              const float l = lrow[i0 * G + r], dr = drow[i0 * G + r];
#pragma omp simd
              for (int64_t c = 0; c < nk; ++c) {
                const int64_t x = r * nk + c;
                const float p = c < vis ? fast_exp(S[x] - l) : 0.f;
                P[x] = from_f32<T>(p);
                dS[x] = from_f32<T>(p * (dP[x] - dr));
              }
            }
            tile_gemm(true, false, nk, D, rows, P.data(), nk, dot, D, dv_acc.data() + j0 * D, D, 1.0f, true);
            tile_gemm(true, false, nk, D, rows, dS.data(), nk, qt, D, dk_acc.data() + j0 * D, D, scale, true);
            tile_gemm(false, false, rows, D, nk, dS.data(), nk, kt, D, dq_acc.data() + i0 * G * D, D, scale, true);
          }
        }
        scatter_rows(dq_acc.data(), dq, b, 0, T_, kvh, s);
        for (int64_t j = 0; j < T_; ++j)
          for (int64_t d = 0; d < D; ++d) {
            const int64_t at = ((b * T_ + j) * s.kv + kvh) * D + d;
            dk[at] = from_f32<T>(dk_acc[j * D + d]);
            dv[at] = from_f32<T>(dv_acc[j * D + d]);
          }
      }
  }
}

template void attention_fwd<float>(const float*, const float*, const float*, float*, float*, const AttentionShape&);
template void attention_fwd<bf16>(const bf16*, const bf16*, const bf16*, bf16*, float*, const AttentionShape&);
template void attention_bwd<float>(const float*, const float*, const float*, const float*, const float*,
                                   const float*, float*, float*, float*, const AttentionShape&);
template void attention_bwd<bf16>(const bf16*, const bf16*, const bf16*, const bf16*, const float*, const bf16*,
                                  bf16*, bf16*, bf16*, const AttentionShape&);

}  // namespace llamatron::cpu
