// The device GEMM contract on the emulated runtime (the GEMM of the emulated CUDA backend):
// row-major, transposes as flags, accumulation, checked against a naive triple loop on small
// integers (exact in bf16 and fp32). cuBLASLt needs a GPU: here its row-major to column-major
// mapping runs by BLAS's definition instead, and it must say why it is unavailable.
#include <gtest/gtest.h>

#include <vector>

#include "cuda/device_gemm.h"
#include "cuda/gemm_mapping.h"

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

// cuBLAS(Lt)'s own definition, column-major: D[i, j] = alpha sum_p op(X1)[i, p] op(X2)[p, j] + beta D,
// with op(X)[i, j] = X[i + j ld] (or X[j + i ld] transposed), after the shape checks cuBLASLt
// makes (it answers CUBLAS_STATUS_INVALID_VALUE where these fail).
void blas_gemm(const ColumnMajorGemm& g, float alpha, float beta) {
  const auto op_shape_is = [](const ColumnMajorOperand& x, int64_t rows, int64_t cols) {
    EXPECT_EQ(x.trans ? x.cols : x.rows, rows);
    EXPECT_EQ(x.trans ? x.rows : x.cols, cols);
    EXPECT_GE(x.ld, x.rows) << "a column-major leading dimension below the row count";
  };
  op_shape_is(g.first, g.m, g.k);
  op_shape_is(g.second, g.k, g.n);
  EXPECT_EQ(g.c_rows, g.m);
  EXPECT_EQ(g.c_cols, g.n);
  EXPECT_GE(g.ldc, g.c_rows);
  const auto op = [](const ColumnMajorOperand& x, int64_t i, int64_t j) {
    const auto* d = static_cast<const float*>(x.data);
    return x.trans ? d[j + i * x.ld] : d[i + j * x.ld];
  };
  auto* c = static_cast<float*>(g.c);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      float acc = 0;
      for (int64_t p = 0; p < g.k; ++p) acc += op(g.first, i, p) * op(g.second, p, j);
      c[i + j * g.ldc] = alpha * acc + beta * c[i + j * g.ldc];
    }
}

// The row-major request handed to cuBLASLt (to_column_major, what device_gemm_cublaslt.cpp
// passes), executed by BLAS's definition, gives the row-major product: every transpose pair,
// padded leading dimensions, accumulation, alpha. Small integers: exact.
TEST(DeviceGemm, CublasLtMappingGivesTheRowMajorProduct) {
  const int64_t m = 5, n = 3, k = 7, pad = 2;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(testing::Message() << "ta=" << ta << " tb=" << tb << " accumulate=" << accumulate);
        const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        std::vector<float> a((ta ? k : m) * lda, 99.f), b((tb ? n : k) * ldb, 99.f), c(m * ldc, 1.f);
        auto A = [](int64_t i, int64_t p) { return static_cast<float>((i * 3 + p) % 5 - 2); };  // op(A)[i][p]
        auto B = [](int64_t p, int64_t j) { return static_cast<float>((p * 2 + j) % 7 - 3); };  // op(B)[p][j]
        for (int64_t i = 0; i < m; ++i)
          for (int64_t p = 0; p < k; ++p) (ta ? a[p * lda + i] : a[i * lda + p]) = A(i, p);
        for (int64_t p = 0; p < k; ++p)
          for (int64_t j = 0; j < n; ++j) (tb ? b[j * ldb + p] : b[p * ldb + j]) = B(p, j);
        const cpu::GemmArgs g{DType::F32, DType::F32, ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, 0.5f, accumulate};
        blas_gemm(to_column_major(g), g.alpha, accumulate ? 1.f : 0.f);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            float ref = 0;
            for (int64_t p = 0; p < k; ++p) ref += A(i, p) * B(p, j);
            ASSERT_EQ(c[i * ldc + j], 0.5f * ref + (accumulate ? 1.f : 0.f)) << i << "," << j;
          }
          for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], 1.f) << "the padding of row " << i << " was written";
        }
      }
}

TEST(DeviceGemm, CublasLtSaysWhyItIsUnavailableOnTheEmulatedRuntime) {
  auto rt = rt::make_emulated_runtime();
  std::string why;
  EXPECT_EQ(make_cublaslt_gemm(*rt, &why), nullptr);
  EXPECT_FALSE(why.empty());
}

#ifdef LLAMATRON_HAVE_CUDA
// cuBLASLt is opened at run time, not linked: a build with the toolkit must find it and every entry
// point it calls, GPU or not.
TEST(DeviceGemm, CublasLtOpensWithEveryEntryPoint) { EXPECT_EQ(cublaslt_missing(), ""); }
#endif

}  // namespace
}  // namespace llamatron::cuda
