// Context parallelism's ring attention (include/llamatron/context_parallel.h) against the whole
// sequence's attention on one process (ops::attention_fwd / _bwd, checked against PyTorch in
// tests/unit/test_ops.cpp), under mpirun: the world split into CP groups of 2 and of 4 (every
// group runs the same case), causal and with packed documents, fp32 and bf16.
// fp32: the ring differs from one process only in how it sums the same terms (block partials
// merged by their log-sum-exp): 1e-6 of each tensor's scale. bf16: one more rounding than one
// process on each path (the partial O before the merge, the partial dQ/dK/dV before their fp32
// sums): 3 roundings of 2^-8 forward, 4 backward.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "llamatron/comm.h"
#include "llamatron/context_parallel.h"
#include "llamatron/documents.h"
#include "llamatron/random.h"

namespace llamatron {
namespace {

Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed) {
  Tensor f = Tensor::empty(shape, DType::F32);
  Rng rng(seed);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = static_cast<float>(rng.normal());
  Tensor out = Tensor::empty(shape, dtype);
  out.copy_from(f);
  return out;
}

std::vector<float> as_f32(const Tensor& t) {
  Tensor f = Tensor::empty(t.shape(), DType::F32);
  f.copy_from(t);
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

// This rank's positions of a [B, T, heads, D] tensor (or [B, H, T] for lse: positions_last).
Tensor local_rows(const ContextSplit& split, const Tensor& full, bool positions_last = false) {
  const int64_t B = full.dim(0), T = split.seq, rest = full.numel() / (B * T);
  Shape shape = full.shape();
  (positions_last ? shape[2] : shape[1]) = split.local();
  Tensor out = Tensor::empty(shape, full.dtype());
  const int64_t es = dtype_size(full.dtype());
  const auto* src = static_cast<const char*>(full.raw());
  auto* dst = static_cast<char*>(out.raw());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < split.local(); ++p) {
      const int64_t g = split.global(p);
      if (positions_last)
        for (int64_t h = 0; h < rest; ++h)
          std::memcpy(dst + ((b * rest + h) * split.local() + p) * es, src + ((b * rest + h) * T + g) * es, es);
      else
        std::memcpy(dst + (b * split.local() + p) * rest * es, src + (b * T + g) * rest * es, rest * es);
    }
  return out;
}

double scaled_error(const Tensor& got, const Tensor& want) {
  const auto a = as_f32(got), b = as_f32(want);
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num = std::max(num, std::abs(double(a[i]) - b[i])), den = std::max(den, std::abs(double(b[i])));
  return num / den;
}

struct Case {
  int c;
  int64_t t;
  DType dtype;
  bool documents;
};

void ring_matches_one_process(const Case& k) {
  Communicator& w = world();
  ASSERT_EQ(w.size() % k.c, 0) << "run under mpirun with a multiple of " << k.c << " ranks";
  std::unique_ptr<Communicator> cp = w.split(w.rank() / k.c, w.rank() % k.c);
  const int64_t B = 2, H = 4, KV = 2, D = 64, T = k.t, block = 64;
  const ContextSplit split{k.c, cp->rank(), T};
  Tensor q = random_tensor({B, T, H, D}, k.dtype, 1), kk = random_tensor({B, T, KV, D}, k.dtype, 2);
  Tensor v = random_tensor({B, T, KV, D}, k.dtype, 3), dout = random_tensor({B, T, H, D}, k.dtype, 4);
  // Documents: eods spread so that boundaries fall inside chunks, on their edges and one past.
  Tensor doc_full, doc_local;
  if (k.documents) {
    std::vector<int32_t> tokens(B * (T + 1), 1);
    for (int64_t i : {T / 8 - 1, T / 8, T / 3, T / 2 - 1, T / 2 + 7, T - 40}) tokens[i] = 0;
    for (int64_t i = 5; i < T; i += 97) tokens[(T + 1) + i] = 0;
    const Documents d = find_documents(tokens.data(), B, T, T + 1, DocumentRules{0, true, false, false});
    doc_full = Tensor::empty({B, T}, DType::I32);
    std::copy(d.starts.begin(), d.starts.end(), doc_full.data<int32_t>());
    doc_local = Tensor::empty({B, split.local()}, DType::I32);
    const std::vector<int32_t> mine = local_part(split, d.starts.data(), B, T);
    std::copy(mine.begin(), mine.end(), doc_local.data<int32_t>());
  }
  // One process, the whole sequence (fp32 reference and the same dtype).
  const auto whole = [&](DType dt) {
    Tensor qd = Tensor::empty(q.shape(), dt), kd = Tensor::empty(kk.shape(), dt), vd = Tensor::empty(v.shape(), dt);
    Tensor dod = Tensor::empty(dout.shape(), dt);
    qd.copy_from(q), kd.copy_from(kk), vd.copy_from(v), dod.copy_from(dout);
    Tensor o = Tensor::empty(q.shape(), dt), lse = Tensor::empty({B, H, T}, DType::F32);
    Tensor dq = Tensor::empty(q.shape(), dt), dk = Tensor::empty(kk.shape(), dt), dv = Tensor::empty(v.shape(), dt);
    ops::attention_fwd(qd, kd, vd, o, lse, {doc_full}, block, block);
    ops::attention_bwd(qd, kd, vd, o, lse, dod, dq, dk, dv, {doc_full}, block, block);
    return std::vector<Tensor>{o, lse, dq, dk, dv};
  };
  const std::vector<Tensor> ref = whole(DType::F32);
  // The ring on this rank's positions.
  const Tensor ql = local_rows(split, q), kl = local_rows(split, kk), vl = local_rows(split, v), dol = local_rows(split, dout);
  Tensor o = Tensor::empty(ql.shape(), k.dtype), lse = Tensor::empty({B, H, split.local()}, DType::F32);
  Tensor dq = Tensor::empty(ql.shape(), k.dtype), dk = Tensor::empty(kl.shape(), k.dtype), dv = Tensor::empty(vl.shape(), k.dtype);
  context_parallel_attention_fwd(*cp, split, ql, kl, vl, o, lse, doc_local, block, block);
  context_parallel_attention_bwd(*cp, split, ql, kl, vl, o, lse, dol, dq, dk, dv, doc_local, block, block);
  const bool bf = k.dtype == DType::BF16;
  const double fwd = bf ? 3.0 / 256 : 1e-6, bwd = bf ? 4.0 / 256 : 1e-6;
  EXPECT_LE(scaled_error(o, local_rows(split, ref[0])), fwd) << "O";
  EXPECT_LE(scaled_error(lse, local_rows(split, ref[1], true)), bf ? 1e-5 : 1e-6) << "LSE";  // fp32 math on the same inputs
  EXPECT_LE(scaled_error(dq, local_rows(split, ref[2])), bwd) << "dQ";
  EXPECT_LE(scaled_error(dk, local_rows(split, ref[3])), bwd) << "dK";
  EXPECT_LE(scaled_error(dv, local_rows(split, ref[4])), bwd) << "dV";
  w.barrier();
}

TEST(ContextParallelAttention, Cp2MatchesOneProcess) {
  for (DType dt : {DType::F32, DType::BF16})
    for (bool docs : {false, true}) {
      SCOPED_TRACE(std::string(dt == DType::F32 ? "fp32" : "bf16") + (docs ? ", documents" : ", causal"));
      ring_matches_one_process({2, 1024, dt, docs});
    }
}
TEST(ContextParallelAttention, Cp4MatchesOneProcess) {
  for (DType dt : {DType::F32, DType::BF16})
    for (bool docs : {false, true}) {
      SCOPED_TRACE(std::string(dt == DType::F32 ? "fp32" : "bf16") + (docs ? ", documents" : ", causal"));
      ring_matches_one_process({4, 1024, dt, docs});
    }
}
TEST(ContextParallelAttention, Cp4AtT4096MatchesOneProcess) { ring_matches_one_process({4, 4096, DType::F32, true}); }

}  // namespace
}  // namespace llamatron
