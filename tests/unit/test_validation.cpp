// The validation layer for everything read from disk (docs/formats.md, "What is checked"), on bytes
// made here by hand (not by the engine's writers): every bad field is an Error that names the file
// and the field, and the good files parse. The same parsers are fuzzed in tests/fuzz; the CLI's
// behaviour on such files is tests/e2e/hostile_inputs.sh.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>

#include "llamatron/checked.h"
#include "llamatron/checkpoint_format.h"
#include "llamatron/config.h"
#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "expect_error.h"
#include "llamatron/hf_config.h"
#include "llamatron/safetensors.h"

namespace llamatron {
namespace {

template <typename T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}

TEST(Checked, ArithmeticReportsOverflowInsteadOfWrapping) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(checked_mul(int64_t{1} << 31, int64_t{1} << 31), int64_t{1} << 62);
  EXPECT_FALSE(checked_mul(int64_t{1} << 32, int64_t{1} << 31));
  EXPECT_FALSE(checked_add(max, 1));
  EXPECT_FALSE(checked_mul(-1, 2));
  EXPECT_EQ(checked_numel({2, 3, 4}), 24);
  EXPECT_FALSE(checked_numel({int64_t{1} << 40, int64_t{1} << 40}));
  EXPECT_FALSE(checked_numel({4, -1}));
}

TEST(Checked, JsonDuplicateKeysAreErrorsAtAnyDepth) {
  expect_error([] { parse_json_strictly(R"({"a": 1, "a": 2})", "f.json"); }, "f.json: the key \"a\" appears twice");
  expect_error([] { parse_json_strictly(R"({"x": [{"b": 1, "c": {"d": 1, "d": 1}}]})", "f.json"); }, "\"d\" appears twice");
  EXPECT_NO_THROW(parse_json_strictly(R"([{"a": 1}, {"a": 2}])", "f.json"));  // equal keys in different objects
  expect_error([] { parse_json_strictly("{\"a\": ", "f.json"); }, "f.json: not valid JSON");
}

TEST(Checked, FieldsAreTypeAndRangeChecked) {
  const nlohmann::json j = nlohmann::json::parse(R"({"i": 7, "f": 1.5, "s": "7", "big": 18446744073709551615, "b": true, "v": [1, -2]})");
  const JsonObject o(j, "F");
  EXPECT_EQ(o.integer("i", 0, 10), 7);
  expect_error([&] { o.integer("i", 8, 10); }, "F: \"i\" is 7, expected an integer in [8, 10]");
  expect_error([&] { o.integer("f", 0, 10); }, "\"f\" is a non-integer number 1.5, expected an integer");
  expect_error([&] { o.integer("s", 0, 10); }, "\"s\" is string \"7\", expected an integer");
  expect_error([&] { o.integer("big", 0, std::numeric_limits<int64_t>::max()); }, "\"big\" is 18446744073709551615");
  expect_error([&] { o.integer("b", 0, 1); }, "expected an integer");
  expect_error([&] { o.integer("missing", 0, 1); }, "\"missing\" is missing");
  expect_error([&] { o.integers("v", 2, 2, 0, 10); }, "every entry must be an integer in [0, 10]");
  expect_error([&] { o.only({"i"}); }, "is not a field here");
  expect_error([] { JsonObject(nlohmann::json::array(), "F"); }, "F: expected a JSON object, got []");
  expect_error([] { parse_json_strictly(std::string(100, '[') + std::string(100, ']'), "deep.json"); }, "deep.json: nested more than 32 levels");
}

// The FNV specification's test vectors (FNV-1a, 64 bits): an independent reference for the
// manifest's checksum.
TEST(Checksum, IsStandardFnv1a64) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
}

// ---- safetensors ----------------------------------------------------------------------------

std::string st_file(const std::string& header, const std::string& data) {
  std::string h = header;
  h.append((8 - h.size() % 8) % 8, ' ');
  return le<uint64_t>(h.size()) + h + data;
}

TEST(SafetensorsHeader, AcceptsAWellFormedFile) {
  const std::string file =
      st_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [8, 12]},
                 "__metadata__": {"format": "pt"}})",
              le(1.0f) + le(2.0f) + std::string("\x80\x3f\x00\x40", 4));
  const SafetensorsFile st = parse_safetensors(file, "m.safetensors");
  EXPECT_EQ(st.at("a").to_f64(), (std::vector<double>{1, 2}));
  EXPECT_EQ(st.at("b").to_f64(), (std::vector<double>{1, 2}));
  EXPECT_EQ(st.metadata.at("format"), "pt");
}

