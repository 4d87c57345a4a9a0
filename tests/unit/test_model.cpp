// The whole model against the float64 PyTorch reference LLaMA (tests/reference/llama_ref.py):
// loss, logits and every parameter gradient; then 1 and 10 AdamW steps against torch.optim.AdamW.
#include <gtest/gtest.h>

#include <cmath>

#include "llamatron/model.h"
#include "llamatron/optim.h"
#include "reference.h"

namespace llamatron::test {
namespace {

ModelConfig config_from(const RefCase& c) {
  ModelConfig m;
  m.vocab_size = static_cast<int64_t>(c.meta("vocab_size"));
  m.dim = static_cast<int64_t>(c.meta("dim"));
  m.n_layers = static_cast<int64_t>(c.meta("n_layers"));
  m.n_heads = static_cast<int64_t>(c.meta("n_heads"));
  m.n_kv_heads = static_cast<int64_t>(c.meta("n_kv_heads"));
  m.ffn_dim = static_cast<int64_t>(c.meta("ffn_dim"));
  m.norm_eps = c.meta("norm_eps");
  m.rope_theta = c.meta("rope_theta");
  m.tie_embeddings = c.meta_str("tie_embeddings") == "true";
  m.max_seq_len = 256;
  return m;
}

void load_weights(LlamaModel& model, const RefCase& c) {
  for (const ParamSpec& s : model.params().specs()) {
    Tensor w = c.input_f32(s.name);
    ASSERT_EQ(w.shape(), s.shape) << s.name;
    model.params().master(s.name).copy_from(w);
  }
  model.params().sync_params_from_master();
}

// The document switches of a case (model_docs*: Megatron's rule in the reference), else all off.
DocumentRules documents_from(const RefCase& c) {
  DocumentRules r;
  if (!c.file.metadata.count("eod_id")) return r;
  r.eod_id = static_cast<int32_t>(c.meta("eod_id"));
  r.reset_attention_mask = c.meta_str("reset_attention_mask") == "true";
  r.reset_position_ids = c.meta_str("reset_position_ids") == "true";
  r.eod_mask_loss = c.meta_str("eod_mask_loss") == "true";
  return r;
}

// Same error measure as the op tests, over one gradient slice of the flat buffer.
double grad_error(LlamaModel& m, const RefCase& c, const std::string& name) {
  return scaled_error(to_f64(m.params().grad(name)), c.ref("grad." + name));
}

struct ModelCase {
  std::string name, prec;
  int64_t block;
  friend void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name << "_" << c.prec << "_block" << c.block; }
};

class Model : public testing::TestWithParam<ModelCase> {};

// fp32 mode: every quantity within 1e-5 of its scale. bf16 mode: parameters, activations and
// activation gradients are stored in bf16, so the forward passes through about 12 bf16 roundings
// per layer (norm, q/k/v, RoPE, attention x2, o, residual, norm, gate/up, SwiGLU, down, residual)
// plus 2 at the head, and the backward through as many again: the bound is that count x 2^-8.
TEST_P(Model, LossLogitsAndGradientsMatchTorch) {
  const auto& p = GetParam();
  RefCase c = load_case("model_" + p.name, p.prec);
  ModelConfig cfg = config_from(c);
  LlamaModel model(cfg, c.dtype);
  model.set_attention_blocks(p.block, p.block);
  load_weights(model, c);
  const DocumentRules docs = documents_from(c);
  model.set_documents(docs);
  Tensor tokens = c.input("tokens");
  const int64_t B = tokens.dim(0), T = tokens.dim(1) - 1;
  int64_t counted = 0;  // the mean is over the targets that count (eod_mask_loss drops some)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) counted += docs.counts(tokens.data<int32_t>() + b * (T + 1), t);
  model.keep_logits(true);
  model.params().zero_grads();
  const double loss = model.forward_backward(tokens.data<int32_t>(), B, T, 1.0f / counted) / counted;
  const int roundings_fwd = 12 * static_cast<int>(cfg.n_layers) + 2;
  const double tol_fwd = c.tol(roundings_fwd), tol_bwd = c.tol(2 * roundings_fwd);
  EXPECT_NEAR(loss, c.ref("loss")[0], tol_fwd * std::abs(c.ref("loss")[0]));
  EXPECT_MATCHES(model.last_logits(), c, "logits", tol_fwd);
  for (const ParamSpec& s : model.params().specs()) {
    const double err = grad_error(model, c, s.name);
    EXPECT_LE(err, tol_bwd) << "grad of " << s.name;
  }
}
INSTANTIATE_TEST_SUITE_P(Ref, Model,
                         testing::Values(ModelCase{"small", "fp32", 64}, ModelCase{"small", "fp32", 8},
                                         ModelCase{"tied", "fp32", 64}, ModelCase{"small", "bf16", 64},
                                         ModelCase{"tied", "bf16", 64},
                                         // packed byte-level documents, every switch combination
                                         ModelCase{"docs000", "fp32", 16}, ModelCase{"docs001", "fp32", 16},
                                         ModelCase{"docs010", "fp32", 16}, ModelCase{"docs011", "fp32", 16},
                                         ModelCase{"docs100", "fp32", 16}, ModelCase{"docs101", "fp32", 16},
                                         ModelCase{"docs110", "fp32", 16}, ModelCase{"docs111", "fp32", 16},
                                         ModelCase{"docs111", "fp32", 8}, ModelCase{"docs111", "bf16", 16}),
                         [](const testing::TestParamInfo<ModelCase>& i) {
                           return i.param.name + "_" + i.param.prec + "_block" + std::to_string(i.param.block);
                         });

// fp32 mode, S steps of: loss, backward, clip to max_grad_norm, AdamW (no decay on norm
// weights). Losses and pre-clip norms within 1e-5 relative. Final parameters: Adam divides each
// gradient by its own running RMS, so entries whose gradient is ~0 amplify fp32 rounding of the
// gradient into O(lr) update differences; we therefore bound the parameter error by 1e-5 of the
// parameter scale plus 1e-3 of the total update (the reference's own fp32-vs-fp64 run differs by
// up to 7e-5 on updates of ~1e-2, i.e. 7e-3 of the update at the worst entry; 1e-3 in L2 norm).
class AdamWSteps : public testing::TestWithParam<std::string> {};
TEST_P(AdamWSteps, MatchTorchAdamW) {
  RefCase c = load_case("adamw_" + GetParam(), "fp32");
  LlamaModel model(config_from(c), DType::F32);
  load_weights(model, c);
  OptimConfig oc;
  oc.lr = c.meta("lr"), oc.beta1 = c.meta("beta1"), oc.beta2 = c.meta("beta2"), oc.eps = c.meta("eps");
  oc.weight_decay = c.meta("weight_decay"), oc.max_grad_norm = c.meta("max_grad_norm");
  oc.decay_embeddings = true;
  AdamW opt(model.params(), oc);
  Tensor tokens = c.input("tokens");
  const int64_t S = tokens.dim(0), B = tokens.dim(1), T = tokens.dim(2) - 1;
  const auto ref_losses = c.ref("losses"), ref_norms = c.ref("grad_norms");
  std::map<std::string, std::vector<double>> initial;
  for (const ParamSpec& s : model.params().specs()) initial[s.name] = to_f64(model.params().master(s.name));
  for (int64_t s = 0; s < S; ++s) {
    model.params().zero_grads();
    const double loss = model.forward_backward(tokens.data<int32_t>() + s * B * (T + 1), B, T, 1.0f / (B * T)) / (B * T);
    const double norm = opt.step(oc.lr);
    EXPECT_NEAR(loss, ref_losses[s], kFp32Tol * ref_losses[s]) << "step " << s;
    EXPECT_NEAR(norm, ref_norms[s], kFp32Tol * ref_norms[s]) << "step " << s;
  }
  for (const ParamSpec& s : model.params().specs()) {
    const auto ours = to_f64(model.params().master(s.name)), ref = c.ref("final." + s.name);
    const auto& init = initial[s.name];
    double diff2 = 0, upd2 = 0, scale = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      diff2 += (ours[i] - ref[i]) * (ours[i] - ref[i]);
      upd2 += (ref[i] - init[i]) * (ref[i] - init[i]);
      scale = std::max(scale, std::abs(ref[i]));
    }
    EXPECT_LE(std::sqrt(diff2), kFp32Tol * scale * std::sqrt(ref.size()) + 1e-3 * std::sqrt(upd2)) << s.name;
  }
}
INSTANTIATE_TEST_SUITE_P(Ref, AdamWSteps, testing::Values("steps1", "steps10"));

}  // namespace
}  // namespace llamatron::test
