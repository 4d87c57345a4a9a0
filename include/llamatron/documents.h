// Packed documents (data.eod_id, data.reset_attention_mask, data.reset_position_ids,
// data.eod_mask_loss): Megatron's get_ltor_masks_and_position_ids, without a T x T mask.
// For a window's inputs x[0..T), every i with x[i] = eod ends a document: with
// reset_attention_mask the positions after i attend to no position <= i, with reset_position_ids
// their position ids restart at 0, with eod_mask_loss position i's target is not counted.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llamatron {

constexpr int32_t kIgnoreIndex = -100;

struct DataConfig;

struct DocumentRules {
  int32_t eod_id = -1;
  bool reset_attention_mask = false, reset_position_ids = false, eod_mask_loss = false;
  bool any() const { return reset_attention_mask || reset_position_ids || eod_mask_loss; }
  // Whether target t of a window row (inputs row[0..T), targets row[1..T]) counts in the loss.
  bool counts(const int32_t* row, int64_t t) const {
    return row[t + 1] != kIgnoreIndex && !(eod_mask_loss && row[t] == eod_id);
  }
};

// Per input position of B rows of T inputs (row b at tokens + b * stride; training windows are
// [B, T + 1], stride T + 1), [B * T] each; empty when its switch is off.
struct Documents {
  std::vector<int32_t> starts;     // reset_attention_mask: the first position of the position's document
  std::vector<int32_t> positions;  // reset_position_ids: the RoPE position (t - its document's start)
};
Documents find_documents(const int32_t* tokens, int64_t batch, int64_t seq, int64_t stride, const DocumentRules& rules);

// The rules of a config: data.eod_id, else (a switch on) the EOS that `llamatron data prepare` or
// tools/prepare_hf.py recorded next to every data file (`<name>.dataset.json`); without one it is a
// one-line error asking for data.eod_id. All switches off: eod_id stays as given.
DocumentRules document_rules(const DataConfig& data);

// The record `data prepare` writes beside its output files: the tokenizer and its end-of-document id.
void write_dataset_record(const std::string& out_dir, const std::string& name, const std::string& tokenizer, int32_t eod_id,
                          const std::vector<std::string>& files);

}  // namespace llamatron
