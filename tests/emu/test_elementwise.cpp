// kernels/elementwise.cu (SwiGLU, RoPE, residual add, cast), run by the emulator, against the CPU
// ops. Both sides do the same fp32 math and round once to bf16, so results agree to one bf16
// rounding of the tensor's scale (exp differs in the last fp32 bits: libm vs the CPU's fast_exp).
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/elementwise.cuh"
#include "ops/cpu/cpu_ops.h"
#include "tests/emu/kernel_test_util.h"

namespace llamatron::test {
namespace {

TEST(SwiGluKernel, MatchesCpuReference) {
  for (auto [rows, f] : {std::pair{7, 13}, {33, 1408}, {1, 1}}) {
    const auto gate_up = random_bf16(static_cast<size_t>(rows) * 2 * f, 1, 3.0f), dy = random_bf16(static_cast<size_t>(rows) * f, 2, 1.0f);
    std::vector<bf16> y = test::poisoned<bf16>(rows * f), y_ref(rows * f), dgu = test::poisoned<bf16>(gate_up.size()),
                      dgu_ref(gate_up.size());
    cpu::swiglu_fwd<bf16>(gate_up.data(), y_ref.data(), rows, f);
    cpu::swiglu_bwd<bf16>(dy.data(), gate_up.data(), dgu_ref.data(), rows, f);
    kernels::swiglu_forward(dev(gate_up), dev(y), rows, f, nullptr);
    kernels::swiglu_backward(dev(dy), dev(gate_up), dev(dgu), rows, f, nullptr);
    EXPECT_LE(scaled_error(y, y_ref), kOneBf16Rounding) << rows << "x" << f;
    EXPECT_LE(scaled_error(dgu, dgu_ref), kOneBf16Rounding) << rows << "x" << f;
  }
}

TEST(RopeKernel, MatchesCpuReferenceForwardAndBackward) {
  struct Case {
    int b, t, h, d, offset;
  };
  for (const Case c : {Case{1, 1, 2, 64, 0}, Case{2, 17, 3, 64, 5}, Case{1, 33, 2, 128, 0}}) {
    const int max_pos = c.offset + c.t, half = c.d / 2;
    std::vector<float> cos(static_cast<size_t>(max_pos) * half), sin(cos.size());
    cpu::rope_table(cos.data(), sin.data(), max_pos, c.d, 10000.0);
    const auto x = random_bf16(static_cast<size_t>(c.b) * c.t * c.h * c.d, 3, 1.0f);
    std::vector<bf16> ours = x, ref = x;
    cpu::rope_fwd<bf16>(ref.data(), cos.data(), sin.data(), c.b, c.t, c.h, c.d, c.offset);
    kernels::rope_forward(dev(ours), cos.data(), sin.data(), c.b, c.t, c.h, c.d, c.offset, nullptr);
    EXPECT_LE(scaled_error(ours, ref), kOneBf16Rounding);
    cpu::rope_bwd<bf16>(ref.data(), cos.data(), sin.data(), c.b, c.t, c.h, c.d, c.offset);
    kernels::rope_backward(dev(ours), cos.data(), sin.data(), c.b, c.t, c.h, c.d, c.offset, nullptr);
    EXPECT_LE(scaled_error(ours, ref), 2 * kOneBf16Rounding);  // two roundings each side
    // Without tables: fp32 angles (error ~ pos * 2^-24, far below a bf16 rounding at these positions).
    std::vector<bf16> computed = x, table_ref = x;
    cpu::rope_fwd<bf16>(table_ref.data(), cos.data(), sin.data(), c.b, c.t, c.h, c.d, c.offset);
    kernels::rope_forward_sincos(dev(computed), 10000.0f, c.b, c.t, c.h, c.d, c.offset, nullptr);
    EXPECT_LE(scaled_error(computed, table_ref), kOneBf16Rounding);
  }
}

// Packed documents' position ids (positions restart after each eod): per-row positions against the
// CPU rotation with the same ids (itself checked against PyTorch in tests/unit/test_ops.cpp).
TEST(RopeKernel, PositionIdsMatchCpuReference) {
  const int b = 2, t = 37, h = 3, d = 64, half = d / 2;
  std::vector<int32_t> positions;
  for (int row = 0; row < b; ++row)
    for (int i = 0, start = 0; i < t; ++i) {
      if (i > 0 && (i - 1) % (5 + 6 * row) == 0) start = i;  // a document ends every 5 (row 0) or 11 (row 1) positions
      positions.push_back(i - start);
    }
  std::vector<float> cos(static_cast<size_t>(t) * half), sin(cos.size());
  cpu::rope_table(cos.data(), sin.data(), t, d, 10000.0);
  const auto x = random_bf16(static_cast<size_t>(b) * t * h * d, 7, 1.0f);
  std::vector<bf16> ours = x, ref = x;
  cpu::rope_fwd<bf16>(ref.data(), cos.data(), sin.data(), b, t, h, d, 0, positions.data());
  kernels::rope_forward(dev(ours), cos.data(), sin.data(), b, t, h, d, 0, nullptr, positions.data());
  EXPECT_LE(scaled_error(ours, ref), kOneBf16Rounding);
  std::vector<bf16> plain = x;  // the control: the ids change the result
  cpu::rope_fwd<bf16>(plain.data(), cos.data(), sin.data(), b, t, h, d, 0);
  EXPECT_GT(scaled_error(plain, ref), 0.1);
  cpu::rope_bwd<bf16>(ref.data(), cos.data(), sin.data(), b, t, h, d, 0, positions.data());
  kernels::rope_backward(dev(ours), cos.data(), sin.data(), b, t, h, d, 0, nullptr, positions.data());
  EXPECT_LE(scaled_error(ours, ref), 2 * kOneBf16Rounding);
}

TEST(ResidualAndCastKernels, MatchCpuReference) {
  const size_t n = 1001;
  const auto a = random_bf16(n, 4, 1.0f), b = random_bf16(n, 5, 1.0f);
  std::vector<bf16> ours = a, ref = a;
  cpu::add_inplace<bf16>(ref.data(), b.data(), n);
  kernels::add_inplace(dev(ours), dev(b), n, nullptr);
  EXPECT_EQ(0, std::memcmp(ours.data(), ref.data(), n * sizeof(bf16)));  // one fp32 add, one rounding: exact
  // From an odd offset the buffers are not 16-byte aligned: the scalar path must give the same.
  cpu::add_inplace<bf16>(ref.data() + 1, b.data() + 1, n - 1);
  kernels::add_inplace(dev(ours) + 1, dev(b) + 1, n - 1, nullptr);
  EXPECT_EQ(0, std::memcmp(ours.data(), ref.data(), n * sizeof(bf16)));
  const auto f = random_f32(n, 6, 10.0f);
  std::vector<bf16> cast = test::poisoned<bf16>(n), cast_ref(n);
  cpu::convert<bf16>(f.data(), cast_ref.data(), n);
  kernels::cast_to_bf16(f.data(), dev(cast), n, nullptr);
  EXPECT_EQ(0, std::memcmp(cast.data(), cast_ref.data(), n * sizeof(bf16)));  // same round-to-nearest-even
  // bf16 -> fp32 is exact, on the 128-bit path and (from an odd offset) the scalar one.
  std::vector<float> wide(n, -1.f);
  kernels::cast_to_f32(dev(cast), wide.data(), n, nullptr);
  kernels::cast_to_f32(dev(cast) + 1, wide.data() + 1, n - 1, nullptr);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(wide[i], static_cast<float>(cast[i])) << i;
}

// The sequence-parallel block transpose is a copy: bit-exact against the CPU op, on the 128-bit
// path (k % 8 == 0, aligned) and the scalar one (odd k; an odd offset).
TEST(TransposeBlocksKernel, MatchesCpuReferenceBitExact) {
  struct Case {
    int64_t a, b, k, offset;
  };
  for (const Case c : {Case{2, 3, 64, 0}, Case{4, 2, 40, 0}, Case{3, 5, 7, 0}, Case{2, 2, 16, 1}, Case{1, 1, 9, 0}}) {
    const size_t n = static_cast<size_t>(c.a * c.b * c.k);
    const auto src = random_bf16(n + c.offset, 7, 1.0f);
    std::vector<bf16> ours = test::poisoned<bf16>(n + c.offset), ref(n);
    cpu::transpose_blocks(src.data() + c.offset, ref.data(), c.a, c.b, c.k * static_cast<int64_t>(sizeof(bf16)));
    kernels::transpose_blocks(dev(src) + c.offset, dev(ours) + c.offset, c.a, c.b, c.k, nullptr);
    EXPECT_EQ(0, std::memcmp(ours.data() + c.offset, ref.data(), n * sizeof(bf16))) << c.a << "x" << c.b << "x" << c.k;
  }
}

}  // namespace
}  // namespace llamatron::test
