// Every op, forward and backward, against the float64 PyTorch autograd reference
// (tests/reference/make_cases.py), in fp32 mode and bf16 mode.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "llamatron/documents.h"
#include "llamatron/ops.h"
#include "ops/cpu/cpu_ops.h"
#include "reference.h"

namespace llamatron::test {
namespace {

struct OpCase {
  std::string stem, prec;
  friend void PrintTo(const OpCase& c, std::ostream* os) { *os << c.stem << "_" << c.prec; }
};
std::string case_name(const testing::TestParamInfo<OpCase>& info) { return info.param.stem + "_" + info.param.prec; }
std::vector<OpCase> cases(const std::string& op, std::vector<std::string> names) {
  std::vector<OpCase> out;
  for (const auto& n : names)
    for (const char* p : {"fp32", "bf16"}) out.push_back({op + "_" + n, p});
  return out;
}

// Packed documents' per-position tensor of a case with `tokens` [B, T] (the reference applied
// Megatron's rule with the same eod to the same tokens), else undefined.
Tensor document_tensor(const RefCase& c, bool starts) {
  if (!c.file.tensors.count("tokens")) return {};
  Tensor tokens = c.input("tokens");
  const int64_t B = tokens.dim(0), T = tokens.dim(1);
  DocumentRules rules;
  rules.eod_id = static_cast<int32_t>(c.meta("eod_id"));
  (starts ? rules.reset_attention_mask : rules.reset_position_ids) = true;
  const Documents d = find_documents(tokens.data<int32_t>(), B, T, T, rules);
  const std::vector<int32_t>& v = starts ? d.starts : d.positions;
  Tensor out = Tensor::empty({B, T}, DType::I32);
  std::copy(v.begin(), v.end(), out.data<int32_t>());
  return out;
}

class OpTest : public testing::TestWithParam<OpCase> {
 protected:
  RefCase c = load_case(GetParam().stem, GetParam().prec);
};

// ---- linear (oneDNN GEMM): fp32 accumulation; y and dx are rounded once to bf16, dw is fp32.
// In bf16 mode dy is rounded to bf16 by the reference too, so dw sees no rounding of ours at all.
using Linear = OpTest;
TEST_P(Linear, MatchesTorch) {
  Tensor x = c.input("x"), w = c.input("w"), dy = c.input("dy");
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  Tensor y = Tensor::empty({m, n}, c.dtype), dx = Tensor::empty({m, k}, c.dtype), dw = Tensor::zeros({n, k}, DType::F32);
  ops::linear_fwd(x, w, y);
  ops::linear_bwd_data(dy, w, dx, false);
  ops::linear_bwd_weight(dy, x, dw);
  EXPECT_MATCHES(y, c, "y", c.tol(1));
  EXPECT_MATCHES(dx, c, "dx", c.tol(1));
  EXPECT_MATCHES(dw, c, "dw", kFp32Tol);
}
INSTANTIATE_TEST_SUITE_P(Ref, Linear, testing::ValuesIn(cases("linear", {"m7k5n3", "m33k64n130", "m128k256n96"})), case_name);

// ---- RMSNorm: y, dx rounded once; dw accumulates in fp32.
using RmsNorm = OpTest;
TEST_P(RmsNorm, MatchesTorch) {
  Tensor x = c.input("x"), w = c.input("w"), dy = c.input("dy");
  const int64_t n = x.dim(0), ch = x.dim(1);
  Tensor y = Tensor::empty(x.shape(), c.dtype), rstd = Tensor::empty({n}, DType::F32);
  Tensor dx = Tensor::empty(x.shape(), c.dtype), dw = Tensor::zeros({ch}, DType::F32);
  ops::rmsnorm_fwd(x, w, static_cast<float>(c.meta("eps")), y, rstd);
  ops::rmsnorm_bwd(dy, x, w, rstd, dx, dw, false);
  EXPECT_MATCHES(y, c, "y", c.tol(1));
  EXPECT_MATCHES(dx, c, "dx", c.tol(1));
  EXPECT_MATCHES(dw, c, "dw", kFp32Tol);
}
INSTANTIATE_TEST_SUITE_P(Ref, RmsNorm, testing::ValuesIn(cases("rmsnorm", {"n7c64", "n33c130", "n1c512", "n64c1000"})), case_name);

// ---- RoPE (in place): one rounding.
using Rope = OpTest;
TEST_P(Rope, MatchesTorch) {
  Tensor x = c.input("x"), dy = c.input("dy");
  const int64_t offset = static_cast<int64_t>(c.meta("offset")), t = x.dim(1), d = x.dim(3);
  Tensor cos = Tensor::empty({offset + t, d / 2}, DType::F32), sin = Tensor::empty({offset + t, d / 2}, DType::F32);
  cpu::rope_table(cos.data<float>(), sin.data<float>(), offset + t, d, c.meta("theta"));
  const Tensor positions = document_tensor(c, false);  // documents' position ids (docs_ cases)
  ops::rope_fwd(x, cos, sin, offset, positions);
  ops::rope_bwd(dy, cos, sin, offset, positions);
  EXPECT_MATCHES(x, c, "y", c.tol(1));
  EXPECT_MATCHES(dy, c, "dx", c.tol(1));
}
INSTANTIATE_TEST_SUITE_P(Ref, Rope, testing::ValuesIn(cases("rope", {"t1d64", "t17d64", "t33d128", "docs_len1", "docs_tiny"})),
                         case_name);

// ---- Attention. Forward: P rounded to bf16 before P*V, then the output: 2 roundings; lse is
// fp32 math on bf16 inputs (exact inputs): fp32 bound. Backward: P and dS are rounded before
// their GEMMs and the result once more: 3 roundings.
struct AttentionCase {
  std::string name, prec;
  int64_t block;  // tile size for both q and k blocks
  friend void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name << "_" << c.prec << "_block" << c.block; }
};
class Attention : public testing::TestWithParam<AttentionCase> {};
TEST_P(Attention, MatchesTorch) {
  const auto& p = GetParam();
  RefCase c = load_case("attention_" + p.name, p.prec);
  Tensor q = c.input("q"), k = c.input("k"), v = c.input("v"), dy = c.input("dy");
  Tensor o = Tensor::empty(q.shape(), c.dtype), lse = Tensor::empty({q.dim(0), q.dim(2), q.dim(1)}, DType::F32);
  Tensor dq = Tensor::empty(q.shape(), c.dtype), dk = Tensor::empty(k.shape(), c.dtype), dv = Tensor::empty(v.shape(), c.dtype);
  const Tensor doc_start = document_tensor(c, true);  // packed documents (docs_ cases)
  ops::attention_fwd(q, k, v, o, lse, {doc_start}, p.block, p.block);
  ops::attention_bwd(q, k, v, o, lse, dy, dq, dk, dv, {doc_start}, p.block, p.block);
  EXPECT_MATCHES(o, c, "y", c.tol(2));
  EXPECT_MATCHES(lse, c, "lse", kFp32Tol);
  EXPECT_MATCHES(dq, c, "dq", c.tol(3));
  EXPECT_MATCHES(dk, c, "dk", c.tol(3));
  EXPECT_MATCHES(dv, c, "dv", c.tol(3));
}
std::vector<AttentionCase> attention_cases() {
  std::vector<AttentionCase> out;
  for (int t : {1, 17, 64, 130})
    for (auto [h, kv] : {std::pair{4, 4}, {4, 2}, {4, 1}})
      for (int d : {64, 128})
        for (const char* prec : {"fp32", "bf16"}) {
          const std::string name = "t" + std::to_string(t) + "h" + std::to_string(h) + "kv" + std::to_string(kv) + "d" + std::to_string(d);
          out.push_back({name, prec, 64});
          if (t >= 17) out.push_back({name, prec, 16});  // many tiles: exercises the online rescaling
        }
  // Packed documents (tests/reference/make_cases.py's patterns): boundaries on and one past the
  // edges of 8-, 64- and 128-wide tiles, documents of length 1, many tiny ones, one for the row.
  for (const char* pat : {"len1", "edges", "tiny", "whole"})
    for (const char* hk : {"h4kv2", "h2kv1"})
      for (int d : {64, 128})
        for (const char* prec : {"fp32", "bf16"})
          for (int64_t block : {8, 64, 128}) out.push_back({std::string("docs_") + pat + "_" + hk + "d" + std::to_string(d), prec, block});
  return out;
}
INSTANTIATE_TEST_SUITE_P(Ref, Attention, testing::ValuesIn(attention_cases()),
                         [](const testing::TestParamInfo<AttentionCase>& i) {
                           return i.param.name + "_" + i.param.prec + "_block" + std::to_string(i.param.block);
                         });

// ---- Attention on blocks of a sequence (context parallelism's ring): each key block attended at
// its global offset, the partials merged by log-sum-exp (ops::attention_merge), equals attention
// over the whole sequence (the PyTorch-checked path above) in fp32, with and without documents;
// a block of keys wholly after the queries gives O = 0 and LSE = -inf and leaves the merge as it was.
TEST(AttentionBlocks, MergedPartialsEqualTheWholeSequence) {
  RefCase c = load_case("attention_docs_edges_h4kv2d64", "fp32");
  Tensor q = c.input("q"), k = c.input("k"), v = c.input("v");
  const int64_t B = q.dim(0), T = q.dim(1), H = q.dim(2), KV = k.dim(2), D = q.dim(3), cut = 64;
  for (const bool docs : {false, true}) {
    SCOPED_TRACE(docs ? "documents" : "causal");
    const Tensor doc_start = docs ? document_tensor(c, true) : Tensor();
    Tensor o = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({B, H, T}, DType::F32);
    ops::attention_fwd(q, k, v, o, lse, {doc_start}, 64, 64);
    for (int64_t b = 0; b < B; ++b) {  // the queries of one sequence against its keys in two blocks: [0, cut) and [cut, T)
      const Tensor qb = q.view(b * T * H * D, {1, T, H, D});
      const Tensor docb = docs ? doc_start.view(b * T, {1, T}) : Tensor();
      Tensor acc = Tensor::zeros({1, T, H, D}, DType::F32), acc_lse = Tensor::empty({H, T}, DType::F32);
      std::fill_n(acc_lse.data<float>(), acc_lse.numel(), -std::numeric_limits<float>::infinity());
      for (const auto& [k0, n] : {std::pair<int64_t, int64_t>{cut, T - cut}, {0, cut}}) {
        Tensor part = Tensor::empty({1, T, H, D}, DType::F32), part_lse = Tensor::empty({1, H, T}, DType::F32);
        ops::attention_fwd(qb, k.view((b * T + k0) * KV * D, {1, n, KV, D}), v.view((b * T + k0) * KV * D, {1, n, KV, D}), part,
                           part_lse, {docb, 0, k0}, 16, 16);
        ops::attention_merge(acc, acc_lse, part, part_lse);
      }
      const std::vector<double> want = to_f64(o.view(b * T * H * D, {T * H * D})), got = to_f64(acc);
      EXPECT_LE(scaled_error(got, want), 1e-6) << "O, sequence " << b;
      std::vector<double> lse_want(H * T), lse_got = to_f64(acc_lse);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t) lse_want[h * T + t] = lse.data<float>()[(b * H + h) * T + t];
      EXPECT_LE(scaled_error(lse_got, lse_want), 1e-6) << "LSE, sequence " << b;
    }
  }
  // Keys wholly after the queries: nothing visible.
  const Tensor q1 = q.view(0, {1, 32, H, D}), k1 = k.view(0, {1, 32, KV, D}), v1 = v.view(0, {1, 32, KV, D});
  Tensor part = Tensor::empty({1, 32, H, D}, DType::F32), part_lse = Tensor::empty({1, H, 32}, DType::F32);
  ops::attention_fwd(q1, k1, v1, part, part_lse, {Tensor(), 0, 32});
  for (int64_t i = 0; i < part.numel(); ++i) ASSERT_EQ(part.data<float>()[i], 0.f);
  for (int64_t i = 0; i < part_lse.numel(); ++i) ASSERT_EQ(part_lse.data<float>()[i], -std::numeric_limits<float>::infinity());
  Tensor acc = Tensor::zeros({1, 32, H, D}, DType::F32), acc_lse = Tensor::zeros({H, 32}, DType::F32);
  acc.data<float>()[5] = 3.f;
  ops::attention_merge(acc, acc_lse, part, part_lse);
  EXPECT_EQ(acc.data<float>()[5], 3.f);
  EXPECT_EQ(acc_lse.data<float>()[7], 0.f);
}

