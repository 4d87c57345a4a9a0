// Element types: fp32, bf16 (storage only; math is fp32) and int32 (token ids).
#pragma once
#include <cstddef>
#include <cstdint>
#include <bit>
#include <string>

namespace llamatron {

enum class DType : uint8_t { F32, BF16, I32 };

inline size_t dtype_size(DType t) { return t == DType::BF16 ? 2 : 4; }
std::string dtype_name(DType t);

// bfloat16 as the top 16 bits of an IEEE float. Conversion rounds to nearest-even,
// the same rounding cuda_bf16.h's __float2bfloat16 uses, so CPU and GPU agree bit for bit.
struct bf16 {
  uint16_t bits;
  bf16() = default;
  explicit bf16(float f) : bits(from_float(f)) {}
  operator float() const { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
  // Branch-free (a select) so that loops converting to bf16 vectorize.
  static uint16_t from_float(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x40u;
    return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
  }
};

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }

// Storage load/store in fp32: every op computes in fp32 whatever the storage type.
inline float to_f32(float x) { return x; }
inline float to_f32(bf16 x) { return static_cast<float>(x); }
template <typename T> inline T from_f32(float x);
template <> inline float from_f32<float>(float x) { return x; }
template <> inline bf16 from_f32<bf16>(float x) { return bf16(x); }

}  // namespace llamatron
