// JSON Schema -> grammar text (grammar/gbnf.hpp), for structured output: every document the grammar matches is
// valid JSON that validates against the schema. It may match fewer documents than the schema allows (see below);
// a keyword it cannot honour is refused with a g4::Error that names it.
//
// Supported: type (one or a list of object/array/string/number/integer/boolean/null), properties, required,
// additionalProperties (true/false), enum, const, items (one schema), minItems/maxItems, minLength/maxLength,
// pattern (a simple regex: literals, escapes, . [classes] \d \w \s, groups, |, * + ? {m,n}), format (date, time,
// date-time, uuid), anyOf/oneOf, $ref to #/$defs/NAME or #/definitions/NAME (recursion allowed), and the
// annotations (title, description, default, examples, ...), which are ignored.
// Narrower than the schema, by design: properties come in the schema's order; undeclared properties are never
// written (an object without `properties` is any object); strings that `pattern` constrains use only characters
// that need no JSON escape; oneOf is anyOf (exclusivity is not checked); numbers have at most 16 integer and 16
// fraction digits and 3 exponent digits; whitespace is bounded (a space, or a newline and up to 40 blanks), so a
// model cannot loop on it.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/grammar/gbnf.hpp"

namespace g4 {

namespace json_schema_detail {

// Rules every JSON grammar may use, with the rules each refers to; emitted only when used.
struct Primitive {
  const char* body;
  std::vector<std::string> uses;
};
inline const std::map<std::string, Primitive>& Primitives() {
  static const std::map<std::string, Primitive> p = {
      {"ws", {R"(| " " | "\n" [ \t]{0,40})", {}}},
      {"hex", {R"([0-9a-fA-F])", {}}},
      // \u escapes: no lone surrogate (strict parsers refuse one), pairs written whole
      {"json-char", {R"([^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] hex hex hex | [dD] [0-7] hex hex | [dD] [89abAB] hex hex "\\u" [dD] [c-fC-F] hex hex ) ))", {"hex"}}},
      {"string", {R"("\"" json-char* "\"")", {"json-char"}}},
      {"integer", {R"("-"? ( "0" | [1-9] [0-9]{0,15} ))", {}}},
      {"number", {R"("-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?)", {}}},
      {"boolean", {R"("true" | "false")", {}}},
      {"null", {R"("null")", {}}},
      {"value", {R"(object | array | string | number | boolean | null)", {"object", "array", "string", "number", "boolean", "null"}}},
      {"object", {R"("{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}")", {"ws", "string", "value"}}},
      {"array", {R"("[" ws ( value ws ( "," ws value ws )* )? "]")", {"ws", "value"}}},
      {"date", {R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))", {}}},
      {"time", {R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))", {}}},
      {"date-time", {R"(date "T" time)", {"date", "time"}}},
      {"uuid", {R"(hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12})", {"hex"}}},
  };
  return p;
}

// The same for Gemma 4's tool-call value syntax (the chat template's format_argument): strings between <|"|>
// quotes (the rule "gq") taken literally, bare keys, no whitespace. A string never holds "<|" (which could
// spell a quote out) nor ends in "<"; one with minLength / maxLength holds no "<" at all.
inline const std::map<std::string, Primitive>& GemmaPrimitives() {
  static const std::map<std::string, Primitive> p = [] {
    std::map<std::string, Primitive> m = Primitives();
    m["ws"] = {R"("")", {}};
    m["gemma-char"] = {R"([^<] | "<" [^|<])", {}};
    m["gemma-char1"] = {R"([^<])", {}};  // one code point, for counted lengths
    m["string"] = {R"(gq gemma-char* gq)", {"gq", "gemma-char"}};
    m["gemma-key"] = {R"([A-Za-z_] [A-Za-z0-9_]{0,63})", {}};
    m["object"] = {R"("{" ( gemma-key ":" value ( "," gemma-key ":" value )* )? "}")", {"gemma-key", "value"}};
    m["array"] = {R"("[" ( value ( "," value )* )? "]")", {"value"}};
    m.erase("json-char");
    return m;
  }();
  return p;
}

// A grammar literal for these bytes.
inline std::string Literal(std::string_view bytes) {
  std::string out = "\"";
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// A simple regex (JSON Schema `pattern`) as a grammar expression over a JSON string's ENCODED contents: literal
// characters that need escaping are written escaped; classes and `.` keep only characters that need none.
class PatternCompiler {
 public:
  // json_escape: the string is written as JSON (quotes and backslashes escaped), else literally (Gemma's).
  PatternCompiler(std::string_view p, bool json_escape) : p_(p), json_escape_(json_escape) {}
  std::string Compile() {
    if (!p_.empty() && p_.front() == '^') ++pos_;
    std::string e = Alternatives(0);
    if (pos_ < p_.size() && p_[pos_] == '$' && pos_ + 1 == p_.size()) ++pos_;
    if (pos_ != p_.size()) Error("unexpected '" + std::string(1, p_[pos_]) + "'");
    return e;
  }

 private:
  [[noreturn]] void Error(const std::string& what) const {
    Fail("pattern", what + " at offset " + std::to_string(pos_) + " of \"" + std::string(p_) + "\"");
  }
  std::string Alternatives(int depth) {
    if (depth > 50) Error("groups nested too deeply");
    std::string out = "( " + Sequence(depth);
    while (pos_ < p_.size() && p_[pos_] == '|') {
      ++pos_;
      out += " | " + Sequence(depth);
    }
    return out + " )";
  }
  std::string Sequence(int depth) {
    std::string out;
    while (pos_ < p_.size() && p_[pos_] != '|' && p_[pos_] != ')' && !(p_[pos_] == '$' && pos_ + 1 == p_.size())) {
      std::string atom = Atom(depth);
      if (pos_ < p_.size()) {
        const char q = p_[pos_];
        if (q == '*' || q == '+' || q == '?') {
          ++pos_;
          atom = "( " + atom + " )" + q;
        } else if (q == '{') {
          const size_t close = p_.find('}', pos_);
          if (close == std::string_view::npos) Error("unterminated {m,n}");
          const std::string counts(p_.substr(pos_, close - pos_ + 1));
          for (const char c : counts.substr(1, counts.size() - 2))
            if (!std::isdigit(static_cast<unsigned char>(c)) && c != ',') Error("bad repetition " + counts);
          pos_ = close + 1;
          atom = "( " + atom + " )" + counts;
        }
        if (pos_ < p_.size() && (p_[pos_] == '?' || p_[pos_] == '+')) ++pos_;  // lazy / possessive: same strings
      }
      out += atom + " ";
    }
    return out.empty() ? "\"\"" : out;
  }
  std::string Atom(int depth) {
    const char c = p_[pos_];
    if (c == '(') {
      ++pos_;
      if (p_.substr(pos_, 2) == "?:") pos_ += 2;
      else if (pos_ < p_.size() && p_[pos_] == '?') Error("lookaround and named groups are not supported");
      std::string inner = Alternatives(depth + 1);
      if (pos_ >= p_.size() || p_[pos_] != ')') Error("unclosed group");
      ++pos_;
      return inner;
    }
    if (c == '[') return Class();
    if (c == '.') {
      ++pos_;
      return kSafe;
    }
    if (c == '*' || c == '+' || c == '?' || c == '{' || c == '^' || c == '$') Error(std::string("unexpected '") + c + "'");
    if (c == '\\') {
      ++pos_;
      if (pos_ >= p_.size()) Error("trailing backslash");
      const char e = p_[pos_++];
      if (const char* cls = Shorthand(e)) return std::string("[") + cls + "]";
      if (e == 'D' || e == 'W' || e == 'S') return "( " + std::string("[^") + Shorthand(static_cast<char>(e | 0x20)) + "\"\\\\\\x00-\\x1F] )";
      if (std::isalnum(static_cast<unsigned char>(e)) && e != 'n' && e != 't' && e != 'r') Error(std::string("unsupported escape \\") + e);
      const char lit = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      return json_escape_ ? EncodedChar(lit) : Literal(std::string_view(&lit, 1));
    }
    // One UTF-8 character, literally.
    size_t n = 1;
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0xC0) n = u >= 0xF0 ? 4 : u >= 0xE0 ? 3 : 2;
    const std::string_view ch = p_.substr(pos_, n);
    pos_ += n;
    return n == 1 ? (json_escape_ ? EncodedChar(c) : Literal(std::string_view(&c, 1))) : Literal(ch);
  }
  // A character as the JSON string writes it.
  static std::string EncodedChar(char c) {
    switch (c) {
      case '"': return Literal("\\\"");
      case '\\': return Literal("\\\\");
      case '\n': return Literal("\\n");
      case '\t': return Literal("\\t");
      case '\r': return Literal("\\r");
      default:
        if (static_cast<unsigned char>(c) < 0x20) Error0("control characters are not supported in patterns");
        return Literal(std::string_view(&c, 1));
    }
  }
  [[noreturn]] static void Error0(const std::string& what) { Fail("pattern", what); }
  static const char* Shorthand(char e) {
    switch (e) {
      case 'd': return "0-9";
      case 'w': return "a-zA-Z0-9_";
      case 's': return " ";  // of \s's blanks only the space needs no escape
      default: return nullptr;
    }
  }
  // [...] as a grammar class; negated classes also exclude what would need escaping.
  std::string Class() {
    ++pos_;
    std::string body;
    const bool negated = pos_ < p_.size() && p_[pos_] == '^';
    if (negated) ++pos_;
    bool first = true;
    while (pos_ < p_.size() && (p_[pos_] != ']' || first)) {
      first = false;
      const char c = p_[pos_];
      if (c == '\\') {
        ++pos_;
        if (pos_ >= p_.size()) Error("trailing backslash");
        const char e = p_[pos_++];
        if (const char* cls = Shorthand(e)) { body += cls; continue; }
        if (std::isalnum(static_cast<unsigned char>(e))) Error(std::string("unsupported escape \\") + e + " in a class");
        if (e == '"' || e == '\\') continue;  // would need escaping: left out
        body += '\\';
        body += e;
        continue;
      }
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) { ++pos_; continue; }
      if (c == '-' && !body.empty() && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        const char next = p_[pos_ + 1];
        if (next == '\\' || next == '"' || static_cast<unsigned char>(next) < 0x20) Error("a range ending in an escaped character");
      }
      if (c == '[') body += "\\[";
      else body += c;
      ++pos_;
    }
    if (pos_ >= p_.size()) Error("unterminated class");
    ++pos_;
    if (negated) return "[^" + body + "\"\\\\\\x00-\\x1F]";
    if (body.empty()) Error("a class of only characters that need escaping");
    return "[" + body + "]";
  }

  static constexpr const char* kSafe = "[^\"\\\\\\x00-\\x1F]";
  std::string_view p_;
  bool json_escape_;
  size_t pos_ = 0;
};

class Compiler {
 public:
  // gemma_quote: empty for JSON; else Gemma's value syntax with this grammar expression for <|"|> (the token
  // <|"|> where the vocabulary has it as a control token, else the literal text).
  explicit Compiler(std::string gemma_quote = {}) : gemma_quote_(std::move(gemma_quote)) {}

  // A schema's expression; its $refs resolve in `root` (the document it came from).
  std::string Compile(const nlohmann::ordered_json& schema, const nlohmann::ordered_json& root, const std::string& hint) {
    root_ = &root;
    return Schema(schema, hint, "");
  }
  // The grammar text: root ::= root_body, then every rule compiled so far and the primitives they use.
  std::string Text(const std::string& root_body) const {
    const auto& primitives = gemma() ? GemmaPrimitives() : Primitives();
    std::string text = "root ::= " + root_body + "\n";
    for (const auto& [name, body] : rules_) text += name + " ::= " + body + "\n";
    // Primitives and what they use, transitively.
    std::set<std::string> done;
    std::vector<std::string> todo(used_.begin(), used_.end());
    while (!todo.empty()) {
      const std::string p = todo.back();
      todo.pop_back();
      if (!done.insert(p).second) continue;
      if (p == "gq") {
        text += "gq ::= " + gemma_quote_ + "\n";
        continue;
      }
      const Primitive& prim = primitives.at(p);
      text += p + " ::= " + prim.body + "\n";
      todo.insert(todo.end(), prim.uses.begin(), prim.uses.end());
    }
    return text;
  }

 private:
  using Json = nlohmann::ordered_json;

  bool gemma() const { return !gemma_quote_.empty(); }
  // A string's quotes.
  std::string Quote() { return gemma() ? Use("gq") : R"("\"")"; }
  // A constant value (enum, const) as the output writes it.
  std::string ValueLiteral(const Json& v) {
    if (!gemma()) return Literal(v.dump());
    if (v.is_string()) return Quote() + " " + Literal(v.get_ref<const std::string&>()) + " " + Quote();
    if (v.is_array()) {
      std::string out = Literal("[");
      for (size_t i = 0; i < v.size(); ++i) out += (i ? " \",\" " : " ") + ValueLiteral(v[i]);
      return out + " " + Literal("]");
    }
    if (v.is_object()) {
      std::string out = Literal("{");
      bool first = true;
      for (const auto& [k, x] : Sorted(v)) {
        out += (first ? " " : " \",\" ") + Key(k) + " \":\" " + ValueLiteral(*x);
        first = false;
      }
      return out + " " + Literal("}");
    }
    return Literal(v.is_null() ? "null" : v.dump());
  }
  // An object member's key: JSON's quoted string, or Gemma's bare key (quoted if it is not a plain name).
  std::string Key(const std::string& name) {
    if (!gemma()) return Literal(Json(name).dump());
    const bool bare = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    return bare ? Literal(name) : Quote() + " " + Literal(name) + " " + Quote();
  }
  // Members in the order the output writes them: the schema's, or (Gemma, whose template sorts keys) by name.
  std::vector<std::pair<std::string, const Json*>> Sorted(const Json& object) const {
    std::vector<std::pair<std::string, const Json*>> out;
    for (const auto& [k, v] : object.items()) out.emplace_back(k, &v);
    if (gemma()) std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }

  std::string Use(const std::string& primitive) {
    used_.insert(primitive);
    return primitive;
  }
  [[noreturn]] static void Unsupported(const std::string& path, const std::string& keyword, const std::string& why = "is not supported") {
    Fail("json schema", "keyword '" + keyword + "' " + why + (path.empty() ? "" : " (at " + path + ")"));
  }
  static std::string Path(const std::string& path, const std::string& key) { return path + "/" + key; }

  std::string NewRule(const std::string& hint, const std::string& body) {
    std::string name = "s-";
    for (const char c : hint) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
    if (name.size() > 40) name.resize(40);
    name += "-" + std::to_string(rules_.size());
    rules_.emplace_back(name, body);
    return name;
  }

  // A schema as a grammar expression.
  std::string Schema(const Json& s, const std::string& hint, const std::string& path) {
    if (++depth_ > 64) Fail("json schema", "nested deeper than 64 levels (at " + path + ")");
    struct Leave { int& d; ~Leave() { --d; } } leave{depth_};
    if (s.is_boolean()) {
      if (!s.get<bool>()) Fail("json schema", "the schema 'false' matches nothing (at " + (path.empty() ? "/" : path) + ")");
      return Use("value");
    }
    if (!s.is_object()) Fail("json schema", "a schema must be an object or a boolean (at " + (path.empty() ? "/" : path) + ")");
    static const std::set<std::string> kAnnotations = {"$schema", "$id", "$comment", "title", "description", "default", "examples",
                                                       "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
    static const std::set<std::string> kKnown = {"type", "properties", "required", "additionalProperties", "enum", "const", "items",
                                                 "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "anyOf",
                                                 "oneOf", "$ref"};
    for (const auto& [k, v] : s.items())
      if (!kAnnotations.count(k) && !kKnown.count(k)) Unsupported(path, k);

    if (s.contains("$ref")) {
      Alone(s, "$ref", path);
      return Ref(s["$ref"], path);
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      Alone(s, key, path);
      const Json& list = s[key];
      if (!list.is_array() || list.empty()) Unsupported(path, key, "must be a non-empty array");
      std::string alts;
      for (size_t i = 0; i < list.size(); ++i)
        alts += (i ? " | " : "") + Schema(list[i], hint, Path(path, std::string(key) + "/" + std::to_string(i)));
      return NewRule(hint, alts);
    }
    if (s.contains("const")) {
      Alone(s, "const", path);
      return ValueLiteral(s["const"]);
    }
    if (s.contains("enum")) {
      Alone(s, "enum", path);
      const Json& list = s["enum"];
      if (!list.is_array() || list.empty()) Unsupported(path, "enum", "must be a non-empty array");
      std::string alts;
      for (size_t i = 0; i < list.size(); ++i) alts += (i ? " | " : "") + ValueLiteral(list[i]);
      return NewRule(hint, alts);
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const Json& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const Json& x : t) {
          if (!x.is_string()) Unsupported(path, "type", "must be a string or a list of strings");
          types.push_back(x.get<std::string>());
        }
      } else {
        Unsupported(path, "type", "must be a string or a non-empty list of strings");
      }
    } else if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
      types = {"object"};
    } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
      types = {"array"};
    } else if (s.contains("minLength") || s.contains("maxLength") || s.contains("pattern") || s.contains("format")) {
      types = {"string"};
    } else {
      return Use("value");
    }
    // Keywords of one type are refused when that type is not among the allowed ones (they would be ignored).
    const auto allows = [&](const char* t) { return std::find(types.begin(), types.end(), t) != types.end(); };
    for (const char* k : {"properties", "required", "additionalProperties"})
      if (s.contains(k) && !allows("object")) Unsupported(path, k, "needs type object");
    for (const char* k : {"items", "minItems", "maxItems"})
      if (s.contains(k) && !allows("array")) Unsupported(path, k, "needs type array");
    for (const char* k : {"minLength", "maxLength", "pattern", "format"})
      if (s.contains(k) && !allows("string")) Unsupported(path, k, "needs type string");
    std::string alts;
    for (const std::string& t : types) {
      std::string e;
      if (t == "object") e = Object(s, hint, path);
      else if (t == "array") e = Array(s, hint, path);
      else if (t == "string") e = String(s, path);
      else if (t == "number" || t == "integer" || t == "boolean" || t == "null") e = Use(t);
      else Unsupported(path, "type", "has unknown type '" + t + "'");
      alts += (alts.empty() ? "" : " | ") + e;
    }
    return types.size() == 1 ? alts : NewRule(hint, alts);
  }

