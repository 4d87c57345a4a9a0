// kernels/attention.cu, run by the emulator, against the CPU attention (csrc/ops/cpu/attention.cpp,
// itself checked against PyTorch autograd), within test::expect_no_worse_than_cpu_bf16
// (kernel_test_util.h: twice the CPU bf16 attention's own error against its fp32 run).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/emu/emu.h"  // first: the emulator's keywords come before any CUDA header
#include "kernels/attention.cuh"
#include "ops/cpu/cpu_ops.h"
#include "tests/emu/kernel_test_util.h"

namespace llamatron {
namespace {

using test::dev;
using test::random_bf16;

struct Case {
  int b, t, h, kv, d;
  std::string docs = "";  // packed documents: a pattern of doc_starts() (empty: one causal window)
  friend void PrintTo(const Case& c, std::ostream* os) {
    *os << c.b << "x" << c.t << " h" << c.h << " kv" << c.kv << " d" << c.d << (c.docs.empty() ? "" : " docs " + c.docs);
  }
};

// Per-position document starts [b, t] of a pattern, from the positions of its eod inputs (the rule
// of include/llamatron/documents.h). The kernels' tiles are 32, 64 and 128 positions wide.
std::vector<int32_t> doc_starts(const std::string& pattern, int b, int t) {
  std::vector<int32_t> out;
  for (int row = 0; row < b; ++row) {
    std::vector<int> eods;
    if (pattern == "len1") {  // documents of length 1, then one long one
      for (int i = 0; i < 21; ++i) eods.push_back(i + row);
      eods.push_back(100);
    } else if (pattern == "edges") {  // starts at tile edges and one past them
      for (int e : {31, 32, 63, 64, 127, 128, 191}) eods.push_back(e - row);
    } else if (pattern == "tiny") {  // many tiny documents
      for (int i = 1 + row; i < t; i += 3) eods.push_back(i);
    } else if (pattern == "whole") {  // one document spanning the window (an eod as the last input)
      if (row == 1) eods.push_back(t - 1);
    }
    int start = 0;
    for (int i = 0; i < t; ++i) {
      if (i > 0 && std::find(eods.begin(), eods.end(), i - 1) != eods.end()) start = i;
      out.push_back(start);
    }
  }
  return out;
}

struct Inputs {
  cpu::AttentionShape shape;
  kernels::AttentionDims dims;
  std::vector<bf16> q, k, v, dout;
  std::vector<int32_t> doc;
  explicit Inputs(const Case& c)
      : shape{c.b, c.t, c.h, c.kv, c.d},
        dims{c.b, c.t, c.h, c.kv, c.d},
        q(random_bf16(size_t(c.b) * c.t * c.h * c.d, 11, 1.5f)),
        k(random_bf16(size_t(c.b) * c.t * c.kv * c.d, 12, 1.5f)),
        v(random_bf16(size_t(c.b) * c.t * c.kv * c.d, 13, 1.0f)),
        dout(random_bf16(size_t(c.b) * c.t * c.h * c.d, 14, 1.0f)),
        doc(c.docs.empty() ? std::vector<int32_t>{} : doc_starts(c.docs, c.b, c.t)) {
    shape.doc_start = docs();
  }
  Inputs(const Inputs&) = delete;  // shape points into doc
  const int32_t* docs() const { return doc.empty() ? nullptr : doc.data(); }
};

// The CPU attention, forward and backward, in storage type T on the same bf16 values.
template <typename T>
struct CpuRun {
  std::vector<T> o, dq, dk, dv;
  std::vector<float> lse;
  explicit CpuRun(const Inputs& in) {
    const auto conv = [](const std::vector<bf16>& x) { return std::vector<T>(x.begin(), x.end()); };
    const auto q = conv(in.q), k = conv(in.k), v = conv(in.v), dout = conv(in.dout);
    o.resize(q.size()), dq.resize(q.size()), dk.resize(k.size()), dv.resize(v.size());
    lse.resize(size_t(in.shape.b) * in.shape.h * in.shape.t);
    cpu::attention_fwd<T>(q.data(), k.data(), v.data(), o.data(), lse.data(), in.shape);
    cpu::attention_bwd<T>(q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data(), dq.data(), dk.data(), dv.data(), in.shape);
  }
};

struct KernelGrads {
  std::vector<bf16> dq, dk, dv;
};

// The kernel backward on the kernel forward's O and LSE.
KernelGrads kernel_backward(const Inputs& in, const std::vector<bf16>& o, const std::vector<float>& lse, bool deterministic) {
  KernelGrads g{test::poisoned<bf16>(in.q.size()), test::poisoned<bf16>(in.k.size()), test::poisoned<bf16>(in.v.size())};
  auto workspace = test::poisoned<float>(kernels::attention_backward_workspace_bytes(in.dims, deterministic) / sizeof(float) + 1);
  kernels::attention_backward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), dev(in.dout), dev(g.dq), dev(g.dk),
                              dev(g.dv), workspace.data(), in.dims, deterministic, nullptr, in.docs());
  return g;
}

