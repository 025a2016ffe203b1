// The filters, tests and methods chat templates use, with Jinja2's and Python's behaviour. tojson is the one
// Hugging Face installs (json.dumps with ensure_ascii=False and keys in their order), not Jinja2's HTML-escaping
// one. A name outside these sets is an error at its position.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "g4/text/jinja/lexer.hpp"
#include "g4/text/jinja/operators.hpp"
#include "g4/text/jinja/python_str.hpp"
#include "g4/text/jinja/value.hpp"

namespace g4::jinja {

// What a builtin needs besides its arguments: where it was called (for errors) and how long strings may grow.
struct BuiltinSite {
  Position at;
  size_t max_bytes;
};

bool ApplyTest(const std::string& name, const Value& v, const Call& call, const BuiltinSite& site);

namespace builtin_detail {

inline const std::string& StringArg(const Value& v, const char* what, const BuiltinSite& site) {
  if (!v.is_string()) FailAt(site.at, std::string(what) + " must be a string, not " + v.TypeName());
  return v.as_string();
}

inline int64_t IntArg(const Value& v, const char* what, const BuiltinSite& site) {
  if (!v.is_number() || v.is_float()) FailAt(site.at, std::string(what) + " must be an integer, not " + v.TypeName());
  return v.as_int();
}

inline size_t Length(const Value& v, const BuiltinSite& site) {
  if (v.is_string()) return Characters(v.as_string()).size();
  if (v.is_list()) return v.items().size();
  if (v.is_dict()) return v.entries().size();
  if (v.is_undefined()) return 0;
  FailAt(site.at, "object of type '" + v.TypeName() + "' has no len()");
}

// The items a filter walks: a list's elements, a dict's keys, a string's characters; nothing for undefined.
inline std::vector<Value> Iterate(const Value& v, const BuiltinSite& site) {
  if (v.is_list()) return v.items();
  std::vector<Value> out;
  if (v.is_dict()) {
    for (const auto& [k, x] : v.entries()) out.push_back(Value::String(k));
  } else if (v.is_string()) {
    for (std::string& c : Characters(v.as_string())) out.push_back(Value::String(std::move(c)));
  } else if (!v.is_undefined()) {
    FailAt(site.at, "'" + v.TypeName() + "' object is not iterable");
  }
  return out;
}

inline Value Pairs(const Value& dict, const BuiltinSite& site) {
  if (dict.is_undefined()) return Value::MakeList({});
  if (!dict.is_dict()) FailAt(site.at, "expected a dict, got " + dict.TypeName());
  std::vector<Value> pairs;
  for (const auto& [k, x] : dict.entries()) pairs.push_back(Value::MakeList({Value::String(k), x}, /*tuple=*/true));
  return Value::MakeList(std::move(pairs));
}

// Jinja's attribute lookup for map/selectattr: "a.b" walks nested dicts; a missing one is undefined.
inline Value Attribute(const Value& v, const std::string& path) {
  Value cur = v;
  static const std::string kDot = ".";
  for (const std::string& part : Split(path, &kDot, -1)) {
    const Value* next = nullptr;
    if (cur.is_dict() || cur.is_namespace()) next = cur.Find(part);
    if (!next && cur.is_list() && !part.empty() && part.find_first_not_of("0123456789") == std::string::npos) {
      const size_t i = std::strtoull(part.c_str(), nullptr, 10);
      if (i < cur.items().size()) next = &cur.items()[i];
    }
    if (!next) return Value::Undefined(part);
    cur = *next;
  }
  return cur;
}

inline std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Python's json.dumps(v, ensure_ascii=False, indent=indent): ", " and ": " without indent, "," and newlines with.
inline void DumpJson(const Value& v, int indent, int level, std::string& out, const BuiltinSite& site) {
  CheckLength(out.size(), site.max_bytes, site.at);
  const auto newline = [&](int lvl) {
    if (indent >= 0) out += "\n" + std::string(static_cast<size_t>(indent * lvl), ' ');
  };
  const char* item_sep = indent >= 0 ? "," : ", ";
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return;
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : PythonFloat(d);
      return;
    }
    case Value::Kind::kString: out += JsonString(v.as_string()); return;
    case Value::Kind::kList:
      if (v.items().empty()) {
        out += "[]";
        return;
      }
      out += "[";
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        DumpJson(v.items()[i], indent, level + 1, out, site);
      }
      newline(level);
      out += "]";
      return;
    case Value::Kind::kDict:
      if (v.entries().empty()) {
        out += "{}";
        return;
      }
      out += "{";
      for (size_t i = 0; i < v.entries().size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        out += JsonString(v.entries()[i].first) + ": ";
        DumpJson(v.entries()[i].second, indent, level + 1, out, site);
      }
      newline(level);
      out += "}";
      return;
    default:
      FailAt(site.at, "Object of type " + v.TypeName() + " is not JSON serializable");
  }
}