  // `key` admits no sibling keywords but annotations.
  static void Alone(const Json& s, const char* key, const std::string& path) {
    static const std::set<std::string> kAnnotations = {"$schema", "$id", "$comment", "title", "description", "default", "examples",
                                                       "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
    for (const auto& [k, v] : s.items())
      if (k != key && !kAnnotations.count(k)) Unsupported(path, k, std::string("beside '") + key + "' is not supported");
  }

  std::string Ref(const Json& ref, const std::string& path) {
    if (!ref.is_string()) Unsupported(path, "$ref", "must be a string");
    const std::string r = ref.get<std::string>();
    const Json& root = *root_;
    for (const char* prefix : {"#", "#/$defs/", "#/definitions/"}) {
      const std::string p = prefix;
      if (p == "#" ? r != p : r.compare(0, p.size(), p) != 0) continue;
      const std::string name = p == "#" ? "" : r.substr(p.size());
      const std::string container = p == "#" ? "" : p.substr(2, p.size() - 3);
      if (p != "#" && (!root.is_object() || !root.contains(container) || !root[container].is_object() || !root[container].contains(name)))
        Unsupported(path, "$ref", "points to '" + r + "', which is not defined");
      const auto key = std::make_pair(root_, r);
      const auto it = refs_.find(key);
      if (it != refs_.end()) return it->second;
      // Named before it is compiled, so that a definition can refer to itself.
      const std::string rule = "def-" + std::to_string(refs_.size());
      refs_[key] = rule;
      const std::string body = p == "#" ? Schema(root, "root", "#") : Schema(root[container][name], name, "#/" + container + "/" + name);
      rules_.emplace_back(rule, body);
      return rule;
    }
    Unsupported(path, "$ref", "'" + r + "' is not a local #/$defs/ or #/definitions/ reference");
  }

  static std::optional<int64_t> Count(const Json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return std::nullopt;
    const Json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) Unsupported(path, key, "must be a non-negative integer");
    if (v.get<int64_t>() > 10000) Unsupported(path, key, "above 10000 is not supported");
    return v.get<int64_t>();
  }
  std::string String(const Json& s, const std::string& path) {
    const auto min = Count(s, "minLength", path), max = Count(s, "maxLength", path);
    if (min && max && *max < *min) Unsupported(path, "maxLength", "is below minLength");
    if (s.contains("pattern")) {
      if (min || max || s.contains("format")) Unsupported(path, "pattern", "together with minLength, maxLength or format is not supported");
      if (!s["pattern"].is_string()) Unsupported(path, "pattern", "must be a string");
      return Quote() + " " + PatternCompiler(s["pattern"].get<std::string>(), !gemma()).Compile() + " " + Quote();
    }
    if (s.contains("format")) {
      if (min || max) Unsupported(path, "format", "together with minLength or maxLength is not supported");
      const std::string f = s["format"].is_string() ? s["format"].get<std::string>() : "";
      if (f != "date" && f != "time" && f != "date-time" && f != "uuid")
        Unsupported(path, "format", "'" + f + "' is not supported (date, time, date-time, uuid are)");
      return Quote() + " " + Use(f) + " " + Quote();
    }
    if (!min && !max) return Use("string");
    const std::string c = Use(gemma() ? "gemma-char1" : "json-char");
    return Quote() + " " + c + "{" + std::to_string(min.value_or(0)) + "," + (max ? std::to_string(*max) : "") + "} " + Quote();
  }

