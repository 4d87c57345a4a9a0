#include "llamatron/checked.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "llamatron/errors.h"

namespace llamatron {
using nlohmann::json;

std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t out;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t out;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

std::optional<int64_t> checked_numel(const std::vector<int64_t>& dims) {
  std::optional<int64_t> n = 1;
  for (int64_t d : dims)
    if (!(n = checked_mul(*n, d))) return std::nullopt;
  return n;
}

namespace {
struct DuplicateKey {
  std::string key;
};
struct TooDeep {};
// No file of ours nests more than a few levels; a deeper document is not one of them, and printing
// it (json::dump recurses) could exhaust the stack.
constexpr int kMaxJsonDepth = 32;
}  // namespace

json parse_json_strictly(std::string_view text, const std::string& where) {
  // One set of keys per open object; arrays push nothing, so the stack follows objects only.
  std::vector<std::set<std::string>> open;
  std::vector<bool> is_object;
  const json::parser_callback_t track = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    switch (event) {
      case json::parse_event_t::object_start: open.emplace_back(), is_object.push_back(true); break;
      case json::parse_event_t::array_start: is_object.push_back(false); break;
      case json::parse_event_t::object_end: open.pop_back(), is_object.pop_back(); break;
      case json::parse_event_t::array_end: is_object.pop_back(); break;
      case json::parse_event_t::key:
        if (!open.back().insert(parsed.get<std::string>()).second) throw DuplicateKey{parsed.get<std::string>()};
        break;
      case json::parse_event_t::value: break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), track);
  } catch (const json::exception& e) {
    throw Error(where + ": not valid JSON (" + e.what() + ")");
  } catch (const DuplicateKey& d) {
    throw Error(where + ": the key \"" + d.key + "\" appears twice in one object: keep one");
  } catch (const TooDeep&) {
    throw Error(where + ": nested more than " + std::to_string(kMaxJsonDepth) + " levels deep: not a file of this kind");
  }
}

std::string json_brief(const json& v) {
  // Containers by their size (dumping them recurses), but short lists of plain values as they are.
  const bool plain_list = v.is_array() && v.size() <= 8 && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_primitive(); });
  if (v.is_array() && !plain_list) return "a list of " + std::to_string(v.size()) + (v.size() == 1 ? " entry" : " entries");
  if (v.is_object()) return "an object of " + std::to_string(v.size()) + (v.size() == 1 ? " field" : " fields");
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

namespace {
const char* type_name(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a non-integer number";
  return v.type_name();
}

// "an integer 7", "string \"7\"", "a list of 3 entries": what a value is, for "expected ..." errors.
std::string described(const json& v) { return v.is_structured() ? json_brief(v) : std::string(type_name(v)) + " " + json_brief(v); }

std::string fmt_double(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}
}  // namespace

JsonObject::JsonObject(const json& value, std::string where) : value_(&value), where_(std::move(where)) {
  if (!value.is_object()) throw Error(where_ + ": expected a JSON object, got " + described(value));
}

bool JsonObject::has(const std::string& key) const { return value_->contains(key); }

void JsonObject::fail(const std::string& key, const std::string& problem) const {
  throw Error(where_ + ": \"" + key + "\" " + problem);
}

const json& JsonObject::need(const std::string& key) const {
  auto it = value_->find(key);
  if (it == value_->end()) fail(key, "is missing");
  return *it;
}

const json& JsonObject::raw(const std::string& key) const { return need(key); }

std::optional<int64_t> JsonObject::optional_integer(const std::string& key, int64_t lo, int64_t hi) const {
  if (!has(key) || value_->at(key).is_null()) return std::nullopt;
  return integer(key, lo, hi);
}

int64_t JsonObject::integer(const std::string& key, int64_t lo, int64_t hi) const {
  const json& v = need(key);
  // Unsigned values above int64's range are integers too, just out of range.
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(key, "is " + json_brief(v) + ", expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  if (!v.is_number_integer()) fail(key, "is " + described(v) + ", expected an integer");
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    fail(key, "is " + std::to_string(x) + ", expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

std::optional<double> JsonObject::optional_number(const std::string& key, double lo, double hi) const {
  if (!has(key) || value_->at(key).is_null()) return std::nullopt;
  return number(key, lo, hi);
}

double JsonObject::number(const std::string& key, double lo, double hi) const {
  const json& v = need(key);
  if (!v.is_number()) fail(key, "is " + described(v) + ", expected a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    fail(key, "is " + json_brief(v) + ", expected a number in [" + fmt_double(lo) + ", " + fmt_double(hi) + "]");
  return x;
}

std::optional<bool> JsonObject::optional_boolean(const std::string& key) const {
  if (!has(key) || value_->at(key).is_null()) return std::nullopt;
  return boolean(key);
}

bool JsonObject::boolean(const std::string& key) const {
  const json& v = need(key);
  if (!v.is_boolean()) fail(key, "is " + described(v) + ", expected true or false");
  return v.get<bool>();
}

std::optional<std::string> JsonObject::optional_string(const std::string& key) const {
  if (!has(key) || value_->at(key).is_null()) return std::nullopt;
  return string(key);
}

std::string JsonObject::string(const std::string& key) const {
  const json& v = need(key);
  if (!v.is_string()) fail(key, "is " + described(v) + ", expected a string");
  return v.get<std::string>();
}

std::string JsonObject::one_of(const std::string& key, std::initializer_list<const char*> allowed) const {
  const std::string s = string(key);
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return s;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  fail(key, "is " + json_brief(json(s)) + ", expected one of: " + list);
}

std::vector<int64_t> JsonObject::integers(const std::string& key, size_t min_size, size_t max_size, int64_t lo, int64_t hi) const {
  const json& v = need(key);
  if (!v.is_array() || v.size() < min_size || v.size() > max_size)
    fail(key, "is " + json_brief(v) + ", expected a list of " +
                  (min_size == max_size ? std::to_string(min_size) : std::to_string(min_size) + " to " + std::to_string(max_size)) +
                  " integers");
  std::vector<int64_t> out;
  for (const json& x : v) {
    if (!x.is_number_integer() || (x.is_number_unsigned() && x.get<uint64_t>() > static_cast<uint64_t>(hi)) || x.get<int64_t>() < lo ||
        x.get<int64_t>() > hi)
      fail(key, "is " + json_brief(v) + ": every entry must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out.push_back(x.get<int64_t>());
  }
  return out;
}

JsonObject JsonObject::object(const std::string& key) const {
  const json& v = need(key);
  if (!v.is_object()) fail(key, "is " + described(v) + ", expected an object");
  return JsonObject(v, where_ + ": " + key);
}

const json& JsonObject::array(const std::string& key) const {
  const json& v = need(key);
  if (!v.is_array()) fail(key, "is " + described(v) + ", expected a list");
  return v;
}

void JsonObject::only(std::initializer_list<const char*> known) const {
  for (const auto& [k, v] : value_->items()) {
    bool ok = false;
    for (const char* n : known) ok |= k == n;
    if (!ok) {
      std::string list;
      for (const char* n : known) list += (list.empty() ? "" : ", ") + std::string(n);
      fail(k, "is not a field here (expected only: " + list + ")");
    }
  }
}

}  // namespace llamatron