// Python's int(): ints and bools as they are, floats truncated, strings parsed (as an int, else as a float).
inline std::optional<int64_t> ToInt(const Value& v) {
  if (v.is_number() && !v.is_float()) return v.as_int();
  const auto from_double = [](double d) -> std::optional<int64_t> {
    if (!std::isfinite(d) || d >= 9.2233720368547758e18 || d < -9.2233720368547758e18) return std::nullopt;
    return static_cast<int64_t>(d);
  };
  if (v.is_float()) return from_double(v.as_double());
  if (!v.is_string()) return std::nullopt;
  std::string s(Strip(v.as_string(), true, true));
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (*end == '\0' && errno == 0) return i;
  const double d = std::strtod(s.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return from_double(d);
}

inline std::string Replace(const std::string& s, const std::string& from, const std::string& to, int64_t count,
                           const BuiltinSite& site) {
  std::string out;
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    const size_t at = from.empty() ? (pos <= s.size() ? pos : std::string::npos) : s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    CheckLength(out.size(), site.max_bytes, site.at);
    if (from.empty()) {  // Python inserts `to` between every character and at both ends
      if (at < s.size()) out += s[at];
      pos = at + 1;
    } else {
      pos = at + from.size();
    }
  }
  if (pos < s.size()) out.append(s, pos);
  return out;
}

// A test named by a filter argument (select('string'), selectattr('x', 'equalto', 1)): its name and arguments
// come from call.args[first...].
inline bool TestFromArgs(const Value& v, const Call& call, size_t first, const BuiltinSite& site) {
  if (call.args.size() <= first) return v.Truthy();
  Call test{{call.args.begin() + static_cast<std::ptrdiff_t>(first) + 1, call.args.end()}, {}, call.where};
  return ApplyTest(StringArg(call.args[first], "test name", site), v, test, site);
}

}  // namespace builtin_detail

Value ApplyFilter(const std::string& name, const Value& v, const Call& call, const BuiltinSite& site);

inline bool ApplyTest(const std::string& name, const Value& v, const Call& call, const BuiltinSite& site) {
  using namespace builtin_detail;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "callable") return v.is_callable();
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return Equal(v, call.Arg(0, "other"));
  if (name == "ne" || name == "!=") return !Equal(v, call.Arg(0, "other"));
  if (name == "in") return Contains(call.Arg(0, "seq"), v, site.at);
  FailAt(site.at, "unknown test '" + name + "'");
}

inline Value ApplyFilter(const std::string& name, const Value& v, const Call& call, const BuiltinSite& site) {
  using namespace builtin_detail;
  if (name == "default" || name == "d") {
    const bool use_default = v.is_undefined() || (call.Arg(1, "boolean", Value::Bool(false)).Truthy() && !v.Truthy());
    return use_default ? call.Arg(0, "default_value", Value::String("")) : v;
  }
  if (name == "safe" || name == "string") return v.is_string() ? v : Value::String(v.Str());
  if (name == "trim") {
    const Value chars = call.Arg(0, "chars", Value::None());
    const std::string s = v.Str();
    if (chars.is_none()) return Value::String(std::string(Strip(s, true, true)));
    return Value::String(std::string(StripChars(s, StringArg(chars, "trim's chars", site), true, true)));
  }
  if (name == "upper") return Value::String(AsciiUpper(v.Str()));
  if (name == "lower") return Value::String(AsciiLower(v.Str()));
  if (name == "length" || name == "count") return Value::Int(static_cast<int64_t>(Length(v, site)));
  if (name == "list") return Value::MakeList(Iterate(v, site));
  if (name == "first" || name == "last") {
    const std::vector<Value> items = Iterate(v, site);
    if (items.empty()) return Value::Undefined(name == "first" ? "first item" : "last item");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<std::string> chars = Characters(v.as_string());
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
      return Value::String(std::move(out));
    }
    std::vector<Value> items = Iterate(v, site);
    std::reverse(items.begin(), items.end());
    return Value::MakeList(std::move(items));
  }
  if (name == "join") {
    const Value attribute = call.Arg(1, "attribute", Value::None());
    const std::string sep = call.Arg(0, "d", Value::String("")).Str();
    std::string out;
    bool first = true;
    for (const Value& x : Iterate(v, site)) {
      if (!first) out += sep;
      first = false;
      out += (attribute.is_none() ? x : Attribute(x, attribute.Str())).Str();
      CheckLength(out.size(), site.max_bytes, site.at);
    }
    return Value::String(std::move(out));
  }
  if (name == "replace") {
    const Value count = call.Arg(2, "count", Value::None());
    return Value::String(Replace(v.Str(), call.Arg(0, "old").Str(), call.Arg(1, "new").Str(),
                                 count.is_none() ? -1 : IntArg(count, "replace's count", site), site));
  }
  if (name == "int") {
    const std::optional<int64_t> i = ToInt(v);
    return i ? Value::Int(*i) : call.Arg(0, "default", Value::Int(0));
  }
  if (name == "items") return Pairs(v, site);
  if (name == "dictsort") {
    const bool case_sensitive = call.Arg(0, "case_sensitive", Value::Bool(false)).Truthy();
    const std::string by = call.Arg(1, "by", Value::String("key")).Str();
    const bool reverse = call.Arg(2, "reverse", Value::Bool(false)).Truthy();
    if (by != "key" && by != "value") FailAt(site.at, "dictsort's 'by' must be 'key' or 'value'");
    std::vector<Value> pairs = Pairs(v, site).items();
    const auto key = [&](const Value& pair) {
      const Value& k = pair.items()[by == "key" ? 0 : 1];
      return k.is_string() && !case_sensitive ? Value::String(AsciiLower(k.as_string())) : k;
    };
    std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& a, const Value& b) {
      const int c = Compare(key(a), key(b), site.at);
      return reverse ? c > 0 : c < 0;
    });
    return Value::MakeList(std::move(pairs));
  }
  if (name == "map") {
    std::vector<Value> out;
    const Value attribute = call.Kwarg("attribute", Value::None());
    for (const Value& x : Iterate(v, site)) {
      if (!attribute.is_none()) {
        Value a = Attribute(x, attribute.Str());
        out.push_back(a.is_undefined() ? call.Kwarg("default", a) : a);
      } else {
        if (call.args.empty()) FailAt(site.at, "map needs a filter name or attribute=");
        Call inner{{call.args.begin() + 1, call.args.end()}, call.kwargs, call.where};
        out.push_back(ApplyFilter(StringArg(call.args[0], "map's filter name", site), x, inner, site));
      }
    }
    return Value::MakeList(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    const bool by_attribute = name.ends_with("attr");
    const bool keep_when = name.starts_with("select");
    std::vector<Value> out;
    for (const Value& x : Iterate(v, site)) {
      const Value subject = by_attribute ? Attribute(x, StringArg(call.Arg(0, "attribute"), "attribute", site)) : x;
      if (TestFromArgs(subject, call, by_attribute ? 1 : 0, site) == keep_when) out.push_back(x);
    }
    return Value::MakeList(std::move(out));
  }
  if (name == "tojson") {
    const Value indent = call.Arg(0, "indent", Value::None());
    std::string out;
    DumpJson(v, indent.is_none() ? -1 : static_cast<int>(std::clamp<int64_t>(IntArg(indent, "indent", site), 0, 64)), 0,
             out, site);
    return Value::String(std::move(out));
  }
  FailAt(site.at, "unknown filter '" + name + "'");
}

