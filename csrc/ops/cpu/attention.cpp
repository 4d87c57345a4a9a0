// Causal GQA attention on the CPU, tiled like FlashAttention-2 (FACTS.md): the matrix products of
// a tile go through oneDNN (AMX for bf16), the online softmax stays in fp32. In bf16 mode the
// probabilities P are rounded to bf16 before P*V, as the tensor-core kernel does.
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

// Tile product helper: C = alpha * op(A) op(B) (+ C), A/B of storage type T, C fp32.
template <typename T>
void tile_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
               int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  gemm(GemmArgs{dtype_of<T>(), DType::F32, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, alpha, accumulate});
}

// Causal mask: query i sees keys j <= i, i.e. the first visible(i, j0, nk) columns of a k block.
inline int64_t visible(int64_t i, int64_t j0, int64_t nk) { return std::clamp<int64_t>(i - j0 + 1, 0, nk); }

// [B, T, heads, D] -> [B, heads, T, D]: every tile a GEMM reads is then dense, which is what
// oneDNN's AMX (brgemm) kernels require; strided bf16 operands fall back to a convert-then-sgemm
// path several times slower. The copy is O(B*T*heads*D), like the inputs.
template <typename T>
std::vector<T> head_major(const T* x, int64_t b, int64_t t, int64_t heads, int64_t d) {
  std::vector<T> out(static_cast<size_t>(b * t * heads * d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t h = 0; h < heads; ++h)
        std::copy_n(x + ((bi * t + ti) * heads + h) * d, d, out.data() + ((bi * heads + h) * t + ti) * d);
  return out;
}

}  // namespace

template <typename T>
void attention_fwd(const T* q, const T* k, const T* v, T* o, float* lse, const AttentionShape& s) {
  const int64_t D = s.d, Bq = s.block_q, Bk = s.block_k, group = s.h / s.kv;
  const int64_t n_qblocks = (s.t + Bq - 1) / Bq;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const std::vector<T> qh = head_major(q, s.b, s.t, s.h, D), kh = head_major(k, s.b, s.t, s.kv, D),
                       vh = head_major(v, s.b, s.t, s.kv, D);
#pragma omp parallel
  {
    std::vector<float> S(Bq * Bk), acc(Bq * D), m(Bq), l(Bq);
    std::vector<T> P(Bq * Bk);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t h = 0; h < s.h; ++h)
        for (int64_t qb = 0; qb < n_qblocks; ++qb) {
          const int64_t i0 = qb * Bq, nq = std::min(Bq, s.t - i0), kvh = h / group;
          const T* qt = qh.data() + ((b * s.h + h) * s.t + i0) * D;
          std::fill(m.begin(), m.end(), kNegInf);
          std::fill(l.begin(), l.end(), 0.f);
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t j0 = 0; j0 < i0 + nq; j0 += Bk) {  // causal: keys up to the last query row
            const int64_t nk = std::min(Bk, i0 + nq - j0);
            const T* kt = kh.data() + ((b * s.kv + kvh) * s.t + j0) * D;
            const T* vt = vh.data() + ((b * s.kv + kvh) * s.t + j0) * D;
            // Tiles are stored with row stride nk (dense), not Bk: see head_major.
            tile_gemm(false, true, nq, nk, D, qt, D, kt, D, S.data(), nk, scale, false);
            for (int64_t r = 0; r < nq; ++r) {
              float* sr = S.data() + r * nk;
              const int64_t vis = visible(i0 + r, j0, nk);
              for (int64_t c = vis; c < nk; ++c) sr[c] = kNegInf;
              float mx = m[r];
#pragma omp simd reduction(max : mx)
              for (int64_t c = 0; c < nk; ++c) mx = std::max(mx, sr[c]);
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
            tile_gemm(false, false, nq, D, nk, P.data(), nk, vt, D, acc.data(), D, 1.0f, true);
          }
          for (int64_t r = 0; r < nq; ++r) {
            T* orow = o + ((b * s.t + i0 + r) * s.h + h) * D;
            const float inv = 1.0f / l[r];
            for (int64_t d = 0; d < D; ++d) orow[d] = from_f32<T>(acc[r * D + d] * inv);
            lse[(b * s.h + h) * s.t + i0 + r] = m[r] + std::log(l[r]);
          }
        }
  }
}

