// Overflow-safe size arithmetic for everything a file tells us (lengths, offsets, counts, shapes).
// Each helper throws g4::Error naming `where` instead of wrapping around.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "g4/core/error.hpp"

namespace g4 {

inline uint64_t CheckedAdd(uint64_t a, uint64_t b, std::string_view where) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) Fail(where, "size overflow (" + std::to_string(a) + " + " + std::to_string(b) + ")");
  return r;
}

template <typename Where>  // a name, or a callable building one (WhereText)
uint64_t CheckedMul(uint64_t a, uint64_t b, const Where& where) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) Fail(WhereText(where), "size overflow (" + std::to_string(a) + " * " + std::to_string(b) + ")");
  return r;
}

// Product of dims; each dim must be >= 0. Throws on overflow.
inline uint64_t CheckedElementCount(std::span<const int64_t> dims, std::string_view where) {
  uint64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) Fail(where, "negative dimension " + std::to_string(d));
    n = CheckedMul(n, static_cast<uint64_t>(d), where);
  }
  return n;
}

// [offset, offset + len) must lie inside [0, size).
inline void CheckRange(uint64_t offset, uint64_t len, uint64_t size, std::string_view where) {
  const uint64_t end = CheckedAdd(offset, len, where);
  if (end > size)
    Fail(where, "range [" + std::to_string(offset) + ", " + std::to_string(end) + ") lies past the end of the data (" +
                    std::to_string(size) + " bytes)");
}

}  // namespace g4