TEST(SafetensorsHeader, RejectsEveryInconsistency) {
  const std::string f4 = le(1.0f);
  const auto bad = [&](const std::string& header, const std::string& data, const std::string& needle) {
    expect_error([&] { parse_safetensors(st_file(header, data), "m.safetensors"); }, needle);
  };
  expect_error([&] { parse_safetensors(le<uint64_t>(1000) + "{}", "m.safetensors"); }, "header length 1000 is impossible");
  expect_error([&] { parse_safetensors(le<uint64_t>(uint64_t{1} << 63), "m.safetensors"); }, "impossible");
  bad(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", f4,
      "\"a\" appears twice");
  bad(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", f4, "\"shape\"");
  bad(R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}})", f4, "too many elements");
  bad(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.5, 4]}})", f4, "\"data_offsets\"");
  bad(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}})", f4, "outside the data section");
  bad(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", f4, "needs 8");
  bad(R"({"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 4]}})", f4, "does not know");
  bad(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}})", f4, "\"extra\" is not a field here");
  bad(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}})",
      f4 + f4, "overlaps");
  bad(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", f4 + f4, "hole");
  bad(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", f4 + f4, "extra bytes after the last tensor");
  bad(R"({"__metadata__": {"pieces": 3}})", "", "expected a string");
  bad(R"(["not", "an", "object"])", "", "not a JSON object");
}

// ---- checkpoint metadata ---------------------------------------------------------------------

ModelConfig tiny_model() {
  ModelConfig m;
  m.vocab_size = 20, m.dim = 8, m.n_layers = 1, m.n_heads = 2, m.n_kv_heads = 1, m.ffn_dim = 16, m.max_seq_len = 8;
  return m;
}

// A rank file holding one piece of model.norm.weight [8] (or what `piece` says), its three tensors
// of `values` floats.
SafetensorsFile rank_file_with(const std::string& piece, int64_t values) {
  std::string header = "{";
  int64_t at = 0;
  for (const char* kind : {"exp_avg", "exp_avg_sq", "master"}) {
    header += "\"" + std::string(kind) + "/model.norm.weight/0\": {\"dtype\": \"F32\", \"shape\": [" + std::to_string(values) +
              "], \"data_offsets\": [" + std::to_string(at) + ", " + std::to_string(at + 4 * values) + "]}, ";
    at += 4 * values;
  }
  nlohmann::json meta = {{"pieces", "[" + piece + "]"}};
  header += "\"__metadata__\": " + meta.dump() + "}";
  return parse_safetensors(st_file(header, std::string(static_cast<size_t>(at), '\0')), "rank_00000.safetensors");
}

TEST(CheckpointPiecesCheck, EveryFieldAgainstTheModelAndTheFile) {
  const auto targets = param_targets(tiny_model(), 2);
  const std::string ok = R"({"param": "model.norm.weight", "local_shape": [8], "global_shape": [8], "split_dim": -1, "split_offset": 0, "begin": 0, "end": 8})";
  const CheckpointPieces good({rank_file_with(ok, 8)}, targets, "ck");
  EXPECT_EQ(good.assemble("master", "model.norm.weight").size(), 8u);
  expect_error([&] { good.assemble("master", "model.embed_tokens.weight"); }, "has no model.embed_tokens.weight");
  const auto bad = [&](const std::string& piece, int64_t values, const std::string& needle) {
    expect_error([&] { CheckpointPieces({rank_file_with(piece, values)}, targets, "ck"); }, needle);
  };
  const auto with = [&](const std::string& key, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(ok);
    j[key] = nlohmann::json::parse(value);
    return j.dump();
  };
  bad(with("global_shape", "[9]"), 8, "\"global_shape\" is [9], but the model's model.norm.weight is [8]");
  bad(with("end", "4294967296"), 8, "\"end\" is 4294967296, expected an integer in [1, 8]");
  bad(with("end", "4"), 8, "expected F32 [4] (end - begin)");
  bad(with("begin", "8"), 8, "\"begin\" is 8");
  bad(with("split_dim", "0"), 8, "\"split_dim\" is 0, expected an integer in [-1, -1]");
  bad(with("split_offset", "3"), 8, "an unsplit piece is the whole [8]");
  bad(with("local_shape", "[8, 1]"), 8, "\"local_shape\"");
  bad(with("param", "\"lm_head.bias\""), 8, "not a parameter of this model");
  bad(with("begin", "\"0\""), 8, "expected an integer");
  EXPECT_NO_THROW(CheckpointPieces({rank_file_with(ok + ", " + ok, 8)}, targets, "ck"));  // replicas: the same piece twice
  expect_error([&] { CheckpointPieces({rank_file_with("{}", 8)}, targets, "ck"); }, "\"param\" is missing");
}

TEST(CheckpointPiecesCheck, SplitSlicesMustFitTheirTensor) {
  const auto targets = param_targets(tiny_model(), 2);  // q_proj [8, 8]; the embedding [20, 8] with 236 padding rows at tp 2
  const auto file = [&](const std::string& param, const std::string& local, int dim, int64_t offset, int64_t n) {
    const nlohmann::json p = {{"param", param}, {"local_shape", nlohmann::json::parse(local)}, {"global_shape", targets.at(param).global_shape},
                              {"split_dim", dim}, {"split_offset", offset}, {"begin", 0}, {"end", n}};
    std::string header = "{";
    int64_t at = 0;
    for (const char* kind : {"exp_avg", "exp_avg_sq", "master"}) {
      header += "\"" + std::string(kind) + "/" + param + "/0\": {\"dtype\": \"F32\", \"shape\": [" + std::to_string(n) + "], \"data_offsets\": [" +
                std::to_string(at) + ", " + std::to_string(at + 4 * n) + "]}, ";
      at += 4 * n;
    }
    header += "\"__metadata__\": " + nlohmann::json({{"pieces", "[" + p.dump() + "]"}}).dump() + "}";
    return parse_safetensors(st_file(header, std::string(static_cast<size_t>(at), '\0')), "rank_00001.safetensors");
  };
  const std::string Q = "model.layers.0.self_attn.q_proj.weight", E = "model.embed_tokens.weight";
  EXPECT_NO_THROW(CheckpointPieces({file(Q, "[4, 8]", 0, 4, 32)}, targets, "ck"));
  EXPECT_NO_THROW(CheckpointPieces({file(E, "[128, 8]", 0, 128, 1024)}, targets, "ck"));  // all padding: rank 1 of tp 2
  expect_error([&] { CheckpointPieces({file(Q, "[4, 8]", 0, 5, 32)}, targets, "ck"); }, "does not fit in");
  expect_error([&] { CheckpointPieces({file(Q, "[4, 8]", 0, int64_t{1} << 40, 32)}, targets, "ck"); }, "\"split_offset\"");
  expect_error([&] { CheckpointPieces({file(Q, "[8, 4]", 0, 0, 32)}, targets, "ck"); }, "does not fit in");
  expect_error([&] { CheckpointPieces({file(E, "[128, 8]", 0, 129, 1024)}, targets, "ck"); }, "(+236 padding rows)");
  expect_error([&] { CheckpointPieces({file(Q, "[4, 8]", 0, 0, 32)}, targets, "ck").assemble("master", Q); }, "parts of " + Q + " are in no rank file");
}

TEST(TrainerStateCheck, RangesAndConsistency) {
  TrainerState s;
  s.step = 10, s.tokens_seen = 1000, s.data_position = 50, s.optimizer_steps = 9, s.precision = "bf16";
  RunConfig c;
  for (const auto& [k, v] : config_values(c))
    if (k.rfind("model.", 0) == 0) s.model[k] = v;
  const std::string good = trainer_state_json(s);
  EXPECT_EQ(parse_trainer_state(good, "t.json").data_position, 50);
  const auto with = [&](const std::string& key, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(good);
    j[key] = nlohmann::json::parse(value);
    return j.dump();
  };
  expect_error([&] { parse_trainer_state(with("data_position", "-1"), "t.json"); }, "t.json: \"data_position\" is -1");
  expect_error([&] { parse_trainer_state(with("data_position", "1e20"), "t.json"); }, "\"data_position\" is a non-integer number");
  expect_error([&] { parse_trainer_state(with("data_position", "1001"), "t.json"); }, "expected an integer in [0, 1000]");
  expect_error([&] { parse_trainer_state(with("step", "-1"), "t.json"); }, "\"step\" is -1");
  expect_error([&] { parse_trainer_state(with("optimizer_steps", "11"), "t.json"); }, "\"optimizer_steps\" is 11, expected an integer in [0, 10]");
  expect_error([&] { parse_trainer_state(with("precision", "\"fp16\""), "t.json"); }, "\"precision\" is \"fp16\", expected one of: bf16, fp32");
  expect_error([&] { parse_trainer_state(with("version", "2"), "t.json"); }, "\"version\" is 2");
  expect_error([&] { parse_trainer_state(with("format", "\"other\""), "t.json"); }, "\"format\"");
  expect_error([&] { parse_trainer_state(with("layout", R"({"tensor_parallel": 0, "pipeline_parallel": 1, "data_parallel": 1})"), "t.json"); },
               "\"tensor_parallel\" is 0");
  expect_error([&] { parse_trainer_state(with("surprise", "1"), "t.json"); }, "\"surprise\" is not a field here");
  nlohmann::json j = nlohmann::json::parse(good);
  j["model"]["model.n_heads"] = "0";
  expect_error([&] { parse_trainer_state(j.dump(), "t.json"); }, "t.json: model: invalid model config");
}

TEST(ManifestCheck, NamesCountsAndChecksums) {
  const std::string files = R"({"name": "trainer.json", "bytes": 5, "fnv1a64": "00000000000000aa"}, {"name": "config.yaml", "bytes": 5, "fnv1a64": "00000000000000bb"})";
  const auto m = [&](const std::string& extra) { return R"({"step": 3, "files": [)" + files + extra + "]}"; };
  EXPECT_EQ(parse_manifest(m(R"(, {"name": "rank_00000.safetensors", "bytes": 9, "fnv1a": "0123456789abcdef"})"), "m.json").files[2].legacy_checksum, true);
  expect_error([&] { parse_manifest(m(R"(, {"name": "../rank_00000.safetensors", "bytes": 9, "fnv1a64": "0123456789abcdef"})"), "m.json"); },
               "expected rank_RRRRR.safetensors");
  expect_error([&] { parse_manifest(m(R"(, {"name": "rank_00001.safetensors", "bytes": 9, "fnv1a64": "0123456789abcdef"})"), "m.json"); },
               "a rank file is missing");
  expect_error([&] { parse_manifest(m(R"(, {"name": "rank_00000.safetensors", "bytes": 9, "fnv1a64": "xyz"})"), "m.json"); }, "16 hex digits");
  expect_error([&] { parse_manifest(m(""), "m.json"); }, "lists no rank files");
  expect_error([&] { parse_manifest(m(R"(, {"name": "trainer.json", "bytes": 5, "fnv1a64": "00000000000000aa"})"), "m.json"); }, "listed twice");
}

// ---- token data ------------------------------------------------------------------------------

std::string idx_file(uint64_t sequences, uint64_t documents, const std::vector<int32_t>& lengths, const std::vector<int64_t>& starts) {
  std::string s = std::string("MMIDIDX\0\0", 9) + le<uint64_t>(1) + le<uint8_t>(8) + le(sequences) + le(documents);
  int64_t at = 0;
  for (int32_t n : lengths) s += le(n);
  for (int32_t n : lengths) s += le(at), at += 2 * n;
  for (int64_t d : starts) s += le(d);
  return s;
}

TEST(MegatronIndexCheck, CountsOffsetsAndDocuments) {
  const MegatronIndex ok = parse_megatron_index(idx_file(2, 3, {3, 4}, {0, 1, 2}), 14, "d.idx", "d.bin");
  EXPECT_EQ(ok.tokens, 7);
  EXPECT_EQ(ok.documents, 3);
  expect_error([] { parse_megatron_index(idx_file((uint64_t{1} << 62) + 1, 3, {3, 4}, {0, 1, 2}), 14, "d.idx", "d.bin"); },
               "d.idx: header promises 4611686018427387905 sequences");
  expect_error([] { parse_megatron_index(idx_file(2, uint64_t{1} << 61, {3, 4}, {0, 1, 2}), 14, "d.idx", "d.bin"); }, "do not fill");
  expect_error([] { parse_megatron_index(idx_file(2, 3, {3, 4}, {0, 1, 3}), 14, "d.idx", "d.bin"); }, "document index 2 is 3");
  expect_error([] { parse_megatron_index(idx_file(2, 3, {3, 4}, {0, -1, 2}), 14, "d.idx", "d.bin"); }, "document index 1 is -1");
  expect_error([] { parse_megatron_index(idx_file(2, 3, {3, 4}, {1, 1, 2}), 14, "d.idx", "d.bin"); }, "document index 0 is 1");
  expect_error([] { parse_megatron_index(idx_file(2, 4, {3, 4}, {0, 2, 1, 2}), 14, "d.idx", "d.bin"); }, "without decreasing");
  expect_error([] { parse_megatron_index(idx_file(2, 0, {3, 4}, {}), 14, "d.idx", "d.bin"); }, "no document index entries");
  expect_error([] { parse_megatron_index(idx_file(2, 3, {3, std::numeric_limits<int32_t>::max()}, {0, 1, 2}), 14, "d.idx", "d.bin"); },
               "more than");
}

TEST(LlmcHeaderCheck, MagicVersionAndSize) {
  const auto shard = [](int32_t magic, int32_t version, int32_t n, size_t payload) {
    std::string s(1024, '\0');
    std::memcpy(s.data(), &magic, 4), std::memcpy(s.data() + 4, &version, 4), std::memcpy(s.data() + 8, &n, 4);
    return s + std::string(payload, '\0');
  };
  EXPECT_EQ(parse_llmc_header(shard(20240801, 7, 3, 12), 1036, "s.bin").token_bytes, 4);
  expect_error([&] { parse_llmc_header(shard(20240520, 1, -1, 0), 1024, "s.bin"); }, "header says -1 tokens");
  expect_error([&] { parse_llmc_header(shard(20240520, 1, 5, 8), 1032, "s.bin"); }, "truncated");
  expect_error([&] { parse_llmc_header(shard(20240520, 7, 0, 0), 1024, "s.bin"); }, "unsupported llm.c shard version 7");
  expect_error([&] { parse_llmc_header("short", 5, "s.bin"); }, "shorter than the 1024-byte");
}

// ---- Hugging Face config and the run config ---------------------------------------------------

TEST(HfConfigCheck, OnlyWhatTheEngineComputes) {
  const nlohmann::json good = {{"model_type", "llama"}, {"vocab_size", 64}, {"hidden_size", 32}, {"intermediate_size", 64},
                               {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5}};
  EXPECT_EQ(parse_hf_config(good.dump(), "c.json").n_kv_heads, 2);
  const auto with = [&](const std::string& key, const nlohmann::json& v) {
    nlohmann::json j = good;
    if (v.is_discarded()) j.erase(key);
    else j[key] = v;
    return j.dump();
  };
  const nlohmann::json drop(nlohmann::json::value_t::discarded);
  expect_error([&] { parse_hf_config(with("num_attention_heads", 0), "c.json"); }, "\"num_attention_heads\" is 0");
  expect_error([&] { parse_hf_config(with("num_attention_heads", 5), "c.json"); }, "not divisible by num_attention_heads");
  expect_error([&] { parse_hf_config(with("model_type", "mistral"), "c.json"); }, "\"model_type\" is \"mistral\"");
  expect_error([&] { parse_hf_config(with("model_type", drop), "c.json"); }, "\"model_type\" is missing");
  expect_error([&] { parse_hf_config(with("hidden_act", "gelu"), "c.json"); }, "\"hidden_act\"");
  expect_error([&] { parse_hf_config(with("attention_bias", true), "c.json"); }, "\"attention_bias\"");
  expect_error([&] { parse_hf_config(with("mlp_bias", true), "c.json"); }, "\"mlp_bias\"");
  expect_error([&] { parse_hf_config(with("rope_scaling", {{"type", "linear"}}), "c.json"); }, "RoPE scaling");
  expect_error([&] { parse_hf_config(with("head_dim", 16), "c.json"); }, "\"head_dim\"");
  expect_error([&] { parse_hf_config(with("hidden_size", "32"), "c.json"); }, "\"hidden_size\" is string \"32\"");
  expect_error([&] { parse_hf_config(with("tie_word_embeddings", 1), "c.json"); }, "expected true or false");
  expect_error([&] { parse_hf_config(with("vocab_size", -3), "c.json"); }, "\"vocab_size\" is -3");
  expect_error([&] { parse_hf_index(R"({"weight_map": {"a": "../x.safetensors"}})", "i.json"); }, "expected a .safetensors file in the same directory");
  EXPECT_EQ(parse_hf_index(R"({"weight_map": {"a": "p1.safetensors", "b": "p2.safetensors", "c": "p1.safetensors"}})", "i.json").size(), 2u);
}

TEST(RunConfigCheck, BoundsThatKeepSizesFromOverflowing) {
  expect_error([] { parse_config("train: {steps: 1}\ntrain: {seed: 2}\n"); }, "config section 'train' appears twice");
  expect_error([] { parse_config("train:\n  steps: 1\n  steps: 2\n"); }, "config key 'train.steps' appears twice");
  expect_error([] { parse_config("? [a, b]\n: 1\n"); }, "names must be plain words");
  expect_error([] { parse_config("", {"model.ffn_dim=-1"}); }, "model.ffn_dim is -1");
  expect_error([] { parse_config("", {"train.threads=-1"}); }, "train.threads must be >= 0");
  expect_error([] { parse_config("", {"model.dim=2147483648"}); }, "model.dim is 2147483648, expected 1 to 2147483647");
  expect_error([] { parse_config("", {"model.vocab_size=2147483647", "model.dim=2147483600", "model.n_heads=4", "model.n_kv_heads=4", "model.ffn_dim=64"}); },
               "more than 2^48 parameters");
  expect_error([] { parse_config("", {"train.global_batch_size=2000000000000"}); }, "2^40 tokens per step");
  expect_error([] { parse_config("", {"train.micro_batch_size=4611686018427387904"}); }, "2^40 tokens per step");
  expect_error([] { parse_config("", {"model.n_layers=2147483647", "model.dim=2", "model.n_heads=1"}); }, "model.n_layers is 2147483647");
  expect_error([] { parse_config("", {"model.vocab_size=2000000000", "model.dim=100000", "model.n_heads=2", "model.n_kv_heads=2"}); }, "more than 2^48 parameters");
  expect_error([] { parse_config("", {"model.ffn_dim_multiplier=1e-9"}); }, "the FFN width is 0");
  expect_error([] { parse_config("", {"model.n_layers=1", "parallel.pipeline_parallel=3",
                                      "parallel.pipeline_layers=9223372036854775807,9223372036854775807,3"}); },
               "parallel.pipeline_layers must list 3 positive layer counts");
  expect_error([] { parse_config("train: {steps: 10}\ntrain.steps: 20\n"); }, "config key 'train.steps' appears twice");
  EXPECT_NO_THROW(parse_config("", {"model.ffn_dim=0"}));  // 0 is Meta's rule
}

// YAML aliases repeat a node without repeating its text: a small file must not expand without bound.
TEST(RunConfigCheck, AliasesCannotInflateAConfig) {
  std::string yaml = "data:\n  paths: &big [";
  for (int i = 0; i < 100000; ++i) yaml += i ? ",x" : "x";
  yaml += "]\n";
  for (int i = 0; i < 400; ++i) yaml += "k" + std::to_string(i) + ": *big\n";
  expect_error([&] { parse_config(yaml); }, "more than 64 MiB");
}

TEST(RunConfigCheck, StringsSurviveTheResolvedConfigYaml) {
  const RunConfig c = parse_config("", {"checkpoint.dir=/tmp/a: b #c", "logging.metrics_file=\"quoted\" and 'single'", "data.paths=x: y,z#w",
                                        "checkpoint.resume=NULL"});
  const RunConfig back = parse_config(config_to_yaml(c));
  EXPECT_EQ(back.checkpoint.dir, "/tmp/a: b #c");
  EXPECT_EQ(back.checkpoint.resume, "NULL");
  EXPECT_EQ(back.logging.metrics_file, "\"quoted\" and 'single'");
  EXPECT_EQ(back.data.paths, (std::vector<std::string>{"x: y", "z#w"}));
}

}  // namespace
}  // namespace llamatron
