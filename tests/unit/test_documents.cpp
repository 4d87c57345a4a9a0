// Packed documents (include/llamatron/documents.h): the boundaries and position ids of a window
// worked by hand from Megatron's rule, the targets eod_mask_loss drops, and where data.eod_id
// comes from. The ops and the model with documents are checked against PyTorch in test_ops.cpp
// and test_model.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "expect_error.h"
#include "llamatron/config.h"
#include "llamatron/data.h"
#include "llamatron/documents.h"
#include "llamatron/prepare.h"

namespace llamatron {
namespace {

constexpr int32_t E = 9;  // the eod id of these windows

TEST(Documents, StartsAndPositionsFollowMegatronsRule) {
  // Inputs x[0..6) and one more target: eods at 1, 3 and 4 end documents; an eod as the last
  // input changes nothing inside the window.
  const int32_t rows[2][7] = {{5, E, 3, E, E, 2, 1}, {E, 1, 2, 3, 4, E, 6}};
  DocumentRules r{E, true, true, false};
  const Documents d = find_documents(&rows[0][0], 2, 6, 7, r);
  EXPECT_EQ(d.starts, (std::vector<int32_t>{0, 0, 2, 2, 4, 5, /**/ 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(d.positions, (std::vector<int32_t>{0, 1, 0, 1, 0, 0, /**/ 0, 0, 1, 2, 3, 4}));
  r.reset_attention_mask = false;
  EXPECT_TRUE(find_documents(&rows[0][0], 2, 6, 7, r).starts.empty());
  r.reset_position_ids = false;
  EXPECT_TRUE(find_documents(&rows[0][0], 2, 6, 7, r).positions.empty());
}

TEST(Documents, EodMaskLossDropsTheTargetsOfEodInputs) {
  const int32_t row[7] = {5, E, 3, E, E, 2, kIgnoreIndex};
  DocumentRules r{E, false, false, true};
  std::vector<int> counted;
  for (int t = 0; t < 6; ++t) counted.push_back(r.counts(row, t));
  EXPECT_EQ(counted, (std::vector<int>{1, 0, 1, 0, 0, 0}));  // t = 5: its target is already ignored
  r.eod_mask_loss = false;
  counted.clear();
  for (int t = 0; t < 6; ++t) counted.push_back(r.counts(row, t));
  EXPECT_EQ(counted, (std::vector<int>{1, 1, 1, 1, 1, 0}));
}

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / "llamatron_test_documents" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
  return p.string();
}

TEST(Documents, EodIdDefaultsToTheOnePrepareRecorded) {
  const fs::path d = fresh_dir("prepared");
  PrepareOptions o;
  o.inputs = {write_text(d / "a.txt", "hello"), write_text(d / "b.txt", "world")};
  o.out_dir = (d / "out").string();
  o.megatron = true;
  const PrepareResult pr = prepare_data(o);
  DataConfig data;
  data.source = "llmc";
  data.paths = {(d / "out" / "data_*.bin").string()};
  data.reset_attention_mask = true;
  EXPECT_EQ(document_rules(data).eod_id, kByteEos);
  data.source = "megatron", data.paths = {(d / "out" / "data").string()};
  EXPECT_EQ(document_rules(data).eod_id, kByteEos);
  data.eod_id = 3;  // given: it wins
  EXPECT_EQ(document_rules(data).eod_id, 3);
  data.eod_id = -1, data.reset_attention_mask = false;  // no switch: nothing is looked up
  data.paths = {(d / "nowhere").string()};
  EXPECT_EQ(document_rules(data).eod_id, -1);
}

TEST(Documents, WithoutARecordEodIdMustBeSet) {
  const fs::path d = fresh_dir("unrecorded");
  write_llmc_shard((d / "shard.bin").string(), std::vector<int32_t>(100, 1));
  DataConfig data;
  data.source = "llmc", data.paths = {(d / "shard.bin").string()}, data.eod_mask_loss = true;
  expect_error_all([&] { document_rules(data); }, {"shard.bin", "has no record", "set data.eod_id"});
  data.source = "synthetic", data.paths.clear();
  expect_error_all([&] { document_rules(data); }, {"synthetic", "set data.eod_id"});
  // Two records that disagree.
  write_llmc_shard((d / "other.bin").string(), std::vector<int32_t>(100, 1));
  write_dataset_record(d.string(), "one", "t1", 2, {"shard.bin"});
  write_dataset_record(d.string(), "two", "t2", 3, {"other.bin"});
  data.source = "llmc", data.paths = {(d / "shard.bin").string(), (d / "other.bin").string()};
  expect_error_all([&] { document_rules(data); }, {"different end-of-document ids", "set data.eod_id"});
  data.paths = {(d / "other.bin").string()};
  EXPECT_EQ(document_rules(data).eod_id, 3);
}

TEST(Documents, ConfigChecksTheEodId) {
  RunConfig c;
  c.model.vocab_size = 300;
  c.data.eod_id = 300;
  expect_error_all([&] { c.validate(); }, {"data.eod_id 300", "outside the vocabulary"});
  c.data.eod_id = 256;
  c.validate();
}

}  // namespace
}  // namespace llamatron
