// The device GEMM contract on the emulated runtime (the GEMM of the emulated CUDA backend):
// row-major, transposes as flags, accumulation, checked against a naive triple loop on small
// integers (exact in bf16 and fp32). cuBLASLt needs a GPU: here it must say why it is unavailable.
#include <gtest/gtest.h>

#include "cuda/device_gemm.h"

namespace llamatron::cuda {
namespace {

TEST(DeviceGemm, EmulatedMatchesNaiveProductWithTransposesAndAccumulation) {
  auto rt = rt::make_emulated_runtime();
  auto gemm = make_emulated_gemm();
  const int64_t m = 5, n = 3, k = 7;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto* a = static_cast<bf16*>(rt->malloc(m * k * 2));
      auto* b = static_cast<bf16*>(rt->malloc(k * n * 2));
      auto* c = static_cast<float*>(rt->malloc(m * n * 4));
      auto A = [&](int64_t i, int64_t p) { return static_cast<float>((i * 3 + p) % 5 - 2); };  // op(A)[i][p]
      auto B = [&](int64_t p, int64_t j) { return static_cast<float>((p * 2 + j) % 7 - 3); };  // op(B)[p][j]
      for (int64_t i = 0; i < m; ++i)
        for (int64_t p = 0; p < k; ++p) (ta ? a[p * m + i] : a[i * k + p]) = bf16(A(i, p));
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) (tb ? b[j * k + p] : b[p * n + j]) = bf16(B(p, j));
      for (int64_t i = 0; i < m * n; ++i) c[i] = 1.0f;
      cpu::GemmArgs g{DType::BF16, DType::F32, ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c, n, 1.0f, true};
      gemm->run(g, nullptr);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          float ref = 1.0f;
          for (int64_t p = 0; p < k; ++p) ref += A(i, p) * B(p, j);
          ASSERT_EQ(c[i * n + j], ref) << "ta=" << ta << " tb=" << tb << " at " << i << "," << j;
        }
      rt->free(a), rt->free(b), rt->free(c);
    }
}

TEST(DeviceGemm, CublasLtSaysWhyItIsUnavailableOnTheEmulatedRuntime) {
  auto rt = rt::make_emulated_runtime();
  std::string why;
  EXPECT_EQ(make_cublaslt_gemm(*rt, &why), nullptr);
  EXPECT_FALSE(why.empty());
}

}  // namespace
}  // namespace llamatron::cuda
