// cuBLASLt GEMMs. cuBLAS is column-major; gemm_mapping.h turns the row-major request into its
// terms (B first, A second; tested on the CPU by BLAS's definition). Descriptors and algorithms are
// cached per shape; one workspace is allocated once.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <tuple>

#include "cuda/check.h"
#include "cuda/device_gemm.h"
#include "cuda/gemm_mapping.h"
#include "llamatron/errors.h"

#define LT_CUBLAS(call) ::llamatron::cuda::check_cublas((call), #call, __FILE__, __LINE__)

namespace llamatron::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_failed_call(call, cublasLtGetStatusString(status), file, line);
}

cudaDataType_t cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

class CublasLtGemm final : public DeviceGemm {
 public:
  explicit CublasLtGemm(rt::Runtime& runtime) : rt_(runtime) {
    LT_CUBLAS(cublasLtCreate(&handle_));
    workspace_ = rt_.malloc(kWorkspaceBytes);
  }
  ~CublasLtGemm() override {
    for (auto& [key, p] : plans_) {
      cublasLtMatmulDescDestroy(p.op);
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
    }
    rt_.free(workspace_);
    cublasLtDestroy(handle_);
  }

  void run(const cpu::GemmArgs& g, rt::Stream stream) override {
    if (g.m == 0 || g.n == 0 || g.k == 0) return;
    const Plan& p = plan(g);
    const float alpha = g.alpha, beta = g.accumulate ? 1.0f : 0.0f;
    const ColumnMajorGemm cm = to_column_major(g);
    LT_CUBLAS(cublasLtMatmul(handle_, p.op, &alpha, cm.first.data, p.a, cm.second.data, p.b, &beta, cm.c, p.c, cm.c, p.c,
                             &p.algo, workspace_, kWorkspaceBytes, static_cast<cudaStream_t>(stream)));
  }

 private:
  static constexpr size_t kWorkspaceBytes = 32u << 20;
  using Key = std::tuple<int, int, bool, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

  const Plan& plan(const cpu::GemmArgs& g) {
    const Key key{static_cast<int>(g.ab_type), static_cast<int>(g.c_type), g.trans_a, g.trans_b, g.accumulate, g.m, g.n, g.k,
                  g.lda, g.ldb, g.ldc};
    std::lock_guard<std::mutex> lock(mu_);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    Plan p;
    LT_CUBLAS(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const ColumnMajorGemm cm = to_column_major(g);
    const cublasOperation_t op1 = cm.first.trans ? CUBLAS_OP_T : CUBLAS_OP_N, op2 = cm.second.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CUBLAS(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op1, sizeof(op1)));
    LT_CUBLAS(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op2, sizeof(op2)));
    const auto layout = [&](cublasLtMatrixLayout_t* l, DType t, int64_t rows, int64_t cols, int64_t ld) {
      LT_CUBLAS(cublasLtMatrixLayoutCreate(l, cuda_type(t), static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
    };
    layout(&p.a, g.ab_type, cm.first.rows, cm.first.cols, cm.first.ld);
    layout(&p.b, g.ab_type, cm.second.rows, cm.second.cols, cm.second.ld);
    layout(&p.c, g.c_type, cm.c_rows, cm.c_cols, cm.ldc);
    cublasLtMatmulPreference_t pref;
    LT_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = kWorkspaceBytes;
    LT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    LT_CUBLAS(cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (found == 0) throw Error("cuBLASLt has no algorithm for a " + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k) + " GEMM");
    p.algo = result.algo;
    return plans_.emplace(key, p).first->second;
  }

  rt::Runtime& rt_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::mutex mu_;
  std::map<Key, Plan> plans_;
};

}  // namespace

std::unique_ptr<DeviceGemm> make_cublaslt_gemm(rt::Runtime& runtime, std::string* why) {
  if (runtime.name() != "cuda") {
    if (why) *why = "cuBLASLt needs the real CUDA runtime, not the " + runtime.name() + " one";
    return nullptr;
  }
  return std::make_unique<CublasLtGemm>(runtime);
}

}  // namespace llamatron::cuda
