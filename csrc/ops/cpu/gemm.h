// Row-major GEMM: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] (+ C when accumulate).
// op(A) = A stored [m,k] (lda >= k), or with trans_a A stored [k,m] (lda >= m); likewise B.
#pragma once
#include <cstdint>
#include <string>

#include "llamatron/dtype.h"

namespace llamatron::cpu {

struct GemmArgs {
  DType ab_type = DType::F32;  // type of A and B
  DType c_type = DType::F32;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1.0f;
  bool accumulate = false;
};

void gemm(const GemmArgs& args);
std::string gemm_impl_name(const GemmArgs& args);  // which oneDNN kernel runs it (benchmarks, docs)

}  // namespace llamatron::cpu
