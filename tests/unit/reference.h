// Access to the PyTorch reference cases written by tests/reference/make_cases.py (a CTest fixture
// runs it into $LLAMATRON_REF_DIR before the unit tests), and the error measure every test uses.
#pragma once
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "llamatron/safetensors.h"

namespace llamatron::test {

// Tolerances. fp32 mode: the reference is float64, so what is left is fp32 rounding, amplified
// at most modestly by the op: 1e-5 of the tensor's scale (the bound).
// bf16 mode: one bf16 rounding is a relative error of at most 2^-8 (round to nearest with 8
// significant bits); a result that passed through r roundings stored in bf16 is held to r * 2^-8 of the
// tensor's scale, so each test states how many bf16 roundings its result went through.
constexpr double kFp32Tol = 1e-5;
constexpr double kBf16Ulp = 1.0 / 256;

struct RefCase {
  SafetensorsFile file;
  DType dtype;  // storage dtype of the case: F32 or BF16
  bool bf16() const { return dtype == DType::BF16; }
  Tensor input(const std::string& name) const {
    const auto& e = file.at(name);
    return e.to_tensor(e.dtype == "I32" ? DType::I32 : dtype);
  }
  Tensor input_f32(const std::string& name) const { return file.at(name).to_tensor(DType::F32); }
  std::vector<double> ref(const std::string& name) const { return file.at(name).to_f64(); }
  Shape shape(const std::string& name) const { return file.at(name).shape; }
  double meta(const std::string& key) const { return std::stod(file.metadata.at(key)); }
  std::string meta_str(const std::string& key) const { return file.metadata.at(key); }
  // Tolerance for a result that went through `roundings` bf16 roundings (ignored in fp32 mode).
  double tol(int roundings) const { return bf16() ? roundings * kBf16Ulp : kFp32Tol; }
};

inline std::string ref_dir() {
  const char* d = std::getenv("LLAMATRON_REF_DIR");
  return d ? d : "ref_cases";
}

inline RefCase load_case(const std::string& stem, const std::string& prec) {
  RefCase c{read_safetensors(ref_dir() + "/" + stem + "_" + prec + ".safetensors"),
            prec == "bf16" ? DType::BF16 : DType::F32};
  return c;
}

inline std::vector<double> to_f64(const Tensor& t) {
  std::vector<double> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DType::F32: out[i] = t.data<float>()[i]; break;
      case DType::BF16: out[i] = static_cast<float>(t.data<bf16>()[i]); break;
      case DType::I32: out[i] = t.data<int32_t>()[i]; break;
    }
  }
  return out;
}

// max |a - r| / max |r|: the error relative to the tensor's scale (elementwise relative error is
// meaningless for entries near zero, which every gradient has).
inline double scaled_error(const std::vector<double>& a, const std::vector<double>& r) {
  EXPECT_EQ(a.size(), r.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < r.size(); ++i) {
    num = std::max(num, std::abs(a[i] - r[i]));
    den = std::max(den, std::abs(r[i]));
  }
  return den > 0 ? num / den : num;
}

#define EXPECT_MATCHES(actual_tensor, c, name, tolerance)                                     \
  do {                                                                                        \
    const double err_ = ::llamatron::test::scaled_error(::llamatron::test::to_f64(actual_tensor), \
                                                       (c).ref(name));                        \
    EXPECT_LE(err_, (tolerance)) << (name) << " scaled error " << err_;                       \
    RecordProperty(std::string("err_") + (name), ::testing::PrintToString(err_));                      \
  } while (0)

}  // namespace llamatron::test