  std::string Array(const Json& s, const std::string& hint, const std::string& path) {
    std::string item = Use("value");
    if (s.contains("items")) {
      if (s["items"].is_array()) Unsupported(path, "items", "as a list (tuple validation) is not supported");
      item = Schema(s["items"], hint + "-item", Path(path, "items"));
    }
    const int64_t min = Count(s, "minItems", path).value_or(0);
    const auto max = Count(s, "maxItems", path);
    if (max && *max < min) Unsupported(path, "maxItems", "is below minItems");
    Use("ws");
    if (max && *max == 0) return "\"[\" ws \"]\"";
    const std::string more = "{" + std::to_string(std::max<int64_t>(min - 1, 0)) + "," + (max ? std::to_string(*max - 1) : "") + "}";
    const std::string list = item + " ws ( \",\" ws " + item + " ws )" + more;
    return "\"[\" ws " + (min == 0 ? "( " + list + " )?" : list) + " \"]\"";
  }

  std::string Object(const Json& s, const std::string& hint, const std::string& path) {
    Use("ws");
    bool closed = false;
    if (s.contains("additionalProperties")) {
      const Json& a = s["additionalProperties"];
      if (!a.is_boolean()) Unsupported(path, "additionalProperties", "as a schema is not supported (true or false are)");
      closed = !a.get<bool>();
    }
    const Json no_props = Json::object();
    const Json& props = s.contains("properties") ? s["properties"] : no_props;
    if (!props.is_object()) Unsupported(path, "properties", "must be an object");
    std::vector<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) Unsupported(path, "required", "must be a list of names");
      for (const Json& r : s["required"]) {
        if (!r.is_string()) Unsupported(path, "required", "must be a list of names");
        required.push_back(r.get<std::string>());
      }
    }
    if (props.empty() && required.empty()) return closed ? "\"{\" ws \"}\"" : Use("object");
    // The declared properties in order, then required names that have no schema (any value).
    std::vector<std::pair<std::string, std::string>> kv;  // (name, "key : value ws" expression)
    std::vector<bool> optional;
    const auto add = [&](const std::string& name, const Json& schema) {
      const std::string value = Schema(schema, hint + "-" + name, Path(path, "properties/" + name));
      kv.emplace_back(name, Key(name) + " ws \":\" ws " + value + " ws");
      optional.push_back(std::find(required.begin(), required.end(), name) == required.end());
    };
    for (const auto& [name, schema] : Sorted(props)) add(name, *schema);
    for (const std::string& r : required) {
      if (props.contains(r)) continue;
      if (closed) Unsupported(path, "required", "names '" + r + "', which additionalProperties false forbids");
      add(r, Json(true));
    }
    // first_i: the members from i on, none written yet; rest_i: the members from i on after one was written.
    const size_t n = kv.size();
    std::string first = "\"\"", rest = "\"\"";
    for (size_t i = n; i-- > 0;) {
      const std::string r = NewRule(hint + "-rest", "\",\" ws " + kv[i].second + " " + rest + (optional[i] ? " | " + rest : ""));
      const std::string f = NewRule(hint + "-first", kv[i].second + " " + rest + (optional[i] ? " | " + first : ""));
      rest = r;
      first = f;
    }
    return "\"{\" ws " + first + " \"}\"";
  }

  std::string gemma_quote_;
  const Json* root_ = nullptr;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::map<std::pair<const Json*, std::string>, std::string> refs_;  // (document, $ref) -> rule
  std::set<std::string> used_;
  int depth_ = 0;
};

}  // namespace json_schema_detail

// The grammar text (grammar/gbnf.hpp syntax) of a JSON Schema; unsupported keywords are a g4::Error naming them.
inline std::string JsonSchemaToGrammarText(const nlohmann::ordered_json& schema) {
  json_schema_detail::Compiler c;
  const std::string root = c.Compile(schema, schema, "root");
  return c.Text(root);
}
inline Grammar JsonSchemaGrammar(const nlohmann::ordered_json& schema) { return ParseGrammar(JsonSchemaToGrammarText(schema)); }

// Any JSON object (OpenAI's response_format json_object).
inline Grammar JsonObjectGrammar() { return JsonSchemaGrammar({{"type", "object"}}); }

}  // namespace g4