constexpr kernels::ForwardTiles kForwardTiles[] = {kernels::ForwardTiles::k16RowsPerWarp, kernels::ForwardTiles::k32RowsPerWarp};
const char* name(kernels::ForwardTiles t) {
  return t == kernels::ForwardTiles::k16RowsPerWarp ? "forward: 16 rows per warp" : "forward: 32 rows per warp";
}

class AttentionKernel : public testing::TestWithParam<Case> {};

TEST_P(AttentionKernel, ForwardAndBackwardMatchCpuAttention) {
  const Inputs in(GetParam());
  const CpuRun<float> ref(in);
  const CpuRun<bf16> cpu(in);

  auto o = test::poisoned<bf16>(in.q.size());
  auto lse = test::poisoned<float>(ref.lse.size());
  for (const kernels::ForwardTiles tiles : kForwardTiles) {  // the default (32 rows per warp) last: the backward's input
    SCOPED_TRACE(name(tiles));
    o = test::poisoned<bf16>(in.q.size());
    lse = test::poisoned<float>(ref.lse.size());
    kernels::attention_forward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), in.dims, nullptr, tiles, in.docs());
    test::expect_no_worse_than_cpu_bf16("O", o, cpu.o, ref.o);
    // LSE is fp32 on every side; only exp/log approximations and summation order differ.
    EXPECT_LE(test::max_abs_diff(lse, ref.lse), 1e-5 * test::max_abs(ref.lse));
  }

  for (const bool deterministic : {false, true}) {
    SCOPED_TRACE(deterministic ? "deterministic dQ pass" : "atomic dQ");
    const KernelGrads g = kernel_backward(in, o, lse, deterministic);
    const double ds_term = test::max_abs(in.dout) * test::max_abs(in.v);
    test::expect_no_worse_than_cpu_bf16("dQ", g.dq, cpu.dq, ref.dq, ds_term * test::max_abs(in.k));
    test::expect_no_worse_than_cpu_bf16("dK", g.dk, cpu.dk, ref.dk, ds_term * test::max_abs(in.q));
    test::expect_no_worse_than_cpu_bf16("dV", g.dv, cpu.dv, ref.dv);
  }
}

std::vector<Case> issue_shapes() {
  std::vector<Case> cases;
  for (int d : {64, 128})
    for (auto [h, kv] : {std::pair{8, 8}, {8, 2}, {8, 1}})
      for (int t : {1, 17, 64, 130, 256})
        for (int b : {1, 2}) cases.push_back({b, t, h, kv, d});
  return cases;
}

std::string case_name(const testing::TestParamInfo<Case>& i) {
  const Case& c = i.param;
  return "b" + std::to_string(c.b) + "_t" + std::to_string(c.t) + "_h" + std::to_string(c.h) + "_kv" + std::to_string(c.kv) +
         "_d" + std::to_string(c.d) + (c.docs.empty() ? "" : "_docs_" + c.docs);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionKernel, testing::ValuesIn(issue_shapes()), case_name);

