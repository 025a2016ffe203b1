// Python's str methods the interpreter needs, on UTF-8 text: whitespace as str.isspace() defines it (the Unicode
// spaces too, since templates trim user text), strip, split, and case mapping of ASCII letters only (other scripts
// keep their case: a known difference from Python that chat templates, which upper-case type names, never meet).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "g4/text/utf8.hpp"

namespace g4::jinja {

inline bool IsPythonSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Length of the whitespace that starts s.
inline size_t LeadingSpace(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    const size_t n = utf8::Decode(s, i, &cp);
    if (!IsPythonSpace(cp)) break;
    i += n;
  }
  return i;
}

// Length of s without its trailing whitespace.
inline size_t WithoutTrailingSpace(std::string_view s) {
  size_t end = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = utf8::Decode(s, i, &cp);
    i += n;
    if (!IsPythonSpace(cp)) end = i;
  }
  return end;
}

// str.strip() / lstrip() / rstrip() without arguments, or with a set of characters to remove.
inline std::string_view Strip(std::string_view s, bool left, bool right) {
  if (right) s = s.substr(0, WithoutTrailingSpace(s));
  if (left) s = s.substr(LeadingSpace(s));
  return s;
}
inline std::string_view StripChars(std::string_view s, std::string_view chars, bool left, bool right) {
  const auto in_set = [&](size_t i, size_t* n) {
    uint32_t cp;
    *n = utf8::Decode(s, i, &cp);
    return chars.find(s.substr(i, *n)) != std::string_view::npos;
  };
  size_t begin = 0, end = s.size();
  if (left)
    for (size_t n; begin < end && in_set(begin, &n);) begin += n;
  if (right) {
    size_t keep = begin;
    for (size_t i = begin, n; i < end; i += n)
      if (!in_set(i, &n)) keep = i + n;
    end = keep;
  }
  return s.substr(begin, end - begin);
}

// str.split(): on runs of whitespace without a separator, else on every occurrence of it; at most maxsplit cuts
// when maxsplit >= 0.
inline std::vector<std::string> Split(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> parts;
  if (sep) {
    size_t start = 0;
    for (size_t at; (maxsplit < 0 || int64_t(parts.size()) < maxsplit) && (at = s.find(*sep, start)) != s.npos;
         start = at + sep->size())
      parts.emplace_back(s.substr(start, at - start));
    parts.emplace_back(s.substr(start));
    return parts;
  }
  s = s.substr(LeadingSpace(s));
  while (!s.empty()) {
    if (maxsplit >= 0 && int64_t(parts.size()) == maxsplit) {
      parts.emplace_back(s);  // the rest as it is, trailing whitespace included
      break;
    }
    size_t i = 0;
    while (i < s.size()) {
      uint32_t cp;
      const size_t n = utf8::Decode(s, i, &cp);
      if (IsPythonSpace(cp)) break;
      i += n;
    }
    parts.emplace_back(s.substr(0, i));
    s = s.substr(i);
    s = s.substr(LeadingSpace(s));
  }
  return parts;
}

inline std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The characters of s (a malformed byte is one character, as in utf8::Decode).
inline std::vector<std::string> Characters(std::string_view s) {
  std::vector<std::string> chars;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = utf8::Decode(s, i, &cp);
    chars.emplace_back(s.substr(i, n));
    i += n;
  }
  return chars;
}

}  // namespace g4::jinja
