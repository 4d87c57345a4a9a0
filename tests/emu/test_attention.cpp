// kernels/attention.cu, run by the emulator, against the CPU attention (csrc/ops/cpu/attention.cpp,
// itself checked against PyTorch autograd). Tolerance, as FlashAttention's own tests derive it: on
// the same bf16 inputs, the kernel's error against the CPU attention computed in fp32 (no bf16
// rounding of P, dS or outputs) may be at most twice the error of the CPU's bf16 attention, which
// rounds the same quantities, plus one bf16 rounding (2^-9) of the tensor's scale. dQ and dK come
// from dS = P (dP - D), which cancels exactly where one key is visible (t = 1): there the fp32
// sums leave a few ulps (16 eps) of one product term, |dO| |V| |K or Q|, on both sides.
#include <gtest/gtest.h>

#include <cfloat>
#include <cstring>
#include <string>
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
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.b << "x" << c.t << " h" << c.h << " kv" << c.kv << " d" << c.d; }
};

template <typename A>
double max_abs_diff(const std::vector<A>& a, const std::vector<float>& ref) {
  double m = 0;
  for (size_t i = 0; i < ref.size(); ++i) m = std::max(m, std::abs(static_cast<double>(static_cast<float>(a[i])) - ref[i]));
  return m;
}

template <typename T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, static_cast<double>(std::abs(static_cast<float>(x))));
  return m;
}

// The kernel's result is within the derived bound of the fp32 reference.
template <typename K, typename C>
void expect_close(const char* what, const std::vector<K>& kernel, const std::vector<C>& cpu_bf16, const std::vector<float>& ref,
                  double cancelling_term = 0) {
  const double kernel_err = max_abs_diff(kernel, ref), cpu_err = max_abs_diff(cpu_bf16, ref);
  const double bound = 2 * cpu_err + std::ldexp(max_abs(ref), -9) + 16 * FLT_EPSILON * cancelling_term;
  EXPECT_LE(kernel_err, bound) << what << ": kernel error " << kernel_err << ", CPU bf16 error " << cpu_err;
}

struct Inputs {
  cpu::AttentionShape shape;
  kernels::AttentionDims dims;
  std::vector<bf16> q, k, v, dout;
  explicit Inputs(const Case& c)
      : shape{c.b, c.t, c.h, c.kv, c.d},
        dims{c.b, c.t, c.h, c.kv, c.d},
        q(random_bf16(size_t(c.b) * c.t * c.h * c.d, 11, 1.5f)),
        k(random_bf16(size_t(c.b) * c.t * c.kv * c.d, 12, 1.5f)),
        v(random_bf16(size_t(c.b) * c.t * c.kv * c.d, 13, 1.0f)),
        dout(random_bf16(size_t(c.b) * c.t * c.h * c.d, 14, 1.0f)) {}
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
  KernelGrads g{std::vector<bf16>(in.q.size()), std::vector<bf16>(in.k.size()), std::vector<bf16>(in.v.size())};
  std::vector<float> workspace(kernels::attention_backward_workspace_bytes(in.dims, deterministic) / sizeof(float) + 1);
  kernels::attention_backward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), dev(in.dout), dev(g.dq), dev(g.dk),
                              dev(g.dv), workspace.data(), in.dims, deterministic, nullptr);
  return g;
}

class AttentionKernel : public testing::TestWithParam<Case> {};

TEST_P(AttentionKernel, ForwardAndBackwardMatchCpuAttention) {
  const Inputs in(GetParam());
  const CpuRun<float> ref(in);
  const CpuRun<bf16> cpu(in);

  std::vector<bf16> o(in.q.size());
  std::vector<float> lse(ref.lse.size());
  kernels::attention_forward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), in.dims, nullptr);
  expect_close("O", o, cpu.o, ref.o);
  // LSE is fp32 on every side; only exp/log approximations and summation order differ.
  EXPECT_LE(max_abs_diff(lse, ref.lse), 1e-5 * max_abs(ref.lse));

  for (const bool deterministic : {false, true}) {
    SCOPED_TRACE(deterministic ? "deterministic dQ pass" : "atomic dQ");
    const KernelGrads g = kernel_backward(in, o, lse, deterministic);
    const double ds_term = max_abs(in.dout) * max_abs(in.v);
    expect_close("dQ", g.dq, cpu.dq, ref.dq, ds_term * max_abs(in.k));
    expect_close("dK", g.dk, cpu.dk, ref.dk, ds_term * max_abs(in.q));
    expect_close("dV", g.dv, cpu.dv, ref.dv);
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

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionKernel, testing::ValuesIn(issue_shapes()), [](const testing::TestParamInfo<Case>& i) {
  const Case& c = i.param;
  return "b" + std::to_string(c.b) + "_t" + std::to_string(c.t) + "_h" + std::to_string(c.h) + "_kv" + std::to_string(c.kv) +
         "_d" + std::to_string(c.d);
});

// The deterministic backward gives the same bits whatever order the blocks run in. The control:
// the atomic path's fp32 dQ accumulator (in its workspace) does change with the order, so the
// reversed order does expose order-dependent sums.
TEST(AttentionKernelDeterminism, DeterministicBackwardIgnoresBlockOrder) {
  const Inputs in(Case{1, 256, 4, 2, 64});
  std::vector<bf16> o(in.q.size());
  std::vector<float> lse(size_t(4) * 256);
  kernels::attention_forward(dev(in.q), dev(in.k), dev(in.v), dev(o), lse.data(), in.dims, nullptr);
  std::vector<KernelGrads> runs;
  std::vector<std::vector<float>> accumulators;
  for (const bool reverse : {false, true}) {
    emu::set_reverse_block_order(reverse);
    runs.push_back(kernel_backward(in, o, lse, true));
    std::vector<float> workspace(kernels::attention_backward_workspace_bytes(in.dims, false) / sizeof(float) + 1);
    std::vector<bf16> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
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

TEST(AttentionKernelErrors, UnsupportedShapesAreRejected) {
  EXPECT_NE(kernels::attention_unsupported({1, 16, 8, 8, 96}).find("head_dim 96"), std::string::npos);
  EXPECT_NE(kernels::attention_unsupported({1, 16, 8, 3, 64}).find("multiple of n_kv_heads"), std::string::npos);
  EXPECT_EQ(kernels::attention_unsupported({1, 16, 8, 2, 128}), "");
}

}  // namespace
}  // namespace llamatron