// Packed documents: the kernels against the CPU attention with the same document starts (itself
// checked against PyTorch's masked attention in tests/unit/test_ops.cpp).
std::vector<Case> document_shapes() {
  std::vector<Case> cases;
  for (const char* docs : {"len1", "edges", "tiny", "whole"})
    for (int d : {64, 128})
      for (auto [h, kv] : {std::pair{8, 2}, {4, 1}}) cases.push_back({2, 130, h, kv, d, docs});
  for (int d : {64, 128}) cases.push_back({2, 256, 4, 2, d, "edges"});
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Documents, AttentionKernel, testing::ValuesIn(document_shapes()), case_name);

// Tiles wholly before a query tile's documents are skipped, not masked: with a boundary at 128
// (every tile's edge), the second document's results are bit-identical to the kernels run on that
// document alone even when the first document's keys and values are NaN (a masked tile would
// still multiply them by 0), and the first document's dK, dV likewise with NaN queries and
// output gradients in the second.
TEST(AttentionKernelDocuments, TilesBeforeTheDocumentAreSkippedNotMasked) {
  constexpr int T = 256, H = 4, KV = 2;
  for (int d : {64, 128}) {
    SCOPED_TRACE("d " + std::to_string(d));
    Inputs both(Case{1, T, H, KV, d});
    both.doc.assign(T, 0);
    std::fill(both.doc.begin() + 128, both.doc.end(), 128);
    const auto half = [&](const std::vector<bf16>& x, int heads, int part) {  // [1, T, heads, d] -> one document's rows
      const auto from = x.begin() + int64_t(part) * 128 * heads * d;
      return std::vector<bf16>(from, from + int64_t(128) * heads * d);
    };
    const auto nan_rows = [&](std::vector<bf16>& x, int heads, int part) {
      std::fill(x.begin() + int64_t(part) * 128 * heads * d, x.begin() + int64_t(part + 1) * 128 * heads * d, bf16(NAN));
    };
    for (int part : {1, 0}) {  // part: the document whose results are checked; the other is NaN where it must not be read
      SCOPED_TRACE(part == 1 ? "second document, the first's K and V NaN" : "first document's dK, dV, the second's Q and dO NaN");
      Inputs alone(Case{1, 128, H, KV, d});
      alone.q = half(both.q, H, part), alone.k = half(both.k, KV, part), alone.v = half(both.v, KV, part);
      alone.dout = half(both.dout, H, part);
      Inputs mixed(Case{1, T, H, KV, d});
      mixed.q = both.q, mixed.k = both.k, mixed.v = both.v, mixed.dout = both.dout, mixed.doc = both.doc;
      mixed.shape.doc_start = mixed.docs();
      if (part == 1) nan_rows(mixed.k, KV, 0), nan_rows(mixed.v, KV, 0);
      else nan_rows(mixed.q, H, 1), nan_rows(mixed.dout, H, 1);
      for (const kernels::ForwardTiles tiles : kForwardTiles)
        for (const bool deterministic : {false, true}) {
          const auto run = [&](const Inputs& in) {
            auto o = test::poisoned<bf16>(in.q.size());
            auto lse = test::poisoned<float>(size_t(H) * in.dims.t);
            kernels::attention_forward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), in.dims, nullptr, tiles, in.docs());
            return std::pair{o, kernel_backward(in, o, lse, deterministic)};
          };
          const auto [o_alone, g_alone] = run(alone);
          const auto [o_mixed, g_mixed] = run(mixed);
          if (part == 1) {
            EXPECT_EQ(half(o_mixed, H, 1), o_alone);
            EXPECT_EQ(half(g_mixed.dq, H, 1), g_alone.dq) << (deterministic ? "deterministic" : "atomic");
          } else {
            EXPECT_EQ(half(g_mixed.dk, KV, 0), g_alone.dk) << (deterministic ? "deterministic" : "atomic");
            EXPECT_EQ(half(g_mixed.dv, KV, 0), g_alone.dv);
          }
        }
    }
  }
}

// Blocks of a longer sequence (context parallelism's ring): queries at global positions
// q_off.., keys at k_off.., the chunk pairs the ring meets (the diagonal, keys wholly before,
// keys wholly after: O = 0, LSE = -inf, no gradient), keys of another length, and documents whose
// starts are global. The kernels against the CPU attention on the same block (itself checked
// against the whole sequence in tests/parallel/test_context_parallel.cpp).
struct BlockCase {
  int t, tk, q_off, k_off, h, kv, d;
  std::string docs;
};
class AttentionKernelBlock : public testing::TestWithParam<BlockCase> {};

