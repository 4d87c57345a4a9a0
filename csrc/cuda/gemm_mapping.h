// The one place the row-major GEMM contract (cpu::GemmArgs) becomes cuBLAS's column-major terms,
// kept free of cuBLAS types so a CPU test can execute it by BLAS's definition
// (tests/unit/test_device_gemm.cpp). A row-major X[r, c] with leading dimension ld is, byte for
// byte, the column-major [c, r] with the same ld. So row-major C[m, n] = op(A) op(B) is the
// column-major C^T[n, m] = op(B)^T op(A)^T: cuBLAS's first operand is B and its second is A, each
// with the transpose flag it has in row-major terms.
#pragma once
#include <cstdint>

#include "ops/cpu/gemm.h"

namespace llamatron::cuda {

struct ColumnMajorOperand {
  const void* data;
  int64_t rows, cols, ld;  // the stored matrix, column-major
  bool trans;              // cuBLAS's op: the product uses op(X) = trans ? X^T : X
};

// Column-major D[m, n] = alpha op(first)[m, k] op(second)[k, n] (+ D when accumulating), D = c.
struct ColumnMajorGemm {
  int64_t m, n, k;
  ColumnMajorOperand first, second;
  void* c;
  int64_t c_rows, c_cols, ldc;
};

inline ColumnMajorGemm to_column_major(const cpu::GemmArgs& g) {
  // B is stored row-major [k, n] ([n, k] with trans_b): column-major [n, k] ([k, n]); likewise A.
  const ColumnMajorOperand first{g.b, g.trans_b ? g.k : g.n, g.trans_b ? g.n : g.k, g.ldb, g.trans_b};
  const ColumnMajorOperand second{g.a, g.trans_a ? g.m : g.k, g.trans_a ? g.k : g.m, g.lda, g.trans_a};
  return {g.n, g.m, g.k, first, second, g.c, g.n, g.m, g.ldc};
}

}  // namespace llamatron::cuda
