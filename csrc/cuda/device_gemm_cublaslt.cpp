// cuBLASLt GEMMs. cuBLAS is column-major; gemm_mapping.h turns the row-major request into its
// terms (B first, A second; tested on the CPU by BLAS's definition). Descriptors and algorithms are
// cached per shape; one workspace is allocated once. cuBLASLt is opened (dlopen) when the first CUDA
// GEMM is made rather than linked: its static initialisers cost every llamatron command, the
// CPU-only ones too, about 0.2 s and 200 MB of memory (measured with `data dedup`).
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <filesystem>
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

// The cuBLASLt entry points used here, named as in cublasLt.h.
struct CublasLtApi {
#define LT_CUBLASLT_FUNCTIONS(X)                                                                                 \
  X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetStatusString) X(cublasLtMatmul) X(cublasLtMatmulAlgoGetHeuristic) \
  X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute)                       \
  X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute)     \
  X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy)
#define LT_DECLARE(name) decltype(&::name) name = nullptr;
  LT_CUBLASLT_FUNCTIONS(LT_DECLARE)
#undef LT_DECLARE
  std::string error;  // why it could not be opened; empty when every entry point is there
};

// The library by its soname (the loader's path, this binary's runpath), else next to the CUDA
// runtime this binary runs with.
const CublasLtApi& cublaslt() {
  static const CublasLtApi api = [] {
    CublasLtApi a;
    const std::string soname = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
    Dl_info cudart{};
    if (!lib && dladdr(reinterpret_cast<void*>(&cudaGetDeviceCount), &cudart) && cudart.dli_fname)
      lib = dlopen((std::filesystem::path(cudart.dli_fname).parent_path() / soname).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return a.error = "cannot open " + soname + " (" + dlerror() + "): install cuBLAS or add its directory to LD_LIBRARY_PATH", a;
#define LT_RESOLVE(name)                                                \
  a.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, #name));      \
  if (!a.name && a.error.empty()) a.error = soname + " has no " #name ": a cuBLAS older than the one llamatron was built with";
    LT_CUBLASLT_FUNCTIONS(LT_RESOLVE)
#undef LT_RESOLVE
    return a;
  }();
  return api;
}

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_failed_call(call, cublaslt().cublasLtGetStatusString(status), file, line);
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
    LT_CUBLAS(cublaslt().cublasLtCreate(&handle_));
    workspace_ = rt_.malloc(kWorkspaceBytes);
  }
  ~CublasLtGemm() override {
    for (auto& [key, p] : plans_) {
      cublaslt().cublasLtMatmulDescDestroy(p.op);
      cublaslt().cublasLtMatrixLayoutDestroy(p.a);
      cublaslt().cublasLtMatrixLayoutDestroy(p.b);
      cublaslt().cublasLtMatrixLayoutDestroy(p.c);
    }
    rt_.free(workspace_);
    cublaslt().cublasLtDestroy(handle_);
  }

  void run(const cpu::GemmArgs& g, rt::Stream stream) override {
    if (g.m == 0 || g.n == 0 || g.k == 0) return;
    const Plan& p = plan(g);
    const float alpha = g.alpha, beta = g.accumulate ? 1.0f : 0.0f;
    const ColumnMajorGemm cm = to_column_major(g);
    LT_CUBLAS(cublaslt().cublasLtMatmul(handle_, p.op, &alpha, cm.first.data, p.a, cm.second.data, p.b, &beta, cm.c, p.c, cm.c, p.c,
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
    LT_CUBLAS(cublaslt().cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const ColumnMajorGemm cm = to_column_major(g);
    const cublasOperation_t op1 = cm.first.trans ? CUBLAS_OP_T : CUBLAS_OP_N, op2 = cm.second.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CUBLAS(cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op1, sizeof(op1)));
    LT_CUBLAS(cublaslt().cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op2, sizeof(op2)));
    const auto layout = [&](cublasLtMatrixLayout_t* l, DType t, int64_t rows, int64_t cols, int64_t ld) {
      LT_CUBLAS(cublaslt().cublasLtMatrixLayoutCreate(l, cuda_type(t), static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
    };
    layout(&p.a, g.ab_type, cm.first.rows, cm.first.cols, cm.first.ld);
    layout(&p.b, g.ab_type, cm.second.rows, cm.second.cols, cm.second.ld);
    layout(&p.c, g.c_type, cm.c_rows, cm.c_cols, cm.ldc);
    cublasLtMatmulPreference_t pref;
    LT_CUBLAS(cublaslt().cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = kWorkspaceBytes;
    LT_CUBLAS(cublaslt().cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    LT_CUBLAS(cublaslt().cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found));
    cublaslt().cublasLtMatmulPreferenceDestroy(pref);
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
  if (!cublaslt().error.empty()) {
    if (why) *why = cublaslt().error;
    return nullptr;
  }
  return std::make_unique<CublasLtGemm>(runtime);
}

std::string cublaslt_missing() { return cublaslt().error; }

}  // namespace llamatron::cuda