TEST_P(AttentionKernelBlock, MatchesCpuAttentionOnTheBlock) {
  const BlockCase c = GetParam();
  const auto q = random_bf16(size_t(c.t) * c.h * c.d, 21, 1.5f), dout = random_bf16(size_t(c.t) * c.h * c.d, 24, 1.0f);
  const auto k = random_bf16(size_t(c.tk) * c.kv * c.d, 22, 1.5f), v = random_bf16(size_t(c.tk) * c.kv * c.d, 23, 1.0f);
  std::vector<int32_t> doc;
  if (!c.docs.empty()) {  // the queries' rows of a whole sequence's document starts
    const std::vector<int32_t> all = doc_starts(c.docs, 1, c.q_off + c.t);
    doc.assign(all.begin() + c.q_off, all.end());
  }
  cpu::AttentionShape shape{1, c.t, c.h, c.kv, c.d};
  shape.block_q = shape.block_k = 64, shape.doc_start = doc.empty() ? nullptr : doc.data();
  shape.tk = c.tk, shape.q_offset = c.q_off, shape.k_offset = c.k_off;
  const kernels::AttentionDims dims{1, c.t, c.h, c.kv, c.d, c.tk, c.q_off, c.k_off};
  // fp32 and bf16 CPU runs; the LSE each backward takes: its forward's, or 0 where a row saw nothing.
  const auto cpu_run = [&](auto zero) {
    using T = decltype(zero);
    const std::vector<T> qt(q.begin(), q.end()), kt(k.begin(), k.end()), vt(v.begin(), v.end()), dt(dout.begin(), dout.end());
    std::vector<T> o(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<float> lse(size_t(c.h) * c.t);
    cpu::attention_fwd<T>(qt.data(), kt.data(), vt.data(), o.data(), lse.data(), shape);
    std::vector<float> lse_b = lse;
    for (float& x : lse_b) x = std::isinf(x) ? 0.f : x;
    cpu::attention_bwd<T>(qt.data(), kt.data(), vt.data(), o.data(), lse_b.data(), dt.data(), dq.data(), dk.data(), dv.data(), shape);
    return std::tuple{o, lse, dq, dk, dv};
  };
  const auto [ro, rlse, rdq, rdk, rdv] = cpu_run(0.f);
  const auto [co, clse, cdq, cdk, cdv] = cpu_run(bf16(0.f));
  for (const kernels::ForwardTiles tiles : kForwardTiles) {
    SCOPED_TRACE(name(tiles));
    auto o = test::poisoned<bf16>(q.size());
    auto lse = test::poisoned<float>(rlse.size());
    kernels::attention_forward(dev(q), dev(k), dev(v), dev(o), lse.data(), dims, nullptr, tiles, doc.empty() ? nullptr : doc.data());
    test::expect_no_worse_than_cpu_bf16("O", o, co, ro);
    for (size_t i = 0; i < lse.size(); ++i) {
      if (std::isinf(rlse[i])) {
        EXPECT_EQ(lse[i], rlse[i]) << "a row that sees no key: LSE -inf, row " << i;
      } else {
        EXPECT_NEAR(lse[i], rlse[i], 1e-5 * (1 + std::abs(rlse[i]))) << i;
      }
    }
    if (tiles != kernels::ForwardTiles::k32RowsPerWarp) continue;
    for (float& x : lse) x = std::isinf(x) ? 0.f : x;
    for (const bool deterministic : {false, true}) {
      SCOPED_TRACE(deterministic ? "deterministic dQ pass" : "atomic dQ");
      auto dq = test::poisoned<bf16>(q.size()), dk = test::poisoned<bf16>(k.size()), dv = test::poisoned<bf16>(v.size());
      auto workspace = test::poisoned<float>(kernels::attention_backward_workspace_bytes(dims, deterministic) / sizeof(float) + 1);
      kernels::attention_backward(dev(q), dev(k), dev(v), dev(o), lse.data(), dev(dout), dev(dq), dev(dk), dev(dv), workspace.data(), dims,
                                  deterministic, nullptr, doc.empty() ? nullptr : doc.data());
      const double ds_term = test::max_abs(dout) * test::max_abs(v);
      test::expect_no_worse_than_cpu_bf16("dQ", dq, cdq, rdq, ds_term * test::max_abs(k));
      test::expect_no_worse_than_cpu_bf16("dK", dk, cdk, rdk, ds_term * test::max_abs(q));
      test::expect_no_worse_than_cpu_bf16("dV", dv, cdv, rdv);
    }
  }
}

std::vector<BlockCase> block_cases() {
  std::vector<BlockCase> out;
  for (int d : {64, 128}) {
    out.push_back({128, 128, 256, 256, 4, 2, d, ""});      // the diagonal pair of a ring step
    out.push_back({128, 128, 384, 128, 4, 2, d, ""});      // keys wholly before the queries
    out.push_back({128, 128, 128, 384, 4, 2, d, ""});      // keys wholly after: nothing visible
    out.push_back({96, 130, 200, 130, 4, 1, d, ""});       // keys of another length, crossing the diagonal
    out.push_back({128, 128, 384, 128, 4, 2, d, "edges"});  // documents across chunks (global starts)
    out.push_back({128, 128, 256, 256, 8, 2, d, "tiny"});
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(Blocks, AttentionKernelBlock, testing::ValuesIn(block_cases()), [](const testing::TestParamInfo<BlockCase>& i) {
  const BlockCase& c = i.param;
  return "q" + std::to_string(c.t) + "at" + std::to_string(c.q_off) + "_k" + std::to_string(c.tk) + "at" + std::to_string(c.k_off) +
         "_h" + std::to_string(c.h) + "_kv" + std::to_string(c.kv) + "_d" + std::to_string(c.d) + (c.docs.empty() ? "" : "_docs_" + c.docs);
});

// Generation's decode kernel: the last position's query against all tk keys is the last row of
// causal attention over the tk positions, so the CPU attention's last row (fp32 and bf16) is the
// reference. Key counts around the kernel's 128-key tiles; GQA groups; d = 64 and 128.
class AttentionDecodeKernel : public testing::TestWithParam<Case> {};

TEST_P(AttentionDecodeKernel, MatchesTheLastRowOfCpuAttention) {
  const Case c = GetParam();
  const Inputs in(c);
  const CpuRun<float> ref(in);
  const CpuRun<bf16> cpu(in);
  const auto last_rows = [&](const auto& x) {  // [B, T, H, D] -> [B, 1, H, D] at T - 1
    std::vector<typename std::decay_t<decltype(x)>::value_type> out;
    for (int b = 0; b < c.b; ++b) {
      const auto from = x.begin() + ((int64_t(b) * c.t + c.t - 1) * c.h) * c.d;
      out.insert(out.end(), from, from + int64_t(c.h) * c.d);
    }
    return out;
  };
  const std::vector<bf16> q = last_rows(in.q);
  auto o = test::poisoned<bf16>(q.size());
  kernels::attention_decode(dev(q), dev(in.k), dev(in.v), dev(o), c.b, c.t, c.h, c.kv, c.d, nullptr);
  test::expect_no_worse_than_cpu_bf16("O", o, last_rows(cpu.o), last_rows(ref.o));
  // The CPU decode op itself: fp32 against the tiled attention's last row (summation order only),
  // bf16 within the same bound as the kernel.
  std::vector<float> q32(q.begin(), q.end()), o32(q.size());
  const std::vector<float> k32(in.k.begin(), in.k.end()), v32(in.v.begin(), in.v.end());
  cpu::attention_decode_fwd<float>(q32.data(), k32.data(), v32.data(), o32.data(), c.b, c.t, c.h, c.kv, c.d);
  EXPECT_LE(test::max_abs_diff(o32, last_rows(ref.o)), 1e-5 * test::max_abs(ref.o));
  std::vector<bf16> ob(q.size());
  cpu::attention_decode_fwd<bf16>(q.data(), in.k.data(), in.v.data(), ob.data(), c.b, c.t, c.h, c.kv, c.d);
  test::expect_no_worse_than_cpu_bf16("CPU decode O", ob, last_rows(cpu.o), last_rows(ref.o));
}

std::vector<Case> decode_shapes() {
  std::vector<Case> cases;
  for (int d : {64, 128})
    for (auto [h, kv] : {std::pair{8, 8}, {8, 2}, {8, 1}})
      for (int t : {1, 5, 128, 129, 300}) cases.push_back({t == 129 ? 2 : 1, t, h, kv, d});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Decode, AttentionDecodeKernel, testing::ValuesIn(decode_shapes()), case_name);

// The deterministic backward gives the same bits whatever order the blocks run in. The control:
// the atomic path's fp32 dQ accumulator (in its workspace) does change with the order, so the
// reversed order does expose order-dependent sums.
TEST(AttentionKernelDeterminism, DeterministicBackwardIgnoresBlockOrder) {
  const Inputs in(Case{1, 256, 4, 2, 64});
  auto o = test::poisoned<bf16>(in.q.size());
  auto lse = test::poisoned<float>(size_t(4) * 256);
  kernels::attention_forward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), in.dims, nullptr);
  std::vector<KernelGrads> runs;
  std::vector<std::vector<float>> accumulators;
  for (const bool reverse : {false, true}) {
    emu::set_reverse_block_order(reverse);
    runs.push_back(kernel_backward(in, o, lse, true));
    auto workspace = test::poisoned<float>(kernels::attention_backward_workspace_bytes(in.dims, false) / sizeof(float) + 1);
    auto dq = test::poisoned<bf16>(in.q.size()), dk = test::poisoned<bf16>(in.k.size()), dv = test::poisoned<bf16>(in.v.size());
    kernels::attention_backward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), dev(in.dout), dev(dq), dev(dk),
                                dev(dv), workspace.data(), in.dims, false, nullptr);
    accumulators.push_back(std::move(workspace));
  }
  emu::set_reverse_block_order(false);
  EXPECT_NE(accumulators[0], accumulators[1]) << "the control: atomics from several blocks depend on their order";
  EXPECT_EQ(runs[0].dq, runs[1].dq);
  EXPECT_EQ(runs[0].dk, runs[1].dk);
  EXPECT_EQ(runs[0].dv, runs[1].dv);
}

