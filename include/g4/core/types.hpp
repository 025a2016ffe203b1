// Element types and ggml-compatible quantization blocks. The numeric ids are ggml's (GGUF stores them), so a
// GGUF tensor's type id converts to Type by a checked cast and its bytes are used in place.
#pragma once
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "g4/core/error.hpp"

namespace g4 {

enum class Type : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
  U8 = 1000,  // not a ggml type: safetensors U8/BOOL (golden image pixels)
};

// ---- 16-bit floats -------------------------------------------------------------------------------------

struct f16 { uint16_t bits; };
struct bf16 { uint16_t bits; };
static_assert(sizeof(f16) == 2 && sizeof(bf16) == 2);

inline float F16ToF32(f16 h) {
  // Exact conversion, subnormals included (IEEE half: 1 sign, 5 exponent, 10 mantissa bits).
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1Fu;
  const uint32_t man = h.bits & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: value = man * 2^-24
    const float v = static_cast<float>(man) * 0x1p-24f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(bits);
}

inline f16 F32ToF16(float f) {
  // Round to nearest even; overflow to inf, NaN stays NaN.
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7FFFFFFFu;
  if (absx > 0x7F800000u) return {static_cast<uint16_t>(sign | 0x7E00u)};
  if (absx >= 0x477FF000u) return {static_cast<uint16_t>(sign | 0x7C00u)};  // rounds to >= 65520 -> inf
  if (absx < 0x38800000u) {                                                  // below 2^-14: subnormal half
    const float a = std::bit_cast<float>(absx);
    const uint32_t m = static_cast<uint32_t>(std::nearbyint(a * 0x1p24f));    // nearest-even in default mode
    return {static_cast<uint16_t>(sign | m)};
  }
  uint32_t r = absx + 0xFFFu + ((absx >> 13) & 1u);  // round mantissa to 10 bits, ties to even
  r -= 112u << 23;
  return {static_cast<uint16_t>(sign | (r >> 13))};
}

inline float BF16ToF32(bf16 b) { return std::bit_cast<float>(static_cast<uint32_t>(b.bits) << 16); }

inline bf16 F32ToBF16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return {static_cast<uint16_t>((x >> 16) | 0x40u)};  // quiet NaN
  return {static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16)};
}

// ---- ggml quantization blocks (layouts identical to ggml-common.h) ---------------------------------------

inline constexpr size_t kQK8_0 = 32;
inline constexpr size_t kQK4_0 = 32;
inline constexpr size_t kQK_K = 256;

// value[j] = d * qs[j]
struct BlockQ8_0 {
  f16 d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// value[j] = d * ((qs[j] & 15) - 8) for j < 16; value[j + 16] = d * ((qs[j] >> 4) - 8)
struct BlockQ4_0 {
  f16 d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// 8 sub-blocks of 32; 6-bit scale and min per sub-block packed in `scales`;
// value = d * sc * q - dmin * m with q in 0..15 (nibbles of qs, 64 values per 32 bytes: low then high nibbles).
struct BlockQ4_K {
  f16 d;
  f16 dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// 16 sub-blocks of 16 with int8 scales; 6-bit quants: low 4 bits in ql, high 2 bits in qh; value = d * sc * (q - 32).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  f16 d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// ---- type table ------------------------------------------------------------------------------------------

struct TypeInfo {
  std::string_view name;
  size_t block_elems;  // elements per block (1 for plain types)
  size_t block_bytes;  // bytes per block
  bool is_float_weight;  // usable as a matmul weight
};

inline std::optional<TypeInfo> FindTypeInfo(Type t) {
  switch (t) {
    case Type::F32: return TypeInfo{"F32", 1, 4, true};
    case Type::F16: return TypeInfo{"F16", 1, 2, true};
    case Type::BF16: return TypeInfo{"BF16", 1, 2, true};
    case Type::Q8_0: return TypeInfo{"Q8_0", kQK8_0, sizeof(BlockQ8_0), true};
    case Type::Q4_0: return TypeInfo{"Q4_0", kQK4_0, sizeof(BlockQ4_0), true};
    case Type::Q4_K: return TypeInfo{"Q4_K", kQK_K, sizeof(BlockQ4_K), true};
    case Type::Q6_K: return TypeInfo{"Q6_K", kQK_K, sizeof(BlockQ6_K), true};
    case Type::I8: return TypeInfo{"I8", 1, 1, false};
    case Type::I16: return TypeInfo{"I16", 1, 2, false};
    case Type::I32: return TypeInfo{"I32", 1, 4, false};
    case Type::I64: return TypeInfo{"I64", 1, 8, false};
    case Type::F64: return TypeInfo{"F64", 1, 8, false};
    case Type::U8: return TypeInfo{"U8", 1, 1, false};
  }
  return std::nullopt;
}

inline TypeInfo GetTypeInfo(Type t) {
  auto info = FindTypeInfo(t);
  if (!info) Fail("type", "unknown element type id " + std::to_string(static_cast<uint32_t>(t)));
  return *info;
}

inline std::string_view TypeName(Type t) { return GetTypeInfo(t).name; }

inline std::optional<Type> TypeFromName(std::string_view name) {
  for (Type t : {Type::F32, Type::F16, Type::BF16, Type::Q8_0, Type::Q4_0, Type::Q4_K, Type::Q6_K, Type::I8,
                 Type::I16, Type::I32, Type::I64, Type::F64, Type::U8}) {
    if (GetTypeInfo(t).name == name) return t;
  }
  return std::nullopt;
}

// Converts a ggml type id read from a file; unknown ids (and U8, which ggml lacks) yield nullopt.
inline std::optional<Type> TypeFromGgmlId(uint32_t id) {
  const Type t = static_cast<Type>(id);
  if (t == Type::U8 || !FindTypeInfo(t)) return std::nullopt;
  return t;
}

}  // namespace g4
