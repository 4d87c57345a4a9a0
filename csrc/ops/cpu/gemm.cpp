// GEMM on the CPU through oneDNN's matmul primitive. bf16 operands accumulate in fp32 (AMX or
// AVX-512 BF16 where the CPU has them); fp32 operands use oneDNN's sgemm. Transposes are expressed
// as strides, so no operand is ever copied. Primitives are built once per shape and cached: their
// creation (JIT code generation) costs far more than a small matmul. oneDNN 2.x has no bf16 matmul
// on CPUs without AVX-512 (AVX2-only EPYCs, older Xeons): there bf16 operands are widened to fp32,
// exactly, and the fp32 result rounded back, so the numbers stay those of an fp32-accumulating GEMM.
#include "ops/cpu/gemm.h"

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "llamatron/errors.h"

namespace llamatron::cpu {
namespace {

dnnl::memory::data_type dnnl_type(DType t) {
  switch (t) {
    case DType::F32: return dnnl::memory::data_type::f32;
    case DType::BF16: return dnnl::memory::data_type::bf16;
    default: LT_CHECK(false, "gemm supports fp32 and bf16 only");
  }
  return dnnl::memory::data_type::undef;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

struct Key {
  DType ab, c;
  bool ta, tb, acc;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha;
  auto tie() const { return std::tie(ab, c, ta, tb, acc, m, n, k, lda, ldb, ldc, alpha); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

struct Cached {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, scratch;
  std::string impl;
  bool widen = false;  // bf16 operands/result go through fp32 copies (no bf16 matmul on this CPU)
};

// One matmul primitive for the key's shape, with A/B of type ab and C of type c_type.
Cached build(const Key& key, DType ab, DType c_type) {
  using dims = dnnl::memory::dims;
  const auto tab = dnnl_type(ab), tc = dnnl_type(c_type);
  dnnl::memory::desc a({key.m, key.k}, tab, key.ta ? dims{1, key.lda} : dims{key.lda, 1});
  dnnl::memory::desc b({key.k, key.n}, tab, key.tb ? dims{1, key.ldb} : dims{key.ldb, 1});
  dnnl::memory::desc c({key.m, key.n}, tc, dims{key.ldc, 1});
  dnnl::primitive_attr attr;
  // The attention tiles run GEMMs from several threads at once; oneDNN's own scratchpad is
  // shared per primitive (unless built for concurrent execution), so each call brings its own.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (key.alpha != 1.0f) attr.set_output_scales(0, {key.alpha});
  if (key.acc) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, cpu_engine());
  return Cached{dnnl::matmul(pd), a, b, c, pd.scratchpad_desc(), pd.impl_info_str()};
}

const Cached& lookup(const Key& key) {
  static std::mutex mu;
  static std::map<Key, Cached> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Cached made;
  try {
    made = build(key, key.ab, key.c);
  } catch (const dnnl::error& e) {
    const bool has_bf16 = key.ab == DType::BF16 || key.c == DType::BF16;
    if (!has_bf16 || e.status != dnnl_unimplemented) throw;
    made = build(key, DType::F32, DType::F32);
    made.widen = true;
    made.impl += " (bf16 widened to fp32: this CPU has no bf16 matmul)";
  }
  return cache.emplace(key, std::move(made)).first->second;
}

// A strided rows x cols matrix (leading dimension ld) between bf16 and fp32; the padding between
// rows is left alone, the strides stay the same.
void widen(const void* src, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& dst) {
  dst.resize(static_cast<size_t>((rows - 1) * ld + cols));
  const auto* s = static_cast<const bf16*>(src);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) dst[r * ld + j] = to_f32(s[r * ld + j]);
}

void narrow(const std::vector<float>& src, int64_t rows, int64_t cols, int64_t ld, void* dst) {
  auto* d = static_cast<bf16*>(dst);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) d[r * ld + j] = bf16(src[r * ld + j]);
}

void execute(const Cached& p, const void* a_ptr, const void* b_ptr, void* c_ptr) {
  dnnl::engine& eng = cpu_engine();
  thread_local dnnl::stream stream(eng);
  dnnl::memory a(p.a, eng, const_cast<void*>(a_ptr));
  dnnl::memory b(p.b, eng, const_cast<void*>(b_ptr));
  dnnl::memory c(p.c, eng, c_ptr);
  thread_local std::vector<char> scratch_buf;
  if (scratch_buf.size() < p.scratch.get_size()) scratch_buf.resize(p.scratch.get_size());
  dnnl::memory scratch(p.scratch, eng, scratch_buf.data());
  p.prim.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}, {DNNL_ARG_SCRATCHPAD, scratch}});
  stream.wait();
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  LT_CHECK(g.k > 0 || g.accumulate, "gemm with k = 0 must accumulate");
  if (g.k == 0) return;
  const Cached& p = lookup(Key{g.ab_type, g.c_type, g.trans_a, g.trans_b, g.accumulate, g.m, g.n, g.k,
                               g.lda, g.ldb, g.ldc, g.alpha});
  if (!p.widen) return execute(p, g.a, g.b, g.c);
  thread_local std::vector<float> fa, fb, fc;
  const void* a = g.a;
  const void* b = g.b;
  if (g.ab_type == DType::BF16) {
    widen(g.a, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, fa);
    widen(g.b, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, fb);
    a = fa.data();
    b = fb.data();
  }
  if (g.c_type != DType::BF16) return execute(p, a, b, g.c);
  if (g.accumulate) {
    widen(g.c, g.m, g.n, g.ldc, fc);
  } else {
    fc.assign(static_cast<size_t>((g.m - 1) * g.ldc + g.n), 0.0f);
  }
  execute(p, a, b, fc.data());
  narrow(fc, g.m, g.n, g.ldc, g.c);
}

std::string gemm_impl_name(const GemmArgs& g) {
  Key key{g.ab_type, g.c_type, g.trans_a, g.trans_b, g.accumulate, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.alpha};
  return lookup(key).impl;
}

}  // namespace llamatron::cpu