struct KernelRun {
  std::vector<bf16> o;
  std::vector<float> lse;
  KernelGrads g;
};

KernelRun kernel_run(const Inputs& in, bool deterministic, kernels::ForwardTiles tiles) {
  KernelRun r{test::poisoned<bf16>(in.q.size()), test::poisoned<float>(size_t(in.dims.b) * in.dims.h * in.dims.t), {}};
  kernels::attention_forward(dev(in.q), dev(in.k), dev(in.v), dev(r.o), r.lse.data(), in.dims, nullptr, tiles);
  r.g = kernel_backward(in, r.o, r.lse, deterministic);
  return r;
}

// The swizzled tiles keep every ldmatrix of the forward and both backward kernels free of shared-
// memory bank conflicts, as the emulator counts them from the row addresses (the hardware's rule,
// not a timing). The control: the emulator's own self-test sees conflicts in unswizzled rows.
TEST(AttentionKernelSharedMemory, LdmatrixLoadsHaveNoBankConflicts) {
  for (const int d : {64, 128})
    for (const bool deterministic : {false, true}) {
      // The 16-rows-per-warp forward with the atomic backward, the 32 with the deterministic one.
      const auto tiles = kForwardTiles[deterministic];
      emu::reset_smem_stats();
      kernel_run(Inputs(Case{1, 130, 4, 2, d}), deterministic, tiles);
      const emu::SmemStats s = emu::smem_stats();
      EXPECT_GT(s.ldmatrix_phases, 1000u) << "d" << d;
      EXPECT_EQ(s.ldmatrix_extra_wavefronts, 0u) << "d" << d << (deterministic ? " deterministic" : "") << ", " << name(tiles)
                                                 << ": of " << s.ldmatrix_phases << " ldmatrix phases";
    }
}

