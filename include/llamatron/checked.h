// Reading what a user can edit or a disk can damage (docs/formats.md, "What is checked"): JSON
// parsed strictly (duplicate keys are errors), every field read through one accessor that checks its
// type and range, and arithmetic on sizes that reports overflow instead of wrapping. Every error is
// an Error naming the file, the field, the value and what was expected, never "internal error".
#pragma once
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace llamatron {

// a * b and a + b for non-negative sizes, or nullopt when the result does not fit in int64.
std::optional<int64_t> checked_mul(int64_t a, int64_t b);
std::optional<int64_t> checked_add(int64_t a, int64_t b);
// The product of dims, or nullopt when one is negative or the product does not fit in int64.
std::optional<int64_t> checked_numel(const std::vector<int64_t>& dims);

// JSON text parsed with duplicate object keys rejected (nlohmann would keep the last silently).
// Nesting deeper than 32 levels is rejected too (no file of ours has it). `where` names the file
// in errors: "FILE: not valid JSON (...)", "FILE: the key "x" appears twice in one object".
nlohmann::json parse_json_strictly(std::string_view text, const std::string& where);

// A short rendering of a JSON value for error messages (long values are cut).
std::string json_brief(const nlohmann::json& v);

// One JSON object's fields, each checked on access. `where` says what the object is, e.g.
// "ckpt/step_00000010/trainer.json" or "rank_00001.safetensors: pieces[3]".
class JsonObject {
 public:
  JsonObject(const nlohmann::json& value, std::string where);
  bool has(const std::string& key) const;
  const std::string& where() const { return where_; }
  // Integers: a JSON integer (not 1.5, not "7") in [lo, hi].
  int64_t integer(const std::string& key, int64_t lo, int64_t hi) const;
  std::optional<int64_t> optional_integer(const std::string& key, int64_t lo, int64_t hi) const;
  double number(const std::string& key, double lo, double hi) const;  // finite, in [lo, hi]
  std::optional<double> optional_number(const std::string& key, double lo, double hi) const;
  bool boolean(const std::string& key) const;
  std::optional<bool> optional_boolean(const std::string& key) const;
  std::string string(const std::string& key) const;
  std::optional<std::string> optional_string(const std::string& key) const;
  // A string that must be one of `allowed`.
  std::string one_of(const std::string& key, std::initializer_list<const char*> allowed) const;
  // An array of `min_size`..`max_size` integers, each in [lo, hi].
  std::vector<int64_t> integers(const std::string& key, size_t min_size, size_t max_size, int64_t lo, int64_t hi) const;
  JsonObject object(const std::string& key) const;
  const nlohmann::json& array(const std::string& key) const;
  const nlohmann::json& raw(const std::string& key) const;  // present, any type
  // Keys other than `known` are an error (a misspelt or foreign field is not silently ignored).
  void only(std::initializer_list<const char*> known) const;

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

 private:
  const nlohmann::json& need(const std::string& key) const;
  const nlohmann::json* value_;
  std::string where_;
};

}  // namespace llamatron
