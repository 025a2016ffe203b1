// Python's operators on interpreter values: ==, ordering, `in`, + - * / // % **, ~ and unary minus, with Python's
// rules (bools are ints, int and float mix, str and list concatenate and repeat, / is true division, // and %
// floor). Type errors and integer overflow throw g4::Error at the operator's position; strings never grow past
// the output limit the caller passes.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "g4/text/jinja/lexer.hpp"
#include "g4/text/jinja/value.hpp"

namespace g4::jinja {

inline bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i)
        if (!Equal(a.items()[i], b.items()[i])) return false;
      return true;
    }
    case Value::Kind::kDict: {
      if (a.entries().size() != b.entries().size()) return false;
      for (const auto& [k, v] : a.entries()) {
        const Value* other = b.Find(k);
        if (!other || !Equal(v, *other)) return false;
      }
      return true;
    }
    default:  // namespaces and functions: identity, which values do not keep; never equal
      return false;
  }
}

// <0, 0, >0 as Python orders numbers, strings (by code point, which UTF-8 byte order preserves) and lists.
inline int Compare(const Value& a, const Value& b, Position at) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.as_string().compare(b.as_string()) < 0 ? -1 : a.as_string() == b.as_string() ? 0 : 1;
  if (a.is_list() && b.is_list()) {
    for (size_t i = 0; i < a.items().size() && i < b.items().size(); ++i)
      if (const int c = Compare(a.items()[i], b.items()[i], at); c != 0) return c;
    return a.items().size() < b.items().size() ? -1 : a.items().size() > b.items().size() ? 1 : 0;
  }
  FailAt(at, "'<' not supported between instances of '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

[[noreturn]] inline void FailUndefined(const Value& v, Position at) {
  FailAt(at, "'" + v.undefined_name() + "' is undefined");
}

// `needle in haystack`: a substring, a list element or a dict key.
inline bool Contains(const Value& haystack, const Value& needle, Position at) {
  if (haystack.is_string()) {
    if (!needle.is_string()) FailAt(at, "'in <string>' requires string as left operand, not " + needle.TypeName());
    return haystack.as_string().find(needle.as_string()) != std::string::npos;
  }
  if (haystack.is_list()) {
    for (const Value& x : haystack.items())
      if (Equal(x, needle)) return true;
    return false;
  }
  if (haystack.is_dict()) return needle.is_string() && haystack.Find(needle.as_string()) != nullptr;
  if (haystack.is_undefined()) FailUndefined(haystack, at);
  FailAt(at, "argument of type '" + haystack.TypeName() + "' is not iterable");
}

inline void CheckLength(size_t bytes, size_t limit, Position at) {
  if (bytes > limit) FailAt(at, "a string or list grows past the limit of " + std::to_string(limit) + " bytes");
}

inline Value IntResult(__int128 v, Position at) {
  if (v > INT64_MAX || v < INT64_MIN) FailAt(at, "integer overflow");
  return Value::Int(static_cast<int64_t>(v));
}

// Python's floor division and modulo on ints.
inline int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Repeats a string or list n times (Python's seq * n).
inline Value Repeat(const Value& seq, const Value& count, size_t limit, Position at) {
  const int64_t n = std::max<int64_t>(0, count.as_int());
  if (seq.is_string()) {
    CheckLength(static_cast<size_t>(std::min<__int128>(__int128(seq.as_string().size()) * n, SIZE_MAX)), limit, at);
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value::String(std::move(out));
  }
  CheckLength(static_cast<size_t>(std::min<__int128>(__int128(seq.items().size()) * n * sizeof(Value), SIZE_MAX)),
              limit, at);
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::MakeList(std::move(out));
}

inline Value Arithmetic(const std::string& op, const Value& a, const Value& b, size_t limit, Position at) {
  if (a.is_undefined()) FailUndefined(a, at);
  if (b.is_undefined()) FailUndefined(b, at);
  const bool ints = a.is_number() && b.is_number() && !a.is_float() && !b.is_float();
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      CheckLength(a.as_string().size() + b.as_string().size(), limit, at);
      return Value::String(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      CheckLength((a.items().size() + b.items().size()) * sizeof(Value), limit, at);
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return Value::MakeList(std::move(items));
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && b.is_number() && !b.is_float()) return Repeat(a, b, limit, at);
    if ((b.is_string() || b.is_list()) && a.is_number() && !a.is_float()) return Repeat(b, a, limit, at);
  }
  if (!a.is_number() || !b.is_number())
    FailAt(at, "unsupported operand type(s) for " + op + ": '" + a.TypeName() + "' and '" + b.TypeName() + "'");
  if (ints) {
    const __int128 x = a.as_int(), y = b.as_int();
    if (op == "+") return IntResult(x + y, at);
    if (op == "-") return IntResult(x - y, at);
    if (op == "*") return IntResult(x * y, at);
    if (op == "//" || op == "%") {
      if (y == 0) FailAt(at, "integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) FailAt(at, "integer overflow");
      const int64_t q = FloorDiv(a.as_int(), b.as_int());
      return op == "//" ? Value::Int(q) : Value::Int(a.as_int() - q * b.as_int());
    }
    if (op == "**" && y >= 0) {
      if (x == 0 || x == 1) return Value::Int(y == 0 ? 1 : static_cast<int64_t>(x));
      if (x == -1) return Value::Int(y % 2 ? -1 : 1);
      __int128 r = 1;  // |x| >= 2 overflows within 64 steps
      for (int64_t i = 0; i < y; ++i) {
        r *= x;
        if (r > INT64_MAX || r < INT64_MIN) FailAt(at, "integer overflow");
      }
      return Value::Int(static_cast<int64_t>(r));
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return Value::Float(x + y);
  if (op == "-") return Value::Float(x - y);
  if (op == "*") return Value::Float(x * y);
  if (op == "**") return Value::Float(std::pow(x, y));
  if (y == 0) FailAt(at, "division by zero");
  if (op == "/") return Value::Float(x / y);
  if (op == "//") return Value::Float(std::floor(x / y));
  const double m = std::fmod(x, y);
  return Value::Float(m != 0 && ((m < 0) != (y < 0)) ? m + y : m);  // %
}

inline Value Negate(const Value& v, Position at) {
  if (v.is_float()) return Value::Float(-v.as_double());
  if (v.is_number()) return IntResult(-__int128(v.as_int()), at);
  FailAt(at, "bad operand type for unary -: '" + v.TypeName() + "'");
}

}  // namespace g4::jinja