// The default forward's two m-tiles per warp share every K and V fragment they load from shared
// memory, which is what it is for. The emulator counts ldmatrix phases (128 bytes each); the bytes
// follow from the tile plans, per warp, at T = 1024 causal, 4 warps per CTA:
//  16 rows per warp: 64 x 64 steps, 1 + 2 + ... + 16 = 136 over the 16 query blocks; per step the
//    warp reads K and V (2 x 64 x d x 2 bytes), and Q once (16 x d x 2) into registers.
//  32 rows per warp, d = 64: 128 x 64 steps, 2 + 4 + ... + 16 = 72 over the 8 blocks, the same K and
//    V bytes per step for twice the rows; Q (32 x d x 2) once.
//  32 rows per warp, d = 128: 128 x 32 steps (O leaves no registers for Q), 4 + 8 + ... + 32 = 144;
//    per step K and V (2 x 32 x d x 2) and Q again (32 x d x 2).
// Loading the fragments once per m-tile instead would double the K and V bytes of the 32-row plans.
TEST(AttentionKernelSharedMemory, TheDefaultForwardSharesEachFragmentOverTwoRowTiles) {
  for (const int d : {64, 128}) {
    const Inputs in(Case{1, 1024, 1, 1, d});
    std::vector<double> bytes;
    for (const kernels::ForwardTiles tiles : kForwardTiles) {
      auto o = test::poisoned<bf16>(in.q.size());
      auto lse = test::poisoned<float>(size_t(1024));
      emu::reset_smem_stats();
      kernels::attention_forward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), in.dims, nullptr, tiles);
      bytes.push_back(128.0 * static_cast<double>(emu::smem_stats().ldmatrix_phases));
    }
    const double warps16 = 16 * 4, warps32 = 8 * 4;
    const double expect16 = 136 * 4 * (2 * 64 * d * 2) + warps16 * 16 * d * 2;
    const double expect32 = d == 64 ? 72 * 4 * (2 * 64 * d * 2) + warps32 * 32 * d * 2 : 144 * 4 * (2 * 32 * d * 2 + 32 * d * 2);
    std::printf("d=%d: ldmatrix bytes, 32 / 16 rows per warp: %.0f / %.0f = %.3f\n", d, bytes[1], bytes[0], bytes[1] / bytes[0]);
    EXPECT_EQ(bytes[0], expect16) << "d" << d;
    EXPECT_EQ(bytes[1], expect32) << "d" << d;
  }
}

