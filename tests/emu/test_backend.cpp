// The CUDA backend this binary links — the emulated device in kernel_tests (CI), the GPU in
// gpu_backend_tests (scripts/gpu_check.sh) — through the op interface the model calls (ops::),
// against the CPU backend on the same bf16 inputs: tensors are copied to the device, the same
// ops:: calls run on both, the results are copied back and compared (one bf16 rounding of the
// tensor's scale for bf16 outputs, 1e-5 for fp32 ones, which both sides reduce in fp32).
#include <gtest/gtest.h>

#ifdef LLAMATRON_TEST_EMULATED_DEVICE
#include "kernels/emu/emu.h"  // first: the emulator's keywords come before any CUDA header
#endif

#include <cmath>

#include "cuda/backend.h"
#include "llamatron/errors.h"
#include "llamatron/data.h"
#include "llamatron/model.h"
#include "llamatron/ops.h"
#include "llamatron/memory.h"
#include "llamatron/optim.h"
#include "tests/kv_cache_expect.h"
#include "llamatron/planner.h"
#include "llamatron/trainer.h"
#include "ops/cpu/cpu_ops.h"
#include "tests/emu/kernel_test_util.h"
#include "tests/memory_expect.h"

namespace llamatron::test {
namespace {

Tensor host_bf16(const Shape& shape, uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Tensor t = Tensor::empty(shape, DType::BF16);
  const auto v = random_bf16(t.numel(), seed, scale, shift);
  std::copy(v.begin(), v.end(), t.data<bf16>());
  return t;
}

Tensor to_device(const Tensor& h) {
  Tensor d = Tensor::empty(h.shape(), h.dtype(), Device::CUDA);
  d.copy_from(h);
  return d;
}

Tensor to_host(const Tensor& d) {
  Tensor h = Tensor::empty(d.shape(), d.dtype());
  h.copy_from(d);
  return h;
}

template <typename T>
std::vector<float> values(const Tensor& t) {
  const Tensor h = t.device() == Device::CPU ? t : to_host(t);
  std::vector<float> out(h.numel());
  for (int64_t i = 0; i < h.numel(); ++i) out[i] = static_cast<float>(h.data<T>()[i]);
  return out;
}

double err(const Tensor& device_result, const Tensor& host_ref) {
  return device_result.dtype() == DType::BF16 ? scaled_error(values<bf16>(device_result), values<bf16>(host_ref))
                                              : scaled_error(values<float>(device_result), values<float>(host_ref));
}

// The linked backend, registered for Device::CUDA while it lives; a failure says why there is none.
std::unique_ptr<cuda::CudaBackend> linked_backend() {
  std::string why;
  std::unique_ptr<DeviceBackend> b = make_linked_cuda_backend(&why);
  if (!b) throw Error("no CUDA backend: " + why);
  return std::unique_ptr<cuda::CudaBackend>(static_cast<cuda::CudaBackend*>(b.release()));
}

class CudaBackendOps : public testing::Test {
 protected:
  std::unique_ptr<cuda::CudaBackend> backend = linked_backend();
};

TEST_F(CudaBackendOps, LinearRmsNormSwiGluAddMatchCpu) {
  const Tensor x = host_bf16({37, 64}, 1), w = host_bf16({48, 64}, 2, 0.1f), dy = host_bf16({37, 48}, 3);
  const Tensor nw = host_bf16({64}, 4, 0.1f, 1.0f), gu = host_bf16({37, 96}, 5, 2.0f), dact = host_bf16({37, 48}, 6);
  // The same op chain on the host inputs (CPU) and on their copies on the device.
  struct Out {
    Tensor y, dx, dw, n, rstd, ndx, ndw, act, dgu, sum;
  };
  const auto run = [&](Device d) {
    const auto in = [&](const Tensor& t) { return d == Device::CPU ? t : to_device(t); };
    const auto bf = [&](const Shape& s) { return Tensor::empty(s, DType::BF16, d); };
    Out o{bf({37, 48}), bf({37, 64}), Tensor::zeros({48, 64}, DType::F32, d), bf({37, 64}), Tensor::empty({37}, DType::F32, d),
          bf({37, 64}), Tensor::zeros({64}, DType::F32, d), bf({37, 48}), bf({37, 96}), bf({37, 64})};
    const Tensor X = in(x), W = in(w), DY = in(dy), NW = in(nw), GU = in(gu), DACT = in(dact);
    ops::linear_fwd(X, W, o.y);
    ops::linear_bwd_data(DY, W, o.dx, false);
    ops::linear_bwd_weight(DY, X, o.dw);
    ops::rmsnorm_fwd(X, NW, 1e-5f, o.n, o.rstd);
    ops::rmsnorm_bwd(X, X, NW, o.rstd, o.ndx, o.ndw, false);
    ops::swiglu_fwd(GU, o.act);
    ops::swiglu_bwd(DACT, GU, o.dgu);
    o.sum.copy_from(X);
    ops::add_inplace(o.sum, o.n);
    return o;
  };
  const Out c = run(Device::CPU), g = run(Device::CUDA);
  EXPECT_LE(err(g.y, c.y), kOneBf16Rounding);
  EXPECT_LE(err(g.dx, c.dx), kOneBf16Rounding);
  EXPECT_LE(err(g.dw, c.dw), 1e-5);
  EXPECT_LE(err(g.n, c.n), kOneBf16Rounding);
  EXPECT_LE(err(g.rstd, c.rstd), 1e-5);
  EXPECT_LE(err(g.ndx, c.ndx), kOneBf16Rounding);
  EXPECT_LE(err(g.ndw, c.ndw), 1e-5);
  EXPECT_LE(err(g.act, c.act), kOneBf16Rounding);
  EXPECT_LE(err(g.dgu, c.dgu), kOneBf16Rounding);
  EXPECT_LE(err(g.sum, c.sum), 2 * kOneBf16Rounding);
}

TEST_F(CudaBackendOps, RopeEmbeddingCrossEntropyMatchCpu) {
  const int64_t B = 2, T = 9, H = 2, D = 64, V = 50, C = 32;
  Tensor cos = Tensor::empty({T, D / 2}, DType::F32), sin = Tensor::empty({T, D / 2}, DType::F32);
  cpu::rope_table(cos.data<float>(), sin.data<float>(), T, D, 10000.0);
  const Tensor q = host_bf16({B, T, H, D}, 6);
  Tensor qc = Tensor::empty(q.shape(), DType::BF16);
  qc.copy_from(q);
  Tensor Q = to_device(q);
  ops::rope_fwd(qc, cos, sin, 0);
  ops::rope_fwd(Q, to_device(cos), to_device(sin), 0);
  EXPECT_LE(err(Q, qc), kOneBf16Rounding);

  Tensor ids = Tensor::empty({B * T}, DType::I32);
  for (int64_t i = 0; i < B * T; ++i) ids.data<int32_t>()[i] = static_cast<int32_t>((i * 7) % V);
  const Tensor table = host_bf16({V, C}, 7), dy = host_bf16({B * T, C}, 8);
  Tensor y = Tensor::empty({B * T, C}, DType::BF16), dt = Tensor::zeros({V, C}, DType::F32);
  ops::embedding_fwd(ids, table, y);
  ops::embedding_bwd(ids, dy, dt);
  const Tensor IDS = to_device(ids);
  Tensor Y = Tensor::empty({B * T, C}, DType::BF16, Device::CUDA), DT = Tensor::zeros({V, C}, DType::F32, Device::CUDA);
  ops::embedding_fwd(IDS, to_device(table), Y);
  ops::embedding_bwd(IDS, to_device(dy), DT);
  EXPECT_EQ(err(Y, y), 0.0);
  EXPECT_EQ(err(DT, dt), 0.0);

  const Tensor logits = host_bf16({B * T, V}, 9, 2.0f);
  Tensor dl = Tensor::empty(logits.shape(), DType::BF16), DL = Tensor::empty(logits.shape(), DType::BF16, Device::CUDA);
  const double loss = ops::cross_entropy_fwd_bwd(logits, ids, dl, 0.1f);
  const double LOSS = ops::cross_entropy_fwd_bwd(to_device(logits), IDS, DL, 0.1f);
  EXPECT_NEAR(LOSS, loss, 1e-5 * loss);
  EXPECT_LE(err(DL, dl), kOneBf16Rounding);
}

// Attention through the op interface: the flash kernels on the device against the CPU attention
// (the tolerance of test_attention.cpp), with atomic and with deterministic dQ.
TEST_F(CudaBackendOps, AttentionMatchesCpu) {
  const int64_t B = 2, T = 70, H = 4, KV = 2, D = 64;
  const Tensor q = host_bf16({B, T, H, D}, 21, 1.5f), k = host_bf16({B, T, KV, D}, 22, 1.5f), v = host_bf16({B, T, KV, D}, 23),
               dout = host_bf16({B, T, H, D}, 24);
  struct Result {
    std::vector<float> o, dq, dk, dv;
  };
  // The op chain on tensors of one dtype and device.
  const auto run = [&](DType dt, Device dev) {
    const auto in = [&](const Tensor& x) {  // x: bf16 on the host
      Tensor host = Tensor::empty(x.shape(), dt);
      for (int64_t i = 0; i < x.numel(); ++i)
        if (dt == DType::BF16) host.data<bf16>()[i] = x.data<bf16>()[i];
        else host.data<float>()[i] = static_cast<float>(x.data<bf16>()[i]);
      return dev == Device::CPU ? host : to_device(host);
    };
    const auto out = [&](const Tensor& like) { return Tensor::empty(like.shape(), dt, dev); };
    const Tensor Q = in(q), K = in(k), V = in(v), DO = in(dout), O = out(q), DQ = out(q), DK = out(k), DV = out(v);
    const Tensor L = Tensor::empty({B, H, T}, DType::F32, dev);
    ops::attention_fwd(Q, K, V, O, L);
    ops::attention_bwd(Q, K, V, O, L, DO, DQ, DK, DV);
    const auto vals = [&](const Tensor& t) { return dt == DType::BF16 ? values<bf16>(t) : values<float>(t); };
    return Result{vals(O), vals(DQ), vals(DK), vals(DV)};
  };
  const Result ref = run(DType::F32, Device::CPU), cpu = run(DType::BF16, Device::CPU);
  for (const bool deterministic : {false, true}) {
    backend->set_deterministic(deterministic);
    const Result got = run(DType::BF16, Device::CUDA);
    expect_no_worse_than_cpu_bf16("O", got.o, cpu.o, ref.o);
    expect_no_worse_than_cpu_bf16("dQ", got.dq, cpu.dq, ref.dq);
    expect_no_worse_than_cpu_bf16("dK", got.dk, cpu.dk, ref.dk);
    expect_no_worse_than_cpu_bf16("dV", got.dv, cpu.dv, ref.dv);
  }
}

// Context parallelism's device ops against the CPU's on the same values: the log-sum-exp merge of
// a bf16 partial into fp32 running results (rows with LSE -inf left as they were), and fp32 sums
// of bf16 and fp32 tensors. The merge's arithmetic is fp32 on both sides (expf / logf against
// std::exp / std::log): 1e-5 of the scale; the sums are exact.
TEST_F(CudaBackendOps, AttentionMergeAndAccumulateMatchCpu) {
  const int64_t N = 37, H = 4, D = 64;
  const Tensor part = host_bf16({N, H, D}, 31), acc0 = to_host(to_device(host_bf16({N, H, D}, 32)));
  Tensor acc = Tensor::empty({N, H, D}, DType::F32), acc_lse = Tensor::empty({H, N}, DType::F32), part_lse = Tensor::empty({H, N}, DType::F32);
  acc.copy_from(acc0);
  const auto lse_a = random_f32(H * N, 33, 2.0f), lse_b = random_f32(H * N, 34, 2.0f);
  for (int64_t i = 0; i < H * N; ++i) {
    acc_lse.data<float>()[i] = i % 11 == 0 ? -INFINITY : lse_a[i];  // rows nothing has reached yet
    part_lse.data<float>()[i] = i % 7 == 0 ? -INFINITY : lse_b[i];  // rows this block does not reach
  }
  const Tensor dacc = to_device(acc), dacc_lse = to_device(acc_lse);
  ops::attention_merge(acc, acc_lse, part, part_lse);
  ops::attention_merge(dacc, dacc_lse, to_device(part), to_device(part_lse));
  EXPECT_LE(err(dacc, acc), 1e-5);
  EXPECT_LE(err(dacc_lse, acc_lse), 1e-5);
  for (int64_t i = 0; i < H * N; i += 7) EXPECT_EQ(values<float>(dacc_lse)[i], acc_lse.data<float>()[i]) << "untouched row " << i;
  Tensor sum = Tensor::empty({N, H, D}, DType::F32);
  sum.copy_from(acc);
  const Tensor dsum = to_device(sum), wide = to_host(to_device(acc0));
  ops::accumulate(sum, part), ops::accumulate(sum, wide);
  ops::accumulate(dsum, to_device(part)), ops::accumulate(dsum, to_device(wide));
  EXPECT_EQ(values<float>(dsum), values<float>(sum));
}

TEST_F(CudaBackendOps, TensorsOnTwoDevicesInOneOpAreRejected) {
  const Tensor x = host_bf16({4, 8}, 1), w = host_bf16({8, 8}, 2);
  Tensor y = Tensor::empty({4, 8}, DType::BF16, Device::CUDA);
  EXPECT_THROW(ops::linear_fwd(x, w, y), std::logic_error);
}

TEST(CudaBackendRegistration, NoBackendIsAClearError) {
  EXPECT_THROW(Tensor::empty({4}, DType::F32, Device::CUDA), Error);
}

}  // namespace
}  // namespace llamatron::test