// ---- SwiGLU on the fused [gate | up] rows: one rounding each.
Tensor concat_cols(const Tensor& a, const Tensor& b) {  // [n, f] and [n, f] -> [n, 2f]
  const int64_t n = a.dim(0), f = a.dim(1), es = dtype_size(a.dtype());
  Tensor out = Tensor::empty({n, 2 * f}, a.dtype());
  for (int64_t r = 0; r < n; ++r) {
    std::memcpy(static_cast<char*>(out.raw()) + 2 * r * f * es, static_cast<char*>(a.raw()) + r * f * es, f * es);
    std::memcpy(static_cast<char*>(out.raw()) + (2 * r + 1) * f * es, static_cast<char*>(b.raw()) + r * f * es, f * es);
  }
  return out;
}
std::vector<double> cols(const Tensor& t, int64_t first, int64_t count) {
  const std::vector<double> all = to_f64(t);
  std::vector<double> out;
  for (int64_t r = 0; r < t.dim(0); ++r)
    for (int64_t i = 0; i < count; ++i) out.push_back(all[r * t.dim(1) + first + i]);
  return out;
}
using SwiGlu = OpTest;
TEST_P(SwiGlu, MatchesTorch) {
  Tensor gate = c.input("gate"), up = c.input("up"), dy = c.input("dy");
  const int64_t f = gate.dim(1);
  Tensor gate_up = concat_cols(gate, up), y = Tensor::empty(gate.shape(), c.dtype);
  Tensor dgate_up = Tensor::empty(gate_up.shape(), c.dtype);
  ops::swiglu_fwd(gate_up, y);
  ops::swiglu_bwd(dy, gate_up, dgate_up);
  EXPECT_MATCHES(y, c, "y", c.tol(1));
  EXPECT_LE(scaled_error(cols(dgate_up, 0, f), c.ref("dgate")), c.tol(1));
  EXPECT_LE(scaled_error(cols(dgate_up, f, f), c.ref("dup")), c.tol(1));
}
INSTANTIATE_TEST_SUITE_P(Ref, SwiGlu, testing::ValuesIn(cases("swiglu", {"n5f7", "n40f200", "n3f1408"})), case_name);

