// UTF-8 helpers shared by the tokenizer, its streaming decoder and the stop-string check. Input text is never
// trusted to be valid UTF-8: a byte that does not start a well-formed sequence counts as a one-byte "character",
// which the tokenizer then spells with a byte-fallback piece, so every byte string round-trips.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace g4::utf8 {

// Length of the sequence a lead byte announces (1..4), or 0 for a continuation or invalid lead byte.
inline size_t SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;  // continuation byte, or an overlong 2-byte lead
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

// Decodes the character at s[i]: returns its byte length (>= 1) and stores the code point in *cp. A malformed
// sequence yields length 1 and cp = 0x110000 + byte, a value no real code point has, so it never equals one.
inline size_t Decode(std::string_view s, size_t i, uint32_t* cp) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  const size_t n = SequenceLength(b0);
  if (n == 1) {
    *cp = b0;
    return 1;
  }
  if (n == 0 || i + n > s.size()) {
    *cp = 0x110000 + b0;
    return 1;
  }
  uint32_t c = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      *cp = 0x110000 + b0;
      return 1;
    }
    c = (c << 6) | (b & 0x3F);
  }
  // Overlong 3/4-byte forms, UTF-16 surrogates and values past U+10FFFF are malformed too.
  const bool overlong = (n == 3 && c < 0x800) || (n == 4 && c < 0x10000);
  if (overlong || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) {
    *cp = 0x110000 + b0;
    return 1;
  }
  *cp = c;
  return n;
}

// Whether s is well-formed UTF-8 throughout.
inline bool Valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += Decode(s, i, &cp);
    if (cp >= 0x110000) return false;
  }
  return true;
}

// Number of bytes at the end of s that start a UTF-8 sequence which is still incomplete (0..3): a streaming
// decoder holds exactly these back until the next token completes them.
inline size_t IncompleteTail(std::string_view s) {
  const size_t max_back = s.size() < 3 ? s.size() : 3;
  for (size_t back = 1; back <= max_back; ++back) {
    const auto b = static_cast<uint8_t>(s[s.size() - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation: keep looking for the lead byte
    const size_t n = SequenceLength(b);
    return n > back ? back : 0;
  }
  return 0;
}

}  // namespace g4::utf8