// The end-to-end check of #4: a tiny LLaMA trained for 3 AdamW steps on the emulated CUDA backend
// (every op a CUDA kernel run by the emulator, attention the tensor-core flash kernel, GEMMs through
// the emulated runtime) matches the same training on the CPU backend. Both store bf16 and compute in
// fp32; they differ where a kernel's fp32 sum order differs, by at most one bf16 rounding per op
// on the path, the same count the bf16 model test uses: 12 per layer forward plus 2 at the head,
// twice that for gradients and the parameters they update. With packed documents (every switch
// on, an eod every 5 positions) the same: the document masks of the flash kernels and RoPE's
// position ids on the device against the CPU backend's.
namespace llamatron::test {
namespace {

void three_adamw_steps_match_the_cpu_backend(const DocumentRules& docs) {
  auto backend = linked_backend();
  ModelConfig cfg;
  cfg.vocab_size = 64, cfg.dim = 128, cfg.n_layers = 2, cfg.n_heads = 2, cfg.n_kv_heads = 1, cfg.ffn_dim = 96, cfg.max_seq_len = 32;
  LlamaModel cpu_model(cfg, DType::BF16, Device::CPU), dev_model(cfg, DType::BF16, Device::CUDA), initial(cfg, DType::BF16);
  cpu_model.init_weights(5);
  dev_model.init_weights(5);
  initial.init_weights(5);
  cpu_model.set_documents(docs), dev_model.set_documents(docs);
  OptimConfig oc;
  oc.lr = 1e-2, oc.weight_decay = 0.1, oc.max_grad_norm = 1.0;
  AdamW cpu_opt(cpu_model.params(), oc), dev_opt(dev_model.params(), oc);
  MarkovSource data(cfg.vocab_size, 1, 4, 1, 2);
  const int64_t B = 2, T = 16;
  std::vector<int32_t> tokens(B * (T + 1));
  const double fwd_tol = (12 * cfg.n_layers + 2) * kOneBf16Rounding, bwd_tol = 2 * fwd_tol;
  for (int step = 0; step < 3; ++step) {
    data.next_batch(B, T, tokens.data());
    if (docs.any())
      for (int64_t i = 2; i < B * (T + 1); i += 5) tokens[i] = docs.eod_id;
    cpu_model.params().zero_grads();
    dev_model.params().zero_grads();
    const double cpu_loss = cpu_model.forward_backward(tokens.data(), B, T, 1.0f / (B * T));
    const double dev_loss = dev_model.forward_backward(tokens.data(), B, T, 1.0f / (B * T));
    EXPECT_NEAR(dev_loss, cpu_loss, fwd_tol * cpu_loss) << "step " << step;
    if (step == 0) {
      for (const ParamSpec& s : cpu_model.params().specs())
        EXPECT_LE(err(dev_model.params().grad(s.name), cpu_model.params().grad(s.name)), bwd_tol) << "grad of " << s.name;
    }
    const double cpu_norm = cpu_opt.step(oc.lr), dev_norm = dev_opt.step(oc.lr);
    EXPECT_NEAR(dev_norm, cpu_norm, bwd_tol * cpu_norm) << "step " << step;
  }
  // Updated parameters, compared by their updates in L2 norm: Adam divides each gradient by its
  // own RMS, so an entry whose gradient is rounding noise moves by +-lr on either side; the
  // L2 norm of the update difference stays a small part of the update (the same measure as the
  // CPU optimizer's test against torch), bounded here by the gradient bound.
  for (const ParamSpec& s : cpu_model.params().specs()) {
    const auto ours = values<float>(dev_model.params().master(s.name)), ref = values<float>(cpu_model.params().master(s.name));
    const auto init = values<float>(initial.params().master(s.name));
    double diff2 = 0, upd2 = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      diff2 += (ours[i] - ref[i]) * (ours[i] - ref[i]);
      upd2 += (ref[i] - init[i]) * (ref[i] - init[i]);
    }
    EXPECT_LE(std::sqrt(diff2), bwd_tol * std::sqrt(upd2)) << s.name;
  }
  EXPECT_GT(backend->pool().stats().runtime_mallocs, 0u);
}

TEST(CudaBackendEndToEnd, ThreeAdamWStepsMatchTheCpuBackend) { three_adamw_steps_match_the_cpu_backend({}); }
TEST(CudaBackendEndToEnd, ThreeAdamWStepsWithDocumentsMatchTheCpuBackend) {
  three_adamw_steps_match_the_cpu_backend(DocumentRules{63, true, true, true});
}

// The model's attention is the CUDA kernel (there is no other path on this backend): a head_dim the
// kernels do not take fails there, with the kernel's reason and the way out.
// Generation's KV cache on the device (the decode kernel, RoPE at each row's position, the cache
// copies): cached logits against the CPU's fp32 full forward, no worse than twice the CPU bf16
// full forward's error plus one rounding (tests/kv_cache_expect.h; the CPU side: test_kv_cache.cpp).
TEST(CudaBackendEndToEnd, KvCacheLogitsEqualTheFullForward) {
  auto backend = linked_backend();
  ModelConfig cfg;
  cfg.vocab_size = 64, cfg.dim = 128, cfg.n_layers = 2, cfg.n_heads = 2, cfg.n_kv_heads = 1, cfg.ffn_dim = 96, cfg.max_seq_len = 160;
  LlamaModel dev(cfg, DType::BF16, Device::CUDA), f32(cfg, DType::F32), bf(cfg, DType::BF16);
  dev.init_weights(3), f32.init_weights(3), bf.init_weights(3);
  MarkovSource src(cfg.vocab_size, 1, 4, 1, 2);
  const int64_t T = 140, prompt = 9, V = cfg.vocab_size;  // decode past one 128-key tile
  std::vector<int32_t> a(2 * (T + 1));
  src.next_batch(2, T, a.data());
  const std::vector<int32_t> x(a.begin(), a.begin() + T), y(a.begin() + T + 1, a.begin() + 2 * T + 1);
  const std::vector<float> ref_x = test::full_logits(f32, x), ref_y = test::full_logits(f32, y);
  const std::vector<float> cpu_x = test::full_logits(bf, x), cpu_y = test::full_logits(bf, y);
  const test::CachedPair got = test::cached_logits(dev, x, prompt, y);
  const double scale = test::max_abs(ref_x);
  EXPECT_LE(test::max_diff_from(got.a, ref_x, prompt - 1, V), 2 * test::max_diff_from(cpu_x, ref_x, prompt - 1, V) + std::ldexp(scale, -8));
  EXPECT_LE(test::max_diff_from(got.b, ref_y, 0, V), 2 * test::max_diff_from(cpu_y, ref_y, 0, V) + std::ldexp(scale, -8));
}

TEST(CudaBackendEndToEnd, ModelAttentionRunsTheFlashKernel) {
  auto backend = linked_backend();
  ModelConfig cfg;
  cfg.vocab_size = 64, cfg.dim = 64, cfg.n_layers = 1, cfg.n_heads = 2, cfg.n_kv_heads = 1, cfg.ffn_dim = 64, cfg.max_seq_len = 32;
  LlamaModel model(cfg, DType::BF16, Device::CUDA);
  model.init_weights(1);
  std::vector<int32_t> tokens(2 * 17, 3);
  try {
    model.forward_backward(tokens.data(), 2, 16, 1.0f / 32);
    ADD_FAILURE() << "head_dim 32 ran on the CUDA backend";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim 32 is not supported by the CUDA attention kernels"), std::string::npos) << e.what();
  }
}

// With set_deterministic, two identical steps give identical bits (dQ by the second pass; 200
// tokens = 4 key tiles, so atomics would sum 4 partials per dQ element in a varying order). On the
// emulated device the second step runs its blocks in reverse order, as a GPU may.
TEST(CudaBackendEndToEnd, DeterministicModeRepeatsBitForBit) {
  auto backend = linked_backend();
  backend->set_deterministic(true);
  ModelConfig cfg;
  cfg.vocab_size = 64, cfg.dim = 128, cfg.n_layers = 1, cfg.n_heads = 2, cfg.n_kv_heads = 1, cfg.ffn_dim = 64, cfg.max_seq_len = 256;
  LlamaModel model(cfg, DType::BF16, Device::CUDA);
  model.init_weights(1);
  MarkovSource data(cfg.vocab_size, 1, 4, 1, 2);
  std::vector<int32_t> tokens(2 * 201);
  data.next_batch(2, 200, tokens.data());
  std::vector<std::vector<float>> grads;
  for (int run = 0; run < 2; ++run) {
#ifdef LLAMATRON_TEST_EMULATED_DEVICE
    emu::set_reverse_block_order(run == 1);
#endif
    model.params().zero_grads();
    model.forward_backward(tokens.data(), 2, 200, 1.0f / 400);
    grads.push_back(values<float>(model.params().grad("model.layers.0.self_attn.q_proj.weight")));
  }
#ifdef LLAMATRON_TEST_EMULATED_DEVICE
  emu::set_reverse_block_order(false);
#endif
  EXPECT_EQ(grads[0], grads[1]);
}

TEST(CudaBackendEndToEnd, StepLoopReusesDeviceMemory) {
  auto backend = linked_backend();
  ModelConfig cfg;
  cfg.vocab_size = 64, cfg.dim = 128, cfg.n_layers = 1, cfg.n_heads = 2, cfg.n_kv_heads = 1, cfg.ffn_dim = 64, cfg.max_seq_len = 32;
  LlamaModel model(cfg, DType::BF16, Device::CUDA);
  model.init_weights(1);
  AdamW opt(model.params(), OptimConfig{});
  MarkovSource data(cfg.vocab_size, 1, 4, 1, 2);
  std::vector<int32_t> tokens(2 * 17);
  size_t after_first = 0;
  for (int step = 0; step < 4; ++step) {
    data.next_batch(2, 16, tokens.data());
    model.params().zero_grads();
    model.forward_backward(tokens.data(), 2, 16, 1.0f / 32);
    opt.step(1e-3);
    if (step == 0) after_first = backend->pool().stats().runtime_mallocs;
  }
  EXPECT_EQ(backend->pool().stats().runtime_mallocs, after_first) << "no device allocation from the runtime after step 1";
}

// On the device (the GPU, or the emulated one): recomputation trains bit-identically (deterministic
// attention), and the planner's memory agrees with the device's allocation accounting per category
// within 10%, as on the CPU (memory.h; the backend's own scratch is "other", outside the plan).
TEST(CudaBackendEndToEnd, RecomputeIsBitIdenticalAndTheDeviceMemoryIsPlanned) {
  auto backend = linked_backend();
  backend->set_deterministic(true);
  RunConfig c;
  c.model.vocab_size = 64, c.model.dim = 128, c.model.n_layers = 2, c.model.n_heads = 2, c.model.n_kv_heads = 1;
  c.model.ffn_dim = 96, c.model.max_seq_len = 32;
  c.train.steps = 2, c.train.micro_batch_size = 2, c.train.seq_length = 16, c.train.device = "cuda", c.train.threads = 2;
  std::vector<double> reference;
  for (const char* mode : {"none", "selective", "full"}) {
    c.train.recompute = mode;
    const MemoryCounts base = memory_counts(Device::CUDA);
    Trainer t(c);
    reset_memory_peaks(Device::CUDA);
    std::vector<double> losses;
    for (int i = 0; i < 2; ++i) losses.push_back(t.step().loss);
    if (reference.empty()) reference = losses;
    EXPECT_EQ(losses, reference) << mode;
    // The backend's own scratch (cuBLASLt workspace, reduction partials) is "other": no total.
    expect_memory_as_planned(plan_memory(t.config(), 0), base, memory_counts(Device::CUDA), std::string("recompute ") + mode, false);
  }
}

}  // namespace
}  // namespace llamatron::test