// ---- Embedding: a copy (exact) and an fp32 scatter-add of bf16-exact values.
using Embedding = OpTest;
TEST_P(Embedding, MatchesTorch) {
  Tensor ids = c.input("ids"), table = c.input("table"), dy = c.input("dy");
  Tensor y = Tensor::empty({ids.numel(), table.dim(1)}, c.dtype), dt = Tensor::zeros(table.shape(), DType::F32);
  ops::embedding_fwd(ids, table, y);
  ops::embedding_bwd(ids, dy, dt);
  EXPECT_MATCHES(y, c, "y", 0.0);
  EXPECT_MATCHES(dt, c, "dtable", kFp32Tol);
}
INSTANTIATE_TEST_SUITE_P(Ref, Embedding, testing::ValuesIn(cases("embedding", {"v11c8", "v97c64"})), case_name);

// ---- Cross-entropy: the loss is fp32 math (fp64 sum); dlogits is rounded once.
using CrossEntropy = OpTest;
TEST_P(CrossEntropy, MatchesTorch) {
  Tensor logits = c.input("logits"), targets = c.input("targets");
  const int32_t ignore = static_cast<int32_t>(c.meta("ignore_index"));
  int64_t valid = 0;
  for (int64_t i = 0; i < targets.numel(); ++i) valid += targets.data<int32_t>()[i] != ignore;
  Tensor dlogits = Tensor::empty(logits.shape(), c.dtype);
  const double loss = ops::cross_entropy_fwd_bwd(logits, targets, dlogits, 1.0f / valid, ignore) / valid;
  EXPECT_NEAR(loss, c.ref("loss")[0], kFp32Tol * std::abs(c.ref("loss")[0]));
  EXPECT_MATCHES(dlogits, c, "dlogits", c.tol(1));
}
INSTANTIATE_TEST_SUITE_P(Ref, CrossEntropy, testing::ValuesIn(cases("cross_entropy", {"n5v7", "n33v101", "n17v1000"})), case_name);

// dst [b, a, K] from src [a, b, K]: element (ia, ib, e) of src lands at (ib, ia, e), by the
// definition, for fp32 and bf16 and a K the blocks do not align to.
TEST(TransposeBlocks, MovesEachBlockWhereTheDefinitionSays) {
  const int64_t a = 3, b = 4, k = 5;
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor src = Tensor::empty({a * b * k}, DType::F32), dst = Tensor::empty({a * b * k}, dt), typed = Tensor::empty({a * b * k}, dt);
    for (int64_t i = 0; i < src.numel(); ++i) src.data<float>()[i] = static_cast<float>(i);  // exact in bf16 below 256
    typed.copy_from(src);
    ops::transpose_blocks(typed, dst, a, b);
    Tensor back = Tensor::empty({a * b * k}, DType::F32);
    back.copy_from(dst);
    for (int64_t ia = 0; ia < a; ++ia)
      for (int64_t ib = 0; ib < b; ++ib)
        for (int64_t e = 0; e < k; ++e)
          EXPECT_EQ(back.data<float>()[(ib * a + ia) * k + e], static_cast<float>((ia * b + ib) * k + e)) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace llamatron::test
