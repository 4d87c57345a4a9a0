// Checkpoints: an interrupted run resumed from its checkpoint is bit-identical to an
// uninterrupted one (CPU backend, bf16 and fp32); corrupt, truncated, missing and mismatched
// checkpoints are refused with a clear error; keep_last prunes; Hugging Face export then import is
// exact. (Resharding across layouts: tests/parallel; kill -9 and SIGTERM: tests/e2e/checkpoint.sh.)
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "llamatron/checkpoint.h"
#include "llamatron/errors.h"
#include "expect_error.h"
#include "llamatron/trainer.h"

namespace llamatron {
namespace {
namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / "llamatron_test_ckpt" / name;
  fs::remove_all(d);
  fs::create_directories(d.parent_path());
  return d.string();
}

RunConfig small(const std::string& precision, const std::string& dir) {
  RunConfig c;
  c.model.vocab_size = 96, c.model.dim = 64, c.model.n_layers = 2, c.model.n_heads = 4, c.model.n_kv_heads = 2;
  c.model.ffn_dim = 96, c.model.max_seq_len = 32;
  c.train.steps = 20, c.train.micro_batch_size = 2, c.train.seq_length = 16, c.train.grad_accum_steps = 2, c.train.threads = 2;
  c.train.precision = precision;
  c.optimizer.lr = 3e-3, c.schedule.warmup_steps = 3;
  c.checkpoint.dir = dir;
  return c;
}

std::vector<char> bytes_of(const Tensor& t) {
  std::vector<char> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), t.nbytes());
  return b;
}

class ExactResume : public testing::TestWithParam<std::string> {};

TEST_P(ExactResume, TwentyStepsEqualTenSaveLoadTen) {
  const std::string dir = fresh_dir("resume_" + GetParam());
  RunConfig straight_cfg = small(GetParam(), "");
  Trainer straight(straight_cfg);
  std::vector<double> want;
  straight.run([&](const StepStats& s) { want.push_back(s.loss); });

  // The same run, interrupted after step 10 (as a crash after a checkpoint would leave it).
  std::vector<double> got;
  {
    Trainer first(small(GetParam(), dir));
    for (int i = 0; i < 10; ++i) got.push_back(first.step().loss);
    save_checkpoint(first);
  }
  Trainer resumed(small(GetParam(), dir));  // checkpoint.resume: auto
  EXPECT_EQ(resumed.progress().step, 10);
  EXPECT_EQ(resumed.progress().data_position, straight.progress().data_position / 2);
  resumed.run([&](const StepStats& s) { got.push_back(s.loss); });
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "step " << i + 1;  // bit for bit
  EXPECT_EQ(bytes_of(resumed.model().params().params_flat()), bytes_of(straight.model().params().params_flat()));
  EXPECT_EQ(bytes_of(resumed.optimizer().exp_avg_sq()), bytes_of(straight.optimizer().exp_avg_sq()));
}

INSTANTIATE_TEST_SUITE_P(Precision, ExactResume, testing::Values("bf16", "fp32"));