// A correct pipeline cannot tell when its cp.async copies land: as late as the wait (the default)
// and at issue give the same bits. A missing wait fails the first; an early restage of a buffer
// still being read, the second.
TEST(AttentionKernelAsyncCopies, SameBitsWhenCopiesLandAtIssueOrAtTheWait) {
  for (const Case& c : {Case{1, 130, 8, 2, 64}, Case{2, 77, 4, 1, 128}})
    for (const kernels::ForwardTiles tiles : kForwardTiles) {
      SCOPED_TRACE(name(tiles));
      const Inputs in(c);
      const auto run_landing = [&](emu::CpAsyncLanding landing) {
        const emu::ScopedCpAsyncLanding pinned(landing);
        return kernel_run(in, true, tiles);
      };
      const KernelRun late = run_landing(emu::CpAsyncLanding::AtWait);
      const KernelRun early = run_landing(emu::CpAsyncLanding::AtIssue);
      EXPECT_EQ(0, std::memcmp(late.o.data(), early.o.data(), late.o.size() * sizeof(bf16)));
      EXPECT_EQ(late.lse, early.lse);
      EXPECT_EQ(late.g.dq, early.g.dq);
      EXPECT_EQ(late.g.dk, early.g.dk);
      EXPECT_EQ(late.g.dv, early.g.dv);
      EXPECT_FALSE(std::isnan(static_cast<float>(late.g.dq[0])));
    }
}

TEST(AttentionKernelErrors, UnsupportedShapesAreRejected) {
  EXPECT_NE(kernels::attention_unsupported({1, 16, 8, 8, 96}).find("head_dim 96"), std::string::npos);
  EXPECT_NE(kernels::attention_unsupported({1, 16, 8, 3, 64}).find("multiple of n_kv_heads"), std::string::npos);
  EXPECT_EQ(kernels::attention_unsupported({1, 16, 8, 2, 128}), "");
}

}  // namespace
}  // namespace llamatron
