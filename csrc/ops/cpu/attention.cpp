// Causal GQA attention on the CPU, tiled like FlashAttention-2 (FACTS.md): the matrix products of
// a tile go through oneDNN (AMX for bf16), the online softmax stays in fp32. In bf16 mode the
// probabilities P are rounded to bf16 before P*V, as the tensor-core kernel does.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/gemm.h"

namespace llamatron::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Tile product helper: C = alpha * op(A) op(B) (+ C), A/B of storage type T, C fp32.
template <typename T>
void tile_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
               int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  gemm(GemmArgs{dtype_of<T>(), DType::F32, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, alpha, accumulate});
}

// Where row i of a q block and column j of a k block fall in the sequence decides the causal mask.
inline bool masked(int64_t i, int64_t j) { return j > i; }

}  // namespace

template <typename T>
void attention_fwd(const T* q, const T* k, const T* v, T* o, float* lse, const AttentionShape& s) {
  const int64_t D = s.d, Bq = s.block_q, Bk = s.block_k, group = s.h / s.kv;
  const int64_t q_stride = s.h * D, kv_stride = s.kv * D;
  const int64_t n_qblocks = (s.t + Bq - 1) / Bq;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel
  {
    std::vector<float> S(Bq * Bk), acc(Bq * D), m(Bq), l(Bq);
    std::vector<T> P(Bq * Bk);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t h = 0; h < s.h; ++h)
        for (int64_t qb = 0; qb < n_qblocks; ++qb) {
          const int64_t i0 = qb * Bq, nq = std::min(Bq, s.t - i0), kvh = h / group;
          const T* qt = q + ((b * s.t + i0) * s.h + h) * D;
          std::fill(m.begin(), m.end(), kNegInf);
          std::fill(l.begin(), l.end(), 0.f);
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t j0 = 0; j0 < i0 + nq; j0 += Bk) {  // causal: keys up to the last query row
            const int64_t nk = std::min(Bk, i0 + nq - j0);
            const T* kt = k + ((b * s.t + j0) * s.kv + kvh) * D;
            const T* vt = v + ((b * s.t + j0) * s.kv + kvh) * D;
            tile_gemm(false, true, nq, nk, D, qt, q_stride, kt, kv_stride, S.data(), Bk, scale, false);
            const bool diagonal = j0 + nk - 1 > i0;
            for (int64_t r = 0; r < nq; ++r) {
              float* sr = S.data() + r * Bk;
              if (diagonal)
                for (int64_t c = 0; c < nk; ++c)
                  if (masked(i0 + r, j0 + c)) sr[c] = kNegInf;
              float mx = m[r];
              for (int64_t c = 0; c < nk; ++c) mx = std::max(mx, sr[c]);
              const float alpha = std::exp(m[r] - mx);  // m[r] is finite after block 0 (key 0 is visible)
              float sum = 0.f;
              T* pr = P.data() + r * Bk;
              for (int64_t c = 0; c < nk; ++c) {
                const float p = std::exp(sr[c] - mx);
                sum += p;
                pr[c] = from_f32<T>(p);
              }
              l[r] = l[r] * alpha + sum;
              m[r] = mx;
              float* ar = acc.data() + r * D;
              for (int64_t d = 0; d < D; ++d) ar[d] *= alpha;
            }
            tile_gemm(false, false, nq, D, nk, P.data(), Bk, vt, kv_stride, acc.data(), D, 1.0f, true);
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
  const int64_t q_stride = s.h * D, kv_stride = s.kv * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
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
            for (int64_t d = 0; d < D; ++d) acc += to_f32(qrow(dout, i)[d]) * to_f32(qrow(o, i)[d]);
            drow[i] = acc;
          }
          std::fill(dq_acc.begin(), dq_acc.end(), 0.f);
          for (int64_t j0 = 0; j0 < T_; j0 += Bk) {
            const int64_t nk = std::min(Bk, T_ - j0);
            const T* kt = k + ((b * T_ + j0) * s.kv + kvh) * D;
            const T* vt = v + ((b * T_ + j0) * s.kv + kvh) * D;
            for (int64_t i0 = j0 / Bq * Bq; i0 < T_; i0 += Bq) {  // only query rows that see key j0..
              const int64_t nq = std::min(Bq, T_ - i0);
              const T* qt = qrow(q, i0);
              const T* dot = qrow(dout, i0);
              tile_gemm(false, true, nq, nk, D, qt, q_stride, kt, kv_stride, S.data(), Bk, scale, false);
              tile_gemm(false, true, nq, nk, D, dot, q_stride, vt, kv_stride, dP.data(), Bk, 1.0f, false);
              for (int64_t r = 0; r < nq; ++r)
                for (int64_t c = 0; c < nk; ++c) {
                  const int64_t x = r * Bk + c;
                  const float p = masked(i0 + r, j0 + c) ? 0.f : std::exp(S[x] - lse_h[i0 + r]);
                  P[x] = from_f32<T>(p);
                  dS[x] = from_f32<T>(p * (dP[x] - drow[i0 + r]));
                }
              tile_gemm(true, false, nk, D, nq, P.data(), Bk, dot, q_stride, dv_acc.data() + j0 * D, D, 1.0f, true);
              tile_gemm(true, false, nk, D, nq, dS.data(), Bk, qt, q_stride, dk_acc.data() + j0 * D, D, scale, true);
              tile_gemm(false, false, nq, D, nk, dS.data(), Bk, kt, kv_stride, dq_acc.data() + i0 * D, D, scale, true);
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