// Backward (FACTS.md): Drow = rowsum(dO * O); per tile P = exp(S - LSE), dV += P^T dO,
// dP = dO V^T, dS = P * (dP - Drow), dK += scale dS^T Q, dQ += scale dS K.
template <typename T>
void attention_bwd(const T* q, const T* k, const T* v, const T* o, const float* lse, const T* dout, T* dq,
                   T* dk, T* dv, const AttentionShape& s) {
  const int64_t D = s.d, Bq = s.block_q, Bk = s.block_k, group = s.h / s.kv, T_ = s.t;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const std::vector<T> qh = head_major(q, s.b, T_, s.h, D), kh = head_major(k, s.b, T_, s.kv, D),
                       vh = head_major(v, s.b, T_, s.kv, D), doh = head_major(dout, s.b, T_, s.h, D);
#pragma omp parallel
  {
    std::vector<float> S(Bq * Bk), dP(Bq * Bk), drow(T_), dq_acc(T_ * D), dk_acc(T_ * D), dv_acc(T_ * D);
    std::vector<T> P(Bq * Bk), dS(Bq * Bk);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t kvh = 0; kvh < s.kv; ++kvh) {
        std::fill(dk_acc.begin(), dk_acc.end(), 0.f);
        std::fill(dv_acc.begin(), dv_acc.end(), 0.f);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          auto qrow = [&](auto* base, int64_t i) { return base + ((b * T_ + i) * s.h + h) * D; };
          const float* lse_h = lse + (b * s.h + h) * T_;
          for (int64_t i = 0; i < T_; ++i) {
            float acc = 0.f;
#pragma omp simd reduction(+ : acc)
            for (int64_t d = 0; d < D; ++d) acc += to_f32(qrow(dout, i)[d]) * to_f32(qrow(o, i)[d]);
            drow[i] = acc;
          }
          std::fill(dq_acc.begin(), dq_acc.end(), 0.f);
          for (int64_t j0 = 0; j0 < T_; j0 += Bk) {
            const int64_t nk_block = std::min(Bk, T_ - j0);
            const T* kt = kh.data() + ((b * s.kv + kvh) * T_ + j0) * D;
            const T* vt = vh.data() + ((b * s.kv + kvh) * T_ + j0) * D;
            for (int64_t i0 = j0 / Bq * Bq; i0 < T_; i0 += Bq) {  // only query rows that see key j0..
              const int64_t nq = std::min(Bq, T_ - i0);
              const int64_t nk = std::min(nk_block, i0 + nq - j0);  // keys past the last row are masked
              const T* qt = qh.data() + ((b * s.h + h) * T_ + i0) * D;
              const T* dot = doh.data() + ((b * s.h + h) * T_ + i0) * D;
              tile_gemm(false, true, nq, nk, D, qt, D, kt, D, S.data(), nk, scale, false);
              tile_gemm(false, true, nq, nk, D, dot, D, vt, D, dP.data(), nk, 1.0f, false);
              for (int64_t r = 0; r < nq; ++r) {
                const int64_t vis = visible(i0 + r, j0, nk);
                const float l = lse_h[i0 + r], dr = drow[i0 + r];
#pragma omp simd
                for (int64_t c = 0; c < nk; ++c) {
                  const int64_t x = r * nk + c;
                  const float p = c < vis ? fast_exp(S[x] - l) : 0.f;
                  P[x] = from_f32<T>(p);
                  dS[x] = from_f32<T>(p * (dP[x] - dr));
                }
              }
              tile_gemm(true, false, nk, D, nq, P.data(), nk, dot, D, dv_acc.data() + j0 * D, D, 1.0f, true);
              tile_gemm(true, false, nk, D, nq, dS.data(), nk, qt, D, dk_acc.data() + j0 * D, D, scale, true);
              tile_gemm(false, false, nq, D, nk, dS.data(), nk, kt, D, dq_acc.data() + i0 * D, D, scale, true);
            }
          }
          for (int64_t i = 0; i < T_; ++i)
            for (int64_t d = 0; d < D; ++d) qrow(dq, i)[d] = from_f32<T>(dq_acc[i * D + d]);
        }
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
