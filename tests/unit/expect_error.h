// The user-facing error a test expects: an llamatron::Error (not an internal error, not success)
// whose message contains every needle.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "llamatron/errors.h"

namespace llamatron {

template <typename F>
void expect_error_all(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << needles.front();
  } catch (const Error& e) {
    for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

template <typename F>
void expect_error(F&& f, const std::string& needle) {
  expect_error_all(std::forward<F>(f), {needle});
}

}  // namespace llamatron
