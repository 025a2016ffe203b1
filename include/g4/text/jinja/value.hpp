// Values of the Jinja interpreter, with Python's semantics: None, bools, ints, floats, strings, lists (and tuples,
// which differ only in print), dicts (keys
// are strings and keep their insertion order, as Python dicts do), namespaces, callables and Jinja's Undefined.
// Lists and dicts are shared and immutable once built, so copying a value is cheap; only a namespace's attributes
// change. Every container records its nesting depth, which is bounded at construction: recursion over a value
// (printing, comparing, destroying) can then never exhaust the stack, whatever a template builds.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/text/utf8.hpp"

namespace g4::jinja {

using Json = nlohmann::ordered_json;

// Deeper containers are refused; real requests and templates stay far below.
inline constexpr int kMaxValueDepth = 128;

class Value;
struct Call;

struct List {
  std::vector<Value> items;
  int depth = 1;
  bool tuple = false;  // prints as (a, b): tuple literals, dict items
};

struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  int depth = 1;
  const Value* Find(std::string_view key) const;
};

// A macro, a global function or a bound method: positional and keyword arguments in, a value out.
struct Callable {
  std::string name;
  std::function<Value(Call&)> fn;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;  // Undefined
  static Value Undefined(std::string name) {
    Value v;
    v.str_ = std::make_shared<const std::string>(std::move(name));
    return v;
  }
  static Value None() { return Value(Kind::kNone); }
  static Value Bool(bool b) {
    Value v(Kind::kBool);
    v.int_ = b;
    return v;
  }
  static Value Int(int64_t i) {
    Value v(Kind::kInt);
    v.int_ = i;
    return v;
  }
  static Value Float(double d) {
    Value v(Kind::kFloat);
    v.float_ = d;
    return v;
  }
  static Value String(std::string s) {
    Value v(Kind::kString);
    v.str_ = std::make_shared<const std::string>(std::move(s));
    return v;
  }
  static Value MakeList(std::vector<Value> items, bool tuple = false) {
    auto l = std::make_shared<List>();
    l->tuple = tuple;
    for (const Value& x : items) l->depth = std::max(l->depth, x.depth() + 1);
    CheckDepth(l->depth);
    l->items = std::move(items);
    Value v(Kind::kList);
    v.list_ = std::move(l);
    return v;
  }
  static Value MakeDict(std::vector<std::pair<std::string, Value>> items) {
    auto d = std::make_shared<Dict>();
    for (const auto& [k, x] : items) d->depth = std::max(d->depth, x.depth() + 1);
    CheckDepth(d->depth);
    d->items = std::move(items);
    Value v(Kind::kDict);
    v.dict_ = std::move(d);
    return v;
  }
  // A namespace() object: the one mutable value. It may hold no namespace, so no cycle can form.
  static Value MakeNamespace(std::vector<std::pair<std::string, Value>> attrs) {
    Value v = MakeDict(std::move(attrs));
    v.kind_ = Kind::kNamespace;
    return v;
  }
  static Value Function(std::string name, std::function<Value(Call&)> fn) {
    Value v(Kind::kCallable);
    v.callable_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
    return v;
  }
  static Value FromJson(const Json& j, int depth = 0);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }  // ints and bools
  double as_double() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return *str_; }
  const std::string& undefined_name() const { return str_ ? *str_ : EmptyString(); }
  const std::vector<Value>& items() const { return list_->items; }
  const std::vector<std::pair<std::string, Value>>& entries() const { return dict_->items; }
  const Value* Find(std::string_view key) const { return dict_->Find(key); }
  const Callable& callable() const { return *callable_; }
  int depth() const { return list_ ? list_->depth : dict_ ? dict_->depth : 0; }

  // Sets a namespace attribute (set ns.attr = value).
  void SetAttribute(const std::string& key, Value value) {
    Require(!value.ContainsNamespace(), "chat template", "a namespace cannot be stored in a namespace");
    CheckDepth(value.depth() + 1);
    for (auto& [k, v] : dict_->items)
      if (k == key) {
        v = std::move(value);
        return;
      }
    dict_->items.emplace_back(key, std::move(value));
  }
  bool ContainsNamespace() const {
    if (is_namespace()) return true;
    if (list_)
      for (const Value& x : list_->items)
        if (x.ContainsNamespace()) return true;
    if (dict_)
      for (const auto& [k, x] : dict_->items)
        if (x.ContainsNamespace()) return true;
    return false;
  }

  bool Truthy() const;
  std::string Str() const;   // Python's str()
  std::string Repr() const;  // Python's repr()
  std::string TypeName() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  static void CheckDepth(int depth) {
    Require(depth <= kMaxValueDepth, "chat template",
            "value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  }
  static const std::string& EmptyString() {
    static const std::string empty;
    return empty;
  }

  Kind kind_ = Kind::kUndefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> str_;  // kString, or the name of an undefined variable
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;  // kDict and kNamespace
  std::shared_ptr<const Callable> callable_;
};

// The arguments of a call as the interpreter passes them.
struct Call {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  std::string where;  // "line L, column C" of the call, for errors

  // Argument `index` by position or by name, else `fallback`.
  Value Arg(size_t index, std::string_view name, Value fallback = Value()) const {
    if (index < args.size()) return args[index];
    for (const auto& [k, v] : kwargs)
      if (k == name) return v;
    return fallback;
  }
  Value Kwarg(std::string_view name, Value fallback = Value()) const { return Arg(SIZE_MAX, name, fallback); }
};

inline const Value* Dict::Find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

inline Value Value::FromJson(const Json& j, int depth) {
  CheckDepth(depth);
  switch (j.type()) {
    case Json::value_t::null:
      return None();
    case Json::value_t::boolean:
      return Bool(j.get<bool>());
    case Json::value_t::number_integer:
      return Int(j.get<int64_t>());
    case Json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      return u <= uint64_t(INT64_MAX) ? Int(static_cast<int64_t>(u)) : Float(static_cast<double>(u));
    }
    case Json::value_t::number_float:
      return Float(j.get<double>());
    case Json::value_t::string:
      return String(j.get<std::string>());
    case Json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const Json& x : j) items.push_back(FromJson(x, depth + 1));
      return MakeList(std::move(items));
    }
    case Json::value_t::object: {
      std::vector<std::pair<std::string, Value>> items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(it.key(), FromJson(it.value(), depth + 1));
      return MakeDict(std::move(items));
    }
    default:
      Fail("chat template", "binary JSON values are not supported");
  }
}

