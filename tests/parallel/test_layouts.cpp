// 3D layouts against one process, over real Open MPI: run as `mpirun -np 8 parallel_tests`. Each
// case takes the first tp*pp*dp ranks of the world as its job (the others wait at the end of the
// case); every participating rank also trains the single-process reference itself, with the same
// global batch, and compares the loss and grad norm of each of 5 steps and the final parameters.
// fp32 mode: the layouts differ from one process only in the order of fp32 sums, so the bound is
// fp32 reordering error grown over 5 AdamW steps: 1e-5 relative for losses and norms, 1e-4 of the
// parameters' update (measured: at most 2.4e-5 over the nine layouts).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llamatron/checkpoint.h"
#include "llamatron/comm.h"
#include "llamatron/comm_volume.h"
#include "llamatron/memory.h"
#include "llamatron/planner.h"
#include "llamatron/prepare.h"
#include "llamatron/trainer.h"
#include "../memory_expect.h"

namespace llamatron {
namespace {

struct Layout {
  int tp, pp, dp;
  bool sp = false;     // parallel.sequence_parallel
  int64_t batch = 2;   // sequences per micro-batch and DP rank (1: the sequence-parallel chunks need no reordering)
  int v = 1;           // parallel.virtual_pipeline
  int64_t layers = 4;  // model.n_layers (pp x v chunks of equal layers)
  int cp = 1;          // parallel.context_parallel
  Layout alone() const { return {1, 1, 1, false, 2, 1, layers}; }  // the same model in one process
  int ranks() const { return tp * pp * dp * cp; }
  std::string name() const {
    return "tp" + std::to_string(tp) + (sp ? "sp" : "") + "_pp" + std::to_string(pp) + (v > 1 ? "v" + std::to_string(v) : "") + "_dp" +
           std::to_string(dp) + (batch != 2 ? "_b" + std::to_string(batch) : "") + (layers != 4 ? "_L" + std::to_string(layers) : "") +
           (cp > 1 ? "_cp" + std::to_string(cp) : "");
  }
  friend void PrintTo(const Layout& l, std::ostream* os) { *os << l.name(); }
};

// GQA with 2 KV heads (split for tp 2, replicated for tp 4 and 8), a vocab no tp divides, 4 layers.
RunConfig test_config(const Layout& l, int64_t batch_per_rank) {
  RunConfig c;
  c.model.vocab_size = 250, c.model.dim = 64, c.model.n_layers = l.layers, c.model.n_heads = 8, c.model.n_kv_heads = 2;
  c.model.ffn_dim = 96, c.model.max_seq_len = 32;
  c.parallel.tensor_parallel = l.tp, c.parallel.pipeline_parallel = l.pp, c.parallel.data_parallel = l.dp;
  c.parallel.sequence_parallel = l.sp, c.parallel.virtual_pipeline = l.v, c.parallel.context_parallel = l.cp;
  c.train.steps = 5, c.train.micro_batch_size = batch_per_rank, c.train.seq_length = 16, c.train.grad_accum_steps = 4;
  c.train.precision = "fp32", c.train.seed = 7, c.train.threads = 1;
  // lr 3e-3: Adam turns fp32 noise in near-zero gradients into whole steps, and at 1e-2 that chaos
  // grows 10x a step; here 5 steps stay within 1e-6 of one process (10x under the bound).
  c.optimizer.lr = 3e-3, c.schedule.warmup_steps = 0, c.optimizer.max_grad_norm = 0.5;  // clipping active: the norm matters
  // Adam's eps above fp32 rounding noise: an embedding row a batch barely touches has a gradient
  // that is mostly reordering noise, and with eps = 1e-8 Adam turns that noise into a full step.
  c.optimizer.eps = 1e-6;
  return c;
}

std::vector<float> host_values(const Tensor& t) {
  std::vector<float> v(t.numel());
  Tensor h = Tensor::wrap(v.data(), t.shape(), DType::F32);
  h.copy_from(t);
  return v;
}

// Runs f(job) on the first n ranks of the world, `job` being their communicator; every rank
// waits at the end, so the next case starts together.
void on_first_ranks(int n, const std::function<void(Communicator& job)>& f) {
  Communicator& w = world();
  ASSERT_GE(w.size(), n) << "run under mpirun -np " << n << " or more";
  std::unique_ptr<Communicator> job = w.split(w.rank() < n ? 0 : 1, w.rank());
  if (w.rank() < n) f(*job);
  w.barrier();
}

class Layouts : public testing::TestWithParam<Layout> {};

TEST_P(Layouts, MatchOneProcess) {
  const Layout l = GetParam();
  const int n = l.tp * l.pp * l.dp;
  on_first_ranks(n, [&](Communicator& job) {
    Trainer ref(test_config(l.alone(), l.batch * l.dp), self_group());
    Trainer par(test_config(l, l.batch), job);
    for (int step = 1; step <= 5; ++step) {
      const StepStats r = ref.step(), p = par.step();
      EXPECT_NEAR(p.loss, r.loss, 1e-5 * r.loss) << "step " << step;
      EXPECT_NEAR(p.grad_norm, r.grad_norm, 1e-5 * r.grad_norm) << "step " << step;
    }
    // Parameters, by name: each rank checks the slices it holds (together: every parameter),
    // compared by their updates in L2 norm: Adam divides each gradient by its own RMS, so fp32
    // reordering noise in a gradient moves the update by the noise's relative size, not by the
    // parameter's. Vocabulary padding rows must stay exactly zero.
    Trainer init(test_config(l.alone(), 2), self_group());
    const ParamStore &rp = ref.model().params(), &pp = par.model().params(), &ip = init.model().params();
    for (const ParamSpec& s : pp.specs()) {
      const std::vector<float> got = host_values(pp.param(s.name));
      std::vector<float> want(got.size()), start(got.size());
      slice_global(s, host_values(rp.param(s.name)).data(), want.data());
      slice_global(s, host_values(ip.param(s.name)).data(), start.data());
      double diff = 0, update = 0;
      for (size_t i = 0; i < want.size(); ++i)
        diff += (got[i] - want[i]) * (got[i] - want[i]), update += (want[i] - start[i]) * (want[i] - start[i]);
      EXPECT_LE(std::sqrt(diff), 1e-4 * std::sqrt(update)) << s.name << " (update norm " << std::sqrt(update) << ")";
    }
  });
}

// Overlap on and off train the same model bit for bit: the buckets and the order of every sum are
// the same, only the moment a collective is waited on differs (docs/parallelism.md, "Overlap").
// fp32 with fp32 gradients on the wire and bf16 with bf16 gradients, gradient accumulation over 4
// micro-batches, ZeRO-1 shards, and a NaN step the guards skip in the middle. Run again by CTest
// with random delays injected into every collective (parallel_overlap_delayed) and with MPI
// called from the caller's thread (parallel_overlap_inline).
TEST_P(Layouts, OverlapIsBitIdentical) {
  const Layout l = GetParam();
  on_first_ranks(l.tp * l.pp * l.dp, [&](Communicator& job) {
    for (const char* precision : {"fp32", "bf16"}) {
      RunConfig on = test_config(l, l.batch);
      on.train.precision = precision, on.parallel.grad_reduce_dtype = precision;
      on.parallel.bucket_size_mb = 0.02;  // ~5k elements: several buckets per layer, some across shard boundaries
      RunConfig off = on;
      off.parallel.overlap_grad_reduce = off.parallel.overlap_param_gather = false;
      Trainer a(on, job), b(off, job);
      EXPECT_GE(a.optimizer().shard().buckets().size(), 2u);
      for (int step = 1; step <= 4; ++step) {
        if (step == 2) a.inject_next_step(std::nan("")), b.inject_next_step(std::nan(""));
        const StepStats x = a.step(), y = b.step();
        EXPECT_EQ(x.skipped, step == 2) << precision << " step " << step;
        if (step == 2) continue;  // NaN compares unequal to itself
        EXPECT_EQ(x.loss, y.loss) << precision << " step " << step;
        EXPECT_EQ(x.grad_norm, y.grad_norm) << precision << " step " << step;
      }
      const ParamStore &pa = a.model().params(), &pb = b.model().params();
      const std::vector<float> wa = host_values(a.optimizer().shard().master_shard()), wb = host_values(b.optimizer().shard().master_shard());
      EXPECT_EQ(wa, wb) << precision << ": the master shard";
      Tensor ha = Tensor::empty({pa.numel()}, pa.dtype()), hb = Tensor::empty({pb.numel()}, pb.dtype());
      ha.copy_from(pa.params_flat()), hb.copy_from(pb.params_flat());
      EXPECT_EQ(0, std::memcmp(ha.raw(), hb.raw(), static_cast<size_t>(pa.numel()) * dtype_size(pa.dtype())))
          << precision << ": the gathered parameters";
    }
  });
}

// The nine 3D layouts; sequence parallelism: tp 2, tp 4 (KV heads replicated), tp 2 x pp 2 x dp 2,
// tp 4 x dp 2, and one sequence per micro-batch (the chunks in the collectives' order); interleaved
// 1F1B: pp 2 v 2, pp 4 v 2 (8 layers), pp 2 v 2 x dp 2 with 8 layers (2 per chunk), and tp 2 SP x
// pp 2 v 2 x dp 2.
INSTANTIATE_TEST_SUITE_P(Parallel, Layouts,
                         testing::Values(Layout{2, 1, 1}, Layout{1, 2, 1}, Layout{1, 1, 2}, Layout{2, 2, 2}, Layout{4, 1, 2},
                                         Layout{1, 4, 2}, Layout{2, 4, 1}, Layout{8, 1, 1}, Layout{1, 1, 8}, Layout{2, 1, 1, true},
                                         Layout{4, 1, 1, true}, Layout{2, 2, 2, true}, Layout{4, 1, 2, true}, Layout{2, 2, 1, true, 1},
                                         Layout{1, 2, 1, false, 2, 2}, Layout{1, 4, 1, false, 2, 2, 8}, Layout{1, 2, 2, false, 2, 2, 8},
                                         Layout{2, 2, 2, true, 2, 2}),
                         [](const testing::TestParamInfo<Layout>& i) { return i.param.name(); });

// An uneven explicit split (3 + 1 layers over 2 stages) trains exactly like one process.
TEST(Pipeline, ExplicitLayerSplitMatchesOneProcess) {
  on_first_ranks(2, [&](Communicator& job) {
    Trainer ref(test_config({1, 1, 1}, 2), self_group());
    RunConfig c = test_config({1, 2, 1}, 2);
    c.parallel.pipeline_layers = {3, 1};
    Trainer par(c, job);
    EXPECT_EQ(par.model().params().has("model.layers.2.mlp.down_proj.weight"), job.rank() == 0);
    EXPECT_EQ(par.model().params().has("model.layers.3.mlp.down_proj.weight"), job.rank() == 1);
    for (int step = 1; step <= 3; ++step) {
      const StepStats r = ref.step(), p = par.step();
      EXPECT_NEAR(p.loss, r.loss, 1e-5 * r.loss) << "step " << step;
      EXPECT_NEAR(p.grad_norm, r.grad_norm, 1e-5 * r.grad_norm) << "step " << step;
    }
  });
}

// A batch ramp-up (train.rampup_batch_size [8, 8, 20] towards 16: batches 8, 8, 8, then 16) on
// tp 2 SP x pp 2 v 2 x dp 2 trains what one process does: 2 micro-batches per step (one group of pp),
// then 4.
TEST(BatchRamp, MatchesOneProcess_tp2sp_pp2v2_dp2) {
  const Layout l{2, 2, 2, true, 2, 2};
  on_first_ranks(8, [&](Communicator& job) {
    RunConfig one = test_config(l.alone(), l.batch * l.dp), par = test_config(l, l.batch);
    one.train.rampup_batch_size = par.train.rampup_batch_size = {8, 8, 20};
    Trainer ref(one, self_group()), tr(par, job);
    for (int step = 1; step <= 5; ++step) {
      const StepStats r = ref.step(), p = tr.step();
      EXPECT_EQ(p.global_batch_size, step <= 3 ? 8 : 16) << "step " << step;
      EXPECT_EQ(r.global_batch_size, p.global_batch_size) << "step " << step;
      EXPECT_NEAR(p.loss, r.loss, 1e-5 * r.loss) << "step " << step;
      EXPECT_NEAR(p.grad_norm, r.grad_norm, 1e-5 * r.grad_norm) << "step " << step;
    }
  });
}

// Packed documents on byte-level data that `llamatron data prepare` wrote (real boundaries; the
// eod id, 256, from its record): all three switches on tp 2 SP x pp 2 x dp 2 train what one
// process does (the targets eod_mask_loss drops are counted over DP and micro-batches alike).
// The control: the switches change the losses.
TEST(Documents, MatchOneProcess_tp2sp_pp2_dp2) {
  const Layout l{2, 2, 2, true};
  const std::string dir = (std::filesystem::temp_directory_path() / "llamatron_test_documents_layouts").string();
  if (world().rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::vector<std::string> inputs;
    for (int i = 0; i < 120; ++i) {  // documents of 1 to 30 bytes
      inputs.push_back(dir + "/doc" + std::to_string(i) + ".txt");
      std::FILE* f = std::fopen(inputs.back().c_str(), "w");
      for (int j = 0; j <= (i * 7) % 30; ++j) std::fputc('a' + (i * 31 + j * 7) % 26, f);
      std::fclose(f);
    }
    PrepareOptions o;
    o.inputs = inputs, o.out_dir = dir + "/out";
    prepare_data(o);
  }
  world().barrier();
  on_first_ranks(8, [&](Communicator& job) {
    RunConfig one = test_config(l.alone(), l.batch * l.dp), par = test_config(l, l.batch);
    for (RunConfig* c : {&one, &par}) {
      c->model.vocab_size = 260;
      c->data.source = "llmc", c->data.paths = {dir + "/out/data_*.bin"};
      c->data.reset_attention_mask = c->data.reset_position_ids = c->data.eod_mask_loss = true;
    }
    RunConfig plain = one;
    plain.data.reset_attention_mask = plain.data.reset_position_ids = plain.data.eod_mask_loss = false;
    Trainer ref(one, self_group()), tr(par, job), off(plain, self_group());
    EXPECT_EQ(tr.model().documents().eod_id, kByteEos);
    for (int step = 1; step <= 4; ++step) {
      const StepStats r = ref.step(), p = tr.step(), o = off.step();
      EXPECT_NEAR(p.loss, r.loss, 1e-5 * r.loss) << "step " << step;
      EXPECT_NEAR(p.grad_norm, r.grad_norm, 1e-5 * r.grad_norm) << "step " << step;
      EXPECT_GT(std::abs(o.loss - r.loss), 1e-3 * r.loss) << "step " << step;
    }
  });
}

// Context parallelism (parallel.context_parallel): each sequence split over c ranks (chunks r and
// 2c - 1 - r), attention as a ring, gradients and ZeRO-1 over DP x CP: fp32 training equal to one
// process at T = 1024 and 4096, with and without packed documents (synthetic data whose token 7
// ends a document: about 4 documents per 1024-token window), alone and with TP (SP), PP and DP.
struct CpCase {
  int cp, tp, pp, dp;
  int64_t seq;
  bool sp, documents;
  std::string name() const {
    return "cp" + std::to_string(cp) + (tp > 1 ? "_tp" + std::to_string(tp) + (sp ? "sp" : "") : "") +
           (pp > 1 ? "_pp" + std::to_string(pp) : "") + (dp > 1 ? "_dp" + std::to_string(dp) : "") + "_T" + std::to_string(seq) +
           (documents ? "_documents" : "");
  }
};
class ContextParallel : public testing::TestWithParam<CpCase> {};
TEST_P(ContextParallel, TrainsAsOneProcess) {
  const CpCase k = GetParam();
  const Layout l{k.tp, k.pp, k.dp, k.sp, 1};
  on_first_ranks(k.cp * k.tp * k.pp * k.dp, [&](Communicator& job) {
    RunConfig one = test_config(l.alone(), l.batch * l.dp), par = test_config(l, l.batch);
    par.parallel.context_parallel = k.cp;
    for (RunConfig* c : {&one, &par}) {
      c->train.seq_length = k.seq, c->model.max_seq_len = k.seq, c->train.grad_accum_steps = 2;
      c->data.eod_id = 7;
      c->data.reset_attention_mask = c->data.reset_position_ids = c->data.eod_mask_loss = k.documents;
    }
    Trainer ref(one, self_group()), tr(par, job);
    EXPECT_EQ(tr.grid().cp(), k.cp);
    if (k.documents) {  // the control: the windows do hold documents
      RunConfig plain = one;
      plain.data.reset_attention_mask = plain.data.reset_position_ids = plain.data.eod_mask_loss = false;
      Trainer off(plain, self_group());
      EXPECT_GT(std::abs(off.step().loss - Trainer(one, self_group()).step().loss), 1e-4);
    }
    // 1e-6: the ring sums the same terms in another order. After an update Adam turns that fp32
    // noise in near-zero gradients into whole steps (the layouts' 1e-5 above): by step 3 the grad
    // norm differs by up to 1.6e-6 (measured), the loss still within 1e-6.
    for (int step = 1; step <= 3; ++step) {
      const StepStats r = ref.step(), p = tr.step();
      EXPECT_NEAR(p.loss, r.loss, 1e-6 * r.loss) << "step " << step;
      EXPECT_NEAR(p.grad_norm, r.grad_norm, (step == 1 ? 1e-6 : 1e-5) * r.grad_norm) << "step " << step;
    }
  });
}
INSTANTIATE_TEST_SUITE_P(Layouts, ContextParallel,
                         testing::Values(CpCase{2, 1, 1, 1, 1024, false, false}, CpCase{2, 1, 1, 1, 1024, false, true},
                                         CpCase{4, 1, 1, 1, 1024, false, false}, CpCase{4, 1, 1, 1, 1024, false, true},
                                         CpCase{4, 1, 1, 1, 4096, false, false}, CpCase{4, 1, 1, 1, 4096, false, true},
                                         CpCase{2, 1, 1, 1, 4096, false, false}, CpCase{2, 1, 1, 1, 4096, false, true},
                                         CpCase{2, 2, 1, 2, 1024, true, false}, CpCase{2, 2, 1, 2, 1024, true, true},
                                         CpCase{2, 1, 2, 2, 1024, false, true}),
                         [](const testing::TestParamInfo<CpCase>& i) { return i.param.name(); });

// The planner's memory of a CP rank (its T / cp positions, the state sharded over DP x CP, the
// ring's buffers) against the rank's own allocation accounting, as for the layouts below.
// Each rank of `ranks` trains two bf16 steps of `layout` (recompute none, then full); its planned
// memory against its allocation accounting (memory_expect.h).
void planner_memory_matches(int ranks, const RunConfig& layout, const std::string& what) {
  on_first_ranks(ranks, [&](Communicator& job) {
    for (const char* mode : {"none", "full"}) {
      RunConfig c = layout;
      c.train.recompute = mode, c.train.precision = "bf16", c.parallel.grad_reduce_dtype = "bf16";
      const MemoryCounts base = memory_counts(Device::CPU);
      Trainer t(c, job);
      reset_memory_peaks(Device::CPU);
      t.step(), t.step();
      expect_memory_as_planned(plan_memory(c, t.grid().pp_rank(), t.grid().tp_rank()), base, memory_counts(Device::CPU),
                               what + "recompute " + mode);
    }
  });
}

TEST(ContextParallel, PlannerMemoryMatchesEachRanksAccounting) {
  RunConfig c = test_config({2, 1, 2}, 2);
  c.parallel.context_parallel = 2, c.train.seq_length = 32;
  planner_memory_matches(8, c, "cp 2, ");
}

// The bytes of a CP step, counted on the communicators (the ring's "cp.send", ZeRO-1 over DP x CP),
// equal the analytic volume key by key, as for the layouts below; full recomputation repeats the
// forward's ring.
TEST(ContextParallel, SendsTheAnalyticVolume) {
  struct Case {
    int cp, tp, pp, dp;
    bool sp;
  };
  for (const Case k : {Case{2, 2, 1, 2, true}, Case{2, 1, 2, 2, false}, Case{4, 1, 1, 2, false}, Case{8, 1, 1, 1, false}})
    for (const char* mode : {"none", "full"})
      on_first_ranks(8, [&](Communicator& job) {
        RunConfig c = test_config({k.tp, k.pp, k.dp, k.sp}, 2);
        c.parallel.context_parallel = k.cp, c.train.seq_length = 32, c.train.recompute = mode;
        Trainer t(c, job);
        t.step();
        t.grid().comm_stats().reset();
        t.step();
        const auto want = step_comm_bytes(c, {k.tp, k.pp, k.dp, t.grid().pp_rank(), t.optimizer().shard().size(), k.cp});
        const auto& got = t.grid().comm_stats().bytes;
        const std::string what = "cp" + std::to_string(k.cp) + " tp" + std::to_string(k.tp) + " pp" + std::to_string(k.pp) + " dp" +
                                 std::to_string(k.dp) + " recompute " + mode;
        for (const auto& [key, bytes] : got) EXPECT_TRUE(bytes == 0 || want.count(key)) << key << " not in the analytic volume, " << what;
        for (const auto& [key, bytes] : want) {
          ASSERT_TRUE(got.count(key)) << key << " missing, " << what;
          EXPECT_NEAR(got.at(key), bytes, 1e-9 * bytes) << key << ", " << what;
        }
      });
}

// The bytes each group sends in a step, counted on the communicators, equal the layout's analytic
// volume (comm_volume.h) key by key: no collective more or less than the layout needs.
TEST_P(Layouts, SendTheAnalyticVolume) {
  const Layout l = GetParam();
  const int n = l.tp * l.pp * l.dp;
  on_first_ranks(n, [&](Communicator& job) {
    for (const char* wire : {"fp32", "bf16"}) {
      RunConfig c = test_config(l, l.batch);
      c.parallel.grad_reduce_dtype = wire;
      Trainer t(c, job);
      t.step();  // allocations and first-step work out of the way
      t.grid().comm_stats().reset();
      t.step();
      const auto want = step_comm_bytes(c, {l.tp, l.pp, l.dp, t.grid().pp_rank(), t.optimizer().shard().size()});
      const auto& got = t.grid().comm_stats().bytes;
      EXPECT_EQ(got.size(), want.size()) << "the same collectives";
      for (const auto& [key, bytes] : want) {
        ASSERT_TRUE(got.count(key)) << key << " missing (wire " << wire << ")";
        EXPECT_NEAR(got.at(key), bytes, 1e-9 * bytes) << key << " (wire " << wire << ")";
      }
    }
  });
}

// Each rank's planned memory (planner.h) against its own allocation accounting, category by
// category and in total, within the 10%, for full and no recomputation and a bf16 wire.
TEST_P(Layouts, PlannerMemoryMatchesEachRanksAccounting) {
  const Layout l = GetParam();
  planner_memory_matches(l.tp * l.pp * l.dp, test_config(l, l.batch), "");
}

// Recomputation under tp 2 x pp 2 x dp 2, without and with sequence parallelism, trains bit for
// bit like keeping every activation (the same ops on the same inputs, the same collectives in the
// same order), and full recomputation's extra TP collectives per layer are in the analytic volume.
TEST(Recompute, BitIdenticalUnder3dLayout) {
  on_first_ranks(8, [&](Communicator& job) {
    for (const bool sp : {false, true}) {
      const RunConfig keep = test_config({2, 2, 2, sp}, 2);
      for (const char* mode : {"selective", "full"}) {
        RunConfig c = keep;
        c.train.recompute = mode;
        Trainer a(keep, job), b(c, job);
        for (int step = 1; step <= 2; ++step) {
          const StepStats x = a.step(), y = b.step();
          EXPECT_EQ(x.loss, y.loss) << mode << " sp " << sp << " step " << step;
          EXPECT_EQ(x.grad_norm, y.grad_norm) << mode << " sp " << sp << " step " << step;
        }
        b.grid().comm_stats().reset();
        b.step();
        const auto want = step_comm_bytes(c, {2, 2, 2, b.grid().pp_rank(), b.optimizer().shard().size()});
        const auto& got = b.grid().comm_stats().bytes;
        for (const char* key : {"tp.all_reduce", "tp.all_gather", "tp.reduce_scatter"}) {
          EXPECT_EQ(got.count(key), want.count(key)) << key << " " << mode << " sp " << sp;
          if (want.count(key) && got.count(key)) {
            EXPECT_NEAR(got.at(key), want.at(key), 1e-9 * want.at(key)) << key << " " << mode << " sp " << sp;
          }
        }
      }
    }
  });
}

// A checkpoint saved under `saved` after 3 steps resumes under each of `loaded`: 2 more steps give
// the losses that continuing under `saved` gives (fp32 bound as above). `saved_dir`, when given,
// looks at the checkpoint directory on rank 0 before the others load it.
void expect_resumes(const Layout& saved, const std::vector<Layout>& loaded,
                    const std::function<void(const std::string&)>& saved_dir = {}) {
  Communicator& w = world();
  const std::string dir = (std::filesystem::temp_directory_path() / ("llamatron_reshard_" + saved.name())).string();
  if (w.rank() == 0) std::filesystem::remove_all(dir);
  w.barrier();
  const auto config = [&](const Layout& l) {
    RunConfig c = test_config(l, 4 / l.dp);
    c.checkpoint.dir = dir;
    return c;
  };
  std::vector<double> original(2);
  on_first_ranks(saved.ranks(), [&](Communicator& job) {
    Trainer t(config(saved), job);
    for (int i = 0; i < 3; ++i) t.step();
    save_checkpoint(t);
    for (double& loss : original) loss = t.step().loss;
  });
  w.broadcast(original.data(), 4, DType::I32, 0);  // rank 0's losses, as raw words: 2 doubles are 4 int32
  if (saved_dir && w.rank() == 0) saved_dir(find_checkpoint(config(saved).checkpoint));
  w.barrier();
  for (const Layout& l : loaded) {
    on_first_ranks(l.ranks(), [&](Communicator& job) {
      Trainer t(config(l), job);
      EXPECT_EQ(t.progress().step, 3);
      for (int i = 0; i < 2; ++i)
        EXPECT_NEAR(t.step().loss, original[i], 1e-5 * original[i]) << "saved " << saved.name() << ", resumed " << l.name();
    });
  }
}

// Saved under (tp, pp, dp) = (2, 2, 2), resumed under (1, 1, 1), (4, 1, 2) and (2, 2, 2) with
// sequence parallelism; exported to Hugging Face from the tp 2 shards: whole tensors, the
// vocabulary padding (250 -> 256) gone.
TEST(Checkpoint, ReshardsAcrossLayouts) {
  ASSERT_GE(world().size(), 8);
  expect_resumes(Layout{2, 2, 2}, {Layout{1, 1, 1}, Layout{4, 1, 2}, Layout{2, 2, 2, true}}, [](const std::string& checkpoint) {
    export_hf(checkpoint, checkpoint + "_hf", DType::F32);
    const std::unique_ptr<GlobalWeights> hf = hf_weights(checkpoint + "_hf");
    EXPECT_EQ(hf->get("model.embed_tokens.weight", {250, 64}).size(), 250u * 64);
    EXPECT_EQ(hf->get("lm_head.weight", {250, 64}).size(), 250u * 64);
    EXPECT_EQ(hf->get("model.layers.3.self_attn.k_proj.weight", {2 * 8, 64}).size(), 2u * 8 * 64);
  });
}

// Chunks are named layers in the rank files like any stage's, so resharding covers them: saved at
// pp 2 v 2, resumed at pp 4 v 1, pp 1 and tp 2 SP x pp 2 v 2 x dp 2; and the other way round.
TEST(Checkpoint, ReshardsAcrossVirtualPipelines) {
  ASSERT_GE(world().size(), 8);
  expect_resumes(Layout{1, 2, 1, false, 2, 2}, {Layout{1, 4, 1}, Layout{1, 1, 1}, Layout{2, 2, 2, true, 2, 2}});
  expect_resumes(Layout{1, 4, 1}, {Layout{1, 2, 1, false, 2, 2}});
}

// A context-parallel run's checkpoint (its ZeRO-1 state in dp x cp shards) is layout-independent:
// saved at cp 2 x tp 2 x dp 2, resumed in one process, at cp 4 x dp 2 and at tp 2 x pp 2 x dp 2;
// saved in one process, resumed at cp 2 x tp 2 SP x dp 2.
TEST(Checkpoint, ReshardsAcrossContextParallelism) {
  ASSERT_GE(world().size(), 8);
  Layout cp2{2, 1, 2}, cp4{1, 1, 2}, cp2_sp{2, 1, 2, true};
  cp2.cp = 2, cp4.cp = 4, cp2_sp.cp = 2;
  expect_resumes(cp2, {Layout{1, 1, 1}, cp4, Layout{2, 2, 2}});
  expect_resumes(Layout{1, 1, 1}, {cp2_sp});
}

// ZeRO-1 with bf16 gradients on the wire (dp 4), step 1 against one process in fp32: the same
// forward (the loss to 1e-6), and this rank's reduced gradient shard within the roundings each
// element goes through: once before sending, once per pairwise add (log2(4) = 2 levels) and once
// back, 4 roundings of 2^-9 each, in L2 over the shard (so also the grad norm).
TEST(Zero1, Bf16GradientReduceScatterStaysWithinItsRoundings) {
  on_first_ranks(4, [&](Communicator& job) {
    Trainer ref(test_config({1, 1, 1}, 8), self_group());
    RunConfig c = test_config({1, 1, 4}, 2);
    c.parallel.grad_reduce_dtype = "bf16";
    Trainer par(c, job);
    const StepStats r = ref.step(), p = par.step();
    const double bound = 4 * std::ldexp(1.0, -9);
    EXPECT_NEAR(p.loss, r.loss, 1e-6 * r.loss);
    EXPECT_NEAR(p.grad_norm, r.grad_norm, bound * r.grad_norm);
    const Zero1& z = par.optimizer().shard();
    const std::vector<float> got = host_values(z.grad_shard()),
                             all = host_values(ref.optimizer().shard().grad_shard());  // one process: the whole buffer
    double diff = 0, norm = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const size_t at = static_cast<size_t>(z.begin()) + i;  // past the one-process buffer: padding, zero
      const double want = at < all.size() ? all[at] : 0.0;
      diff += (got[i] - want) * (got[i] - want), norm += want * want;
    }
    EXPECT_GT(norm, 0.0);
    EXPECT_LE(std::sqrt(diff), bound * std::sqrt(norm));
    EXPECT_GT(std::sqrt(diff), 0.0) << "the gradients did travel in bf16";
  });
}

}  // namespace
}  // namespace llamatron

// Every rank runs the tests; rank 0 prints the usual report, the other ranks only their failures.
// A failure on any rank fails that process, and so mpirun.
namespace {
class FailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed()) std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const int rank = llamatron::world().rank();
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  return RUN_ALL_TESTS();
}
