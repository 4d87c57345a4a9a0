// GEMM on the CPU through oneDNN's matmul primitive. bf16 operands accumulate in fp32 (AMX or
// AVX-512 BF16 where the CPU has them); fp32 operands use oneDNN's sgemm. Transposes are expressed
// as strides, so no operand is ever copied. Primitives are built once per shape and cached: their
// creation (JIT code generation) costs far more than a small matmul.
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
};

const Cached& lookup(const Key& key) {
  static std::mutex mu;
  static std::map<Key, Cached> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  using dims = dnnl::memory::dims;
  const auto tab = dnnl_type(key.ab), tc = dnnl_type(key.c);
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
  return cache.emplace(key, Cached{dnnl::matmul(pd), a, b, c, pd.scratchpad_desc(), pd.impl_info_str()}).first->second;
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  LT_CHECK(g.k > 0 || g.accumulate, "gemm with k = 0 must accumulate");
  if (g.k == 0) return;
  const Cached& p = lookup(Key{g.ab_type, g.c_type, g.trans_a, g.trans_b, g.accumulate, g.m, g.n, g.k,
                               g.lda, g.ldb, g.ldc, g.alpha});
  dnnl::engine& eng = cpu_engine();
  thread_local dnnl::stream stream(eng);
  dnnl::memory a(p.a, eng, const_cast<void*>(g.a));
  dnnl::memory b(p.b, eng, const_cast<void*>(g.b));
  dnnl::memory c(p.c, eng, g.c);
  thread_local std::vector<char> scratch_buf;
  if (scratch_buf.size() < p.scratch.get_size()) scratch_buf.resize(p.scratch.get_size());
  dnnl::memory scratch(p.scratch, eng, scratch_buf.data());
  p.prim.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}, {DNNL_ARG_SCRATCHPAD, scratch}});
  stream.wait();
}

std::string gemm_impl_name(const GemmArgs& g) {
  Key key{g.ab_type, g.c_type, g.trans_a, g.trans_b, g.accumulate, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.alpha};
  return lookup(key).impl;
}

}  // namespace llamatron::cpu