TEST(Checkpoint, RefusesCorruptIncompleteAndMismatchedCheckpoints) {
  const std::string dir = fresh_dir("bad");
  RunConfig c = small("fp32", dir);
  c.train.steps = 2;
  Trainer(c).run([](const StepStats&) {});
  const fs::path step = fs::path(dir) / "step_00000002", rank = step / "rank_00000.safetensors";
  ASSERT_TRUE(fs::exists(rank));
  const auto resume = [&] { Trainer t(small("fp32", dir)); };
  const fs::path pristine = fs::path(dir) / "pristine";
  fs::copy(step, pristine);
  const auto copy_step = [&](const std::string& name) {
    const fs::path to = fs::path(dir) / name;
    fs::remove_all(to);
    fs::copy(pristine, to);
    std::ofstream(fs::path(dir) / "latest") << name << "\n";
    return to;
  };
  {  // one flipped byte in the middle of the tensors
    const fs::path d = copy_step("flipped");
    std::fstream f(d / "rank_00000.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(d / "rank_00000.safetensors") / 2));
    f.put('\x7f');
  }
  expect_error(resume, "corrupt");
  fs::resize_file(copy_step("truncated") / "rank_00000.safetensors", 100);
  expect_error(resume, "truncated");
  fs::remove(copy_step("missing") / "rank_00000.safetensors");
  expect_error(resume, "rank_00000.safetensors is missing");
  fs::remove(copy_step("incomplete") / "manifest.json");
  expect_error(resume, "incomplete");
  copy_step("step_00000002");  // intact again
  RunConfig other = small("fp32", dir);
  other.model.dim = 128;
  expect_error([&] { Trainer t(other); }, "model.dim=64 but the config has 128");
  EXPECT_NO_THROW(resume());
}

TEST(Checkpoint, KeepsTheLastN) {
  const std::string dir = fresh_dir("keep");
  RunConfig c = small("fp32", dir);
  c.train.steps = 5, c.checkpoint.every = 1, c.checkpoint.keep_last = 2;
  Trainer(c).run([](const StepStats&) {});
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) steps.push_back(e.path().filename().string());
  std::sort(steps.begin(), steps.end());
  EXPECT_EQ(steps, (std::vector<std::string>{"step_00000004", "step_00000005"}));
  EXPECT_EQ(find_checkpoint(c.checkpoint), (fs::path(dir) / "step_00000005").string());
}

// checkpoint.async: the snapshot is taken at the step (training goes on while it is written), so
// an async checkpoint holds the same bytes as a synchronous one of the same step.
TEST(Checkpoint, AsyncSavesHoldTheStepTheyWereTakenAt) {
  std::string files[2];
  for (const bool async : {false, true}) {
    const std::string dir = fresh_dir(async ? "async" : "sync");
    RunConfig c = small("bf16", dir);
    c.train.steps = 6, c.checkpoint.every = 2, c.checkpoint.keep_last = 0, c.checkpoint.async = async;
    Trainer(c).run([](const StepStats&) {});
    std::ifstream f(fs::path(dir) / "step_00000004" / "rank_00000.safetensors", std::ios::binary);
    files[async] = std::string(std::istreambuf_iterator<char>(f), {});
    EXPECT_EQ(find_checkpoint(c.checkpoint), (fs::path(dir) / "step_00000006").string());
  }
  EXPECT_FALSE(files[0].empty());
  EXPECT_EQ(files[0], files[1]);
}

// export-hf then checkpoint.init_from=hf: the same weights, exactly (fp32); the HF file holds the
// global tensors under their Hugging Face names and config.json the model.
TEST(HuggingFace, ExportThenImportIsExact) {
  for (const bool tied : {false, true}) {
    const std::string dir = fresh_dir(tied ? "hf_tied" : "hf"), out = dir + "_export";
    RunConfig c = small("fp32", dir);
    c.train.steps = 3, c.model.tie_embeddings = tied;
    Trainer trained(c);
    trained.run([](const StepStats&) {});
    export_hf(find_checkpoint(c.checkpoint), out, DType::F32);
    EXPECT_EQ(hf_model_config(out).tie_embeddings, tied);
    EXPECT_EQ(hf_model_config(out).resolved_ffn_dim(), 96);
    RunConfig fresh = small("fp32", "");
    fresh.model.tie_embeddings = tied, fresh.checkpoint.init_from = "hf:" + out;
    Trainer imported(fresh);
    EXPECT_EQ(bytes_of(imported.model().params().params_flat()), bytes_of(trained.model().params().params_flat()));
    EXPECT_EQ(hf_weights(out)->get("model.norm.weight", {64}).size(), 64u);
    if (tied) expect_error([&] { hf_weights(out)->get("lm_head.weight", {96, 64}); }, "no tensor lm_head.weight");
  }
}

}  // namespace
}  // namespace llamatron