inline bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0;
    case Kind::kString:
      return !str_->empty();
    case Kind::kList:
      return !list_->items.empty();
    case Kind::kDict:
      return !dict_->items.empty();
    default:
      return true;
  }
}

// Python's repr() of a float: the shortest digits that read back the same, in positional notation for decimal
// exponents -4..15 (with ".0" when integral) and as 1e+16 / 1.5e-05 beyond.
inline std::string PythonFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  const std::string_view sci(buf, r.ptr - buf);  // [-]D[.DDD]e[+-]XX
  const size_t e = sci.find('e');
  const bool negative = sci[0] == '-';
  std::string digits;
  for (const char c : sci.substr(negative, e - negative))
    if (c != '.') digits += c;
  const int exp = std::stoi(std::string(sci.substr(e + 1)));
  std::string out = negative ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + ebuf;
  }
  if (exp < 0) return out + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  const auto point = static_cast<size_t>(exp + 1);
  if (digits.size() <= point) return out + digits + std::string(point - digits.size(), '0') + ".0";
  return out + digits.substr(0, point) + "." + digits.substr(point);
}

// Python's repr() of a string: single quotes unless the text has one and no double quote.
inline std::string PythonStringRepr(std::string_view s) {
  const char q = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos ? '"' : '\'';
  std::string out(1, q);
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (c == q || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (b < 0x20 || b == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", b);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + q;
}

inline std::string Value::Str() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return *str_;
    default:
      return Repr();
  }
}

inline std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return int_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(int_);
    case Kind::kFloat:
      return PythonFloat(float_);
    case Kind::kString:
      return PythonStringRepr(*str_);
    case Kind::kList: {
      std::string out = list_->tuple ? "(" : "[";
      for (size_t i = 0; i < list_->items.size(); ++i) out += (i ? ", " : "") + list_->items[i].Repr();
      if (list_->tuple) return out + (list_->items.size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case Kind::kDict:
    case Kind::kNamespace: {
      std::string out = kind_ == Kind::kNamespace ? "<Namespace {" : "{";
      for (size_t i = 0; i < dict_->items.size(); ++i)
        out += (i ? ", " : "") + PythonStringRepr(dict_->items[i].first) + ": " + dict_->items[i].second.Repr();
      return out + (kind_ == Kind::kNamespace ? "}>" : "}");
    }
    case Kind::kCallable:
      return "<function " + callable_->name + ">";
  }
  return "";
}

inline std::string Value::TypeName() const {
  static const char* const kNames[] = {"Undefined", "NoneType", "bool", "int",       "float",
                                       "str",       "list",     "dict", "Namespace", "function"};
  return kNames[static_cast<int>(kind_)];
}

}  // namespace g4::jinja
