// What every fuzz target checks: a parser given any bytes either returns or throws llamatron::Error
// (a one-line message for the user). Any other exception escapes the target, and libFuzzer
// reports it as a crash, as it does memory errors (ASan) and undefined behaviour (UBSan).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "llamatron/errors.h"

namespace llamatron::fuzz {

template <typename F>
void expect_clean(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
  }
}

// What must not fail (re-reading what the writer made of an accepted input): an Error is a crash.
template <typename F>
void must(F&& step) {
  try {
    step();
  } catch (const Error& e) {
    std::fprintf(stderr, "round trip failed: %s\n", e.what());
    std::abort();
  }
}

inline std::string_view bytes(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

}  // namespace llamatron::fuzz