// obj.name(...) for str and dict methods; nullopt when obj has no such method.
inline std::optional<Value> CallMethod(const Value& obj, const std::string& name, const Call& call,
                                       const BuiltinSite& site) {
  using namespace builtin_detail;
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    if (name == "split") {
      const Value sep = call.Arg(0, "sep", Value::None());
      const Value maxsplit = call.Arg(1, "maxsplit", Value::Int(-1));
      if (sep.is_string() && sep.as_string().empty()) FailAt(site.at, "empty separator");
      std::vector<Value> parts;
      for (std::string& p : Split(s, sep.is_none() ? nullptr : &StringArg(sep, "split's separator", site),
                                  IntArg(maxsplit, "maxsplit", site)))
        parts.push_back(Value::String(std::move(p)));
      return Value::MakeList(std::move(parts));
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const Value chars = call.Arg(0, "chars", Value::None());
      const bool left = name != "rstrip", right = name != "lstrip";
      return Value::String(std::string(chars.is_none() ? Strip(s, left, right)
                                                       : StripChars(s, StringArg(chars, "chars", site), left, right)));
    }
    if (name == "startswith" || name == "endswith") {
      const Value arg = call.Arg(0, "prefix");
      const std::vector<Value> options = arg.is_list() ? arg.items() : std::vector<Value>{arg};
      for (const Value& o : options) {
        const std::string& affix = StringArg(o, "startswith/endswith argument", site);
        if (name == "startswith" ? s.starts_with(affix) : s.ends_with(affix)) return Value::Bool(true);
      }
      return Value::Bool(false);
    }
    if (name == "upper") return Value::String(AsciiUpper(s));
    if (name == "lower") return Value::String(AsciiLower(s));
    if (name == "replace") {
      const Value count = call.Arg(2, "count", Value::Int(-1));
      return Value::String(Replace(s, StringArg(call.Arg(0, "old"), "old", site),
                                   StringArg(call.Arg(1, "new"), "new", site), IntArg(count, "count", site), site));
    }
    return std::nullopt;
  }
  if (obj.is_dict()) {
    if (name == "get") {
      const Value key = call.Arg(0, "key");
      const Value* found = key.is_string() ? obj.Find(key.as_string()) : nullptr;
      return found ? *found : call.Arg(1, "default", Value::None());
    }
    if (name == "items") return Pairs(obj, site);
    if (name == "keys" || name == "values") {
      std::vector<Value> out;
      for (const auto& [k, x] : obj.entries()) out.push_back(name == "keys" ? Value::String(k) : x);
      return Value::MakeList(std::move(out));
    }
  }
  return std::nullopt;
}

}  // namespace g4::jinja
