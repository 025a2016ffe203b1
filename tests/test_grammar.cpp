// Structured output (issue #32): the grammar text syntax, the byte recogniser against independent truth (code point
// ranges, hand-written matches), the JSON Schema compiler (random valid documents: every prefix's next byte is
// allowed; unsupported keywords name themselves), the token mask against a token-by-token check, and the demo
// model sampled at temperature 1 under schemas: every answer parses (nlohmann) and validates (a validator written
// here, not the grammar), through Session (plain and speculative) and the Scheduler; tool calls in Gemma's syntax
// (random walks through the mask, parsed by a reader written here) and the lazy trigger around them.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/grammar/gbnf.hpp"
#include "g4/grammar/json_schema.hpp"
#include "g4/grammar/model_grammar.hpp"
#include "g4/grammar/recognizer.hpp"
#include "g4/grammar/token_matcher.hpp"
#include "g4/session/scheduler.hpp"
#include "g4/session/session.hpp"
#include "support/demo_model.hpp"
#include "support/test_data.hpp"

namespace g4_test_grammar {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using Json = nlohmann::ordered_json;

namespace {

std::shared_ptr<const Grammar> Parsed(std::string_view text) { return std::make_shared<const Grammar>(ParseGrammar(text)); }

// Whole-text match; with `every_byte`, also that each byte was allowed where it came (the property test).
bool Matches(GrammarRecognizer& r, std::string_view s) {
  int32_t st = r.Start();
  for (const char c : s) {
    st = r.Next(st, static_cast<uint8_t>(c));
    if (st == GrammarRecognizer::kDead) return false;
  }
  return r.Accepting(st);
}
bool Matches(std::string_view grammar, std::string_view s) {
  GrammarRecognizer r(Parsed(grammar));
  return Matches(r, s);
}

std::string Utf8(uint32_t c) {
  std::string o;
  if (c < 0x80) {
    o += static_cast<char>(c);
  } else if (c < 0x800) {
    o += static_cast<char>(0xC0 | c >> 6);
    o += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    o += static_cast<char>(0xE0 | c >> 12);
    o += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    o += static_cast<char>(0xF0 | c >> 18);
    o += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    o += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    o += static_cast<char>(0x80 | (c & 0x3F));
  }
  return o;
}

// ---- an independent JSON Schema validator for the subset the compiler supports ----

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool Valid(const Json& v, const Json& s, const Json& root) {
  if (s.is_boolean()) return s.get<bool>();
  if (s.contains("$ref")) {
    const std::string r = s["$ref"];
    return Valid(v, root["$defs"][r.substr(std::string("#/$defs/").size())], root);
  }
  if (s.contains("anyOf")) {
    for (const Json& a : s["anyOf"])
      if (Valid(v, a, root)) return true;
    return false;
  }
  if (s.contains("oneOf")) {
    int n = 0;
    for (const Json& a : s["oneOf"]) n += Valid(v, a, root);
    return n == 1;
  }
  if (s.contains("const")) return v == s["const"];
  if (s.contains("enum")) {
    for (const Json& e : s["enum"])
      if (v == e) return true;
    return false;
  }
  if (s.contains("type")) {
    std::vector<std::string> types;
    if (s["type"].is_string()) types.push_back(s["type"]);
    else for (const Json& t : s["type"]) types.push_back(t);
    bool ok = false;
    for (const std::string& t : types) {
      ok |= (t == "object" && v.is_object()) || (t == "array" && v.is_array()) || (t == "string" && v.is_string()) ||
            (t == "number" && v.is_number()) || (t == "integer" && v.is_number_integer()) || (t == "boolean" && v.is_boolean()) ||
            (t == "null" && v.is_null());
    }
    if (!ok) return false;
  }
  if (v.is_object()) {
    if (s.contains("required"))
      for (const Json& r : s["required"])
        if (!v.contains(r.get<std::string>())) return false;
    for (const auto& [k, x] : v.items()) {
      if (s.contains("properties") && s["properties"].contains(k)) {
        if (!Valid(x, s["properties"][k], root)) return false;
      } else if (s.contains("additionalProperties") && s["additionalProperties"] == false) {
        return false;
      }
    }
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
    if (s.contains("items"))
      for (const Json& x : v)
        if (!Valid(x, s["items"], root)) return false;
  }
  if (v.is_string()) {
    const std::string& str = v.get_ref<const std::string&>();
    if (s.contains("minLength") && CodePoints(str) < s["minLength"].get<size_t>()) return false;
    if (s.contains("maxLength") && CodePoints(str) > s["maxLength"].get<size_t>()) return false;
    if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) return false;
    if (s.contains("format")) {
      static const std::map<std::string, std::string> re = {
          {"date", R"(^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$)"},
          {"uuid", R"(^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$)"},
          {"date-time", R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$)"},
          {"time", R"(^\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$)"}};
      if (!std::regex_match(str, std::regex(re.at(s["format"])))) return false;
    }
  }
  return true;
}

// The schemas the sampling tests use: every string and array is bounded, so every match is bounded in length.
const char* kSchemas[] = {
    // nested objects, optional members
    R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"},
        "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                    "required": ["city"], "additionalProperties": false}},
        "required": ["name", "address"], "additionalProperties": false})",
    // arrays of enums, const
    R"({"type": "object", "properties": {"kind": {"const": "list"}, "colors": {"type": "array", "items": {"enum": ["red", "green", "blue", 7, null]},
        "minItems": 1, "maxItems": 4}}, "required": ["kind", "colors"], "additionalProperties": false})",
    // anyOf, numbers with exponent, booleans, type lists
    R"({"type": "array", "maxItems": 5, "items": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": ["null", "integer"]},
        {"type": "string", "format": "date"}]}})",
    // escaped and unicode strings, $ref with recursion, uuid
    R"({"$defs": {"node": {"type": "object", "properties": {"label": {"type": "string", "minLength": 1, "maxLength": 6},
        "id": {"type": "string", "format": "uuid"}, "kids": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}},
        "required": ["label"], "additionalProperties": false}}, "$ref": "#/$defs/node"})",
};

// Random valid documents for the property test, built from the schema by the test itself.
class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  Json Value(const Json& s, const Json& root, int depth = 0) {
    if (s.contains("$ref")) return Value(root["$defs"][s["$ref"].get<std::string>().substr(8)], root, depth + 1);
    if (s.contains("anyOf")) return Value(s["anyOf"][Pick(s["anyOf"].size())], root, depth);
    if (s.contains("const")) return s["const"];
    if (s.contains("enum")) return s["enum"][Pick(s["enum"].size())];
    std::string type = "any";
    if (s.contains("type")) type = s["type"].is_string() ? s["type"].get<std::string>() : s["type"][Pick(s["type"].size())].get<std::string>();
    if (type == "any") {
      static const char* kAny[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
      type = kAny[Pick(depth > 3 ? 2 : 7) + (depth > 3 ? 2 : 0)];
    }
    if (type == "object") {
      Json o = Json::object();
      if (!s.contains("properties")) {
        for (size_t i = Pick(4); i-- > 0;) o[Str(0, 6)] = Value(Json::object(), root, depth + 1);
        return o;
      }
      const Json req = s.value("required", Json::array());
      for (const auto& [k, sub] : s["properties"].items())
        if (std::find(req.begin(), req.end(), Json(k)) != req.end() || Pick(2)) o[k] = Value(sub, root, depth + 1);
      return o;
    }
    if (type == "array") {
      const size_t lo = s.value("minItems", 0), hi = std::min<size_t>(s.value("maxItems", 4), depth > 3 ? lo : 4);
      Json a = Json::array();
      for (size_t i = lo + Pick(hi - lo + 1); i-- > 0;) a.push_back(Value(s.value("items", Json::object()), root, depth + 1));
      return a;
    }
    if (type == "string") {
      if (s.contains("pattern")) return std::to_string(10000 + Pick(90000));
      if (s.value("format", "") == "date") return "2024-0" + std::to_string(1 + Pick(9)) + "-2" + std::to_string(Pick(10));
      if (s.value("format", "") == "uuid") return "123e4567-e89b-12d3-a456-42661417400" + std::to_string(Pick(10));
      return Str(s.value("minLength", 0), s.value("maxLength", 8));
    }
    if (type == "integer") return static_cast<int64_t>(rng_() % 2000000) - 1000000;
    if (type == "number") {
      static const char* kNumbers[] = {"0", "-0.5", "3.25e10", "1E-7", "-12.0e+2", "123456789", "6.02214076e23"};
      return Json::parse(kNumbers[Pick(7)]);
    }
    if (type == "boolean") return Pick(2) == 1;
    return nullptr;
  }
  size_t Pick(size_t n) { return n ? static_cast<size_t>(rng_() % n) : 0; }

 private:
  // Code points from every UTF-8 length, quotes, backslashes and control characters (written as escapes).
  std::string Str(size_t min, size_t max) {
    static const uint32_t kChars[] = {'a', 'Z', ' ', '"', '\\', '\n', '\t', 0x01, 0x1F, '/', 0xE9, 0x3B1, 0x4E2D, 0x1F600, 0x10FFFF};
    std::string s;
    for (size_t n = min + Pick(max - min + 1); n-- > 0;) s += Utf8(kChars[Pick(std::size(kChars))]);
    return s;
  }
  std::mt19937_64 rng_;
};

}  // namespace

TEST_CASE("grammar text: literals, classes, groups, repetition and recursion match what they say") {
  const char* g = R"(# a comment line
root   ::= "{" ws pair ( "," ws pair )* "}"
pair   ::= key ":" ws val     # trailing comment
key    ::= [a-z_] [a-z0-9_]{0,3}
val    ::= "true" | "false" | num | list
num    ::= "-"? [0-9]+ ( "." [0-9]+ )?
list   ::= "[" ( val ( "," val )* )? "]"
ws     ::= [ \t\n]{0,2}
)";
  for (const char* ok : {"{a:true}", "{a:true, b2:-1.5}", "{x_1:[true,[false,[]],3]}", "{abcd:\n\ttrue}"}) CHECK_MESSAGE(Matches(g, ok), ok);
  for (const char* bad : {"{}", "{abcde:true}", "{a:tru}", "{a:true,}", "{a:   true}", "{a:[true,]}", "{a:1.}", "{A:true}"})
    CHECK_MESSAGE(!Matches(g, bad), bad);
  CHECK(Matches(R"(root ::= "a"{3})", "aaa"));
  CHECK(!Matches(R"(root ::= "a"{3})", "aa"));
  CHECK(Matches(R"(root ::= "ab"{2,} "c")", "ababababc"));
  CHECK(!Matches(R"(root ::= "ab"{2,} "c")", "abc"));
  CHECK(Matches(R"(root ::= ("x" | "yz")? "!")", "yz!"));
  CHECK(Matches(R"(root ::= ("x" | "yz")? "!")", "!"));
  CHECK(Matches("root ::= \"a\" |\n  \"b\"", "b"));                     // a rule goes on after a trailing |
  CHECK(Matches("root ::= (\"a\"\n  \"b\")", "ab"));                     // and inside a group
  CHECK(Matches(R"(root ::= "\x41\u00e9\U0001F600\n\"\\")", "A\xC3\xA9\xF0\x9F\x98\x80\n\"\\"));
  CHECK(Matches(R"(root ::= "é" [α-ω]+)", "éβγ"));
  CHECK(Matches(R"(root ::= "" "a")", "a"));
}

TEST_CASE("either grammar: matches what one of its two grammars matches, each keeping its own rules") {
  // The same rule names in both (x), different meanings: each side must keep its own.
  const Grammar a = ParseGrammar("root ::= \"a\" x\nx ::= [0-9]+");
  const Grammar b = ParseGrammar("root ::= \"b\" x \"!\"\nx ::= [a-z] | \"(\" x \")\"");
  GrammarRecognizer r(std::make_shared<const Grammar>(EitherGrammar(a, b)));
  for (const char* ok : {"a1", "a0123", "bq!", "b((z))!"}) CHECK_MESSAGE(Matches(r, ok), ok);
  for (const char* bad : {"", "a", "ab", "b1!", "bq", "a1!", "b((z)!", "b!", "c"}) CHECK_MESSAGE(!Matches(r, bad), bad);
}

TEST_CASE("grammar text: syntax errors name the line and column") {
  const std::pair<const char*, const char*> cases[] = {
      {"root ::= \"a\"\nx ::= [b-a]", "grammar line 2, column 10: range end below its start"},
      {"root ::= \"abc", "grammar line 1, column 10: unterminated literal"},
      {"root ::= x\n", "grammar line 1, column 10: rule 'x' is used but never defined"},
      {"root ::= \"a\"\n  root ::= \"b\"", "grammar line 2, column 3: rule 'root' is defined twice"},
      {"root ::= \"a\" )", "grammar line 1, column 14: unexpected ')'"},
      {"root ::= ( \"a\"", "grammar line 1, column 10: '(' is never closed"},
      {"root = \"a\"", "grammar line 1, column 6: expected '::=' after rule name 'root'"},
      {"root ::= * \"a\"", "grammar line 1, column 10: '*' with nothing before it to repeat"},
      {"root ::= \"a\"{2,1}", "grammar line 1, column 13: repetition {2,1} has max < min"},
      {"root ::= \"a\"{3", "grammar line 1, column 15: expected '}' to close the repetition count"},
      {"root ::= \"\\q\"", "grammar line 1, column 11: unknown escape '\\q'"},
      {"root ::= [^", "grammar line 1, column 10: unterminated character class"},
      {"root ::= \"\\uD800\"", "grammar line 1, column 11: escape is not a Unicode scalar value"},
      {"start ::= \"a\"", "grammar: no rule 'root' (the start rule)"},
  };
  for (const auto& [text, message] : cases) CHECK_THROWS_WITH_AS(ParseGrammar(text), message, Error);
  CHECK_THROWS_WITH_AS(ParseGrammar("root ::= root \"a\" | \"b\""), doctest::Contains("rule 'root' is left-recursive"), Error);
  CHECK_THROWS_WITH_AS(ParseGrammar("root ::= (\"a\"?)*"), doctest::Contains("left-recursive"), Error);
  CHECK_THROWS_WITH_AS(ParseGrammar("root ::= \"a\"{10001}"), doctest::Contains("above 10000"), Error);
}

TEST_CASE("grammar classes: every code point is matched exactly when the class says, as valid UTF-8") {
  GrammarRecognizer range(Parsed(R"(root ::= [a-c\u00e0-\u00ff\u0800-\u0fff\U0001F000-\U0001F0FF])"));
  GrammarRecognizer negated(Parsed(R"(root ::= [^a\u0100-\uffff])"));
  GrammarRecognizer any(Parsed("root ::= ."));
  const auto in_range = [](uint32_t c) {
    return (c >= 'a' && c <= 'c') || (c >= 0xE0 && c <= 0xFF) || (c >= 0x800 && c <= 0xFFF) || (c >= 0x1F000 && c <= 0x1F0FF);
  };
  size_t checked = 0;
  for (uint32_t c = 0; c <= 0x10FFFF; c += (c < 0x11000 ? 1 : 97)) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    const std::string s = Utf8(c);
    CHECK_MESSAGE(Matches(range, s) == in_range(c), "U+", c);
    CHECK_MESSAGE(Matches(negated, s) == (c != 'a' && (c < 0x100 || c > 0xFFFF)), "U+", c);
    CHECK_MESSAGE(Matches(any, s), "U+", c);
    ++checked;
  }
  CHECK(checked > 70000);
  // Surrogates, overlong forms and bytes past U+10FFFF are never matched, even by "any character".
  for (const char* bad : {"\xED\xA0\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xF0\x80\x80\x80", "\xF4\x90\x80\x80", "\x80", "\xFF"}) {
    CHECK(!Matches(any, bad));
    CHECK(!Matches(negated, bad));
  }
}

TEST_CASE("json schema: random valid documents are matched, and every prefix's next byte is allowed") {
  std::vector<Json> schemas;
  for (const char* s : kSchemas) schemas.push_back(Json::parse(s));
  schemas.push_back(Json::object());  // any value (json_object's values)
  for (size_t k = 0; k < schemas.size(); ++k) {
    const Json& schema = schemas[k];
    GrammarRecognizer r(std::make_shared<const Grammar>(JsonSchemaGrammar(schema)));
    Generator gen(1234 + k);
    for (int doc = 0; doc < 150; ++doc) {
      const Json v = gen.Value(schema, schema);
      REQUIRE(Valid(v, schema, schema));  // the generator's own check
      // Compact, indented, and ASCII-escaped forms (\uXXXX, surrogate pairs for U+10000 and above).
      const std::string text = v.dump(doc % 3 == 1 ? 2 : -1, ' ', doc % 3 == 2);
      int32_t st = r.Start();
      size_t i = 0;
      for (; i < text.size(); ++i) {
        const int32_t next = r.Next(st, static_cast<uint8_t>(text[i]));
        if (next == GrammarRecognizer::kDead) break;
        st = next;
      }
      CHECK_MESSAGE(i == text.size(), "schema ", k, ": byte ", i, " refused in ", text);
      if (i == text.size()) CHECK_MESSAGE(r.Accepting(st), "schema ", k, ": not a whole match: ", text);
    }
  }
  // Not matched: what the schema forbids.
  GrammarRecognizer r(std::make_shared<const Grammar>(JsonSchemaGrammar(Json::parse(kSchemas[0]))));
  for (const char* bad : {R"({"address": {"city": "x"}})", R"({"name": "a", "address": {"city": "x"}, "extra": 1})",
                          R"({"name": "abcdefghijklmn", "address": {"city": "x"}})", R"({"name": "a", "address": {"city": "x", "zip": "1234"}})",
                          R"({"name": "a\ud800", "address": {"city": "x"}})", R"({"name": "a", "age": 1.5, "address": {"city": "x"}})"})
    CHECK_MESSAGE(!Matches(r, bad), bad);
}

TEST_CASE("json schema: unsupported or malformed keywords are errors that name them") {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type": "integer", "minimum": 3})", "keyword 'minimum' is not supported"},
      {R"({"allOf": [{"type": "string"}]})", "keyword 'allOf' is not supported"},
      {R"({"type": "object", "patternProperties": {}})", "keyword 'patternProperties' is not supported"},
      {R"({"type": "array", "uniqueItems": true})", "keyword 'uniqueItems' is not supported"},
      {R"({"type": "string", "format": "email"})", "keyword 'format' 'email' is not supported"},
      {R"({"type": "object", "additionalProperties": {"type": "string"}})", "keyword 'additionalProperties' as a schema"},
      {R"({"$ref": "#/$defs/missing"})", "keyword '$ref' points to '#/$defs/missing'"},
      {R"({"$ref": "http://example.com/s.json"})", "is not a local #/$defs/"},
      {R"({"type": "strng"})", "unknown type 'strng'"},
      {R"({"type": "array", "items": [{"type": "string"}]})", "keyword 'items' as a list"},
      {R"({"type": "string", "minLength": 5, "maxLength": 2})", "keyword 'maxLength' is below minLength"},
      {R"({"type": "integer", "minLength": 2})", "keyword 'minLength' needs type string"},
      {R"j({"type": "string", "pattern": "(?=a)"})j", "lookaround"},
      {R"({"type": "string", "pattern": "\\1"})", "unsupported escape \\1"},
      {R"({"anyOf": [], "type": "string"})", "keyword 'type' beside 'anyOf'"},
      {R"(false)", "the schema 'false' matches nothing"},
      {R"({"properties": {"a": {"not": {}}}})", "keyword 'not' is not supported (at /properties/a)"},
  };
  for (const auto& [schema, message] : cases)
    CHECK_THROWS_WITH_AS(JsonSchemaGrammar(Json::parse(schema)), doctest::Contains(message), Error);
}

TEST_CASE("json schema: pattern strings match the regex (std::regex as the judge)") {
  const char* patterns[] = {"^[A-Z]{2}-\\d{3}$", "^(ab|cd)+x?$", "^\\w+@\\w+\\.(com|org)$", "^a.c$", "^[^0-9]{2,4}$", "^\\$\\d+(\\.\\d\\d)?$"};
  const char* samples[] = {"AB-123", "A-123", "abcdab", "abx", "abcdx", "joe@mail.com", "joe@mail.net", "abc", "a\"c", "xyz", "x1z",
                           "$5", "$5.25", "$5.2", "a", "", "ZZ-000"};
  for (const char* p : patterns) {
    GrammarRecognizer r(std::make_shared<const Grammar>(JsonSchemaGrammar({{"type", "string"}, {"pattern", p}})));
    const std::regex re(p);
    for (const char* s : samples) {
      const bool safe = std::string(s).find('"') == std::string::npos;  // quotes need escaping: never generated
      CHECK_MESSAGE(Matches(r, Json(s).dump()) == (safe && std::regex_match(s, re)), p, " on ", s);
    }
  }
}

namespace {

using Demo = testing::DemoModel;

GenerateParams Sampled(std::shared_ptr<const TokenGrammar> g, uint64_t seed) {
  GenerateParams p;
  p.sampling.temperature = 1.0f;
  p.sampling.seed = seed;
  p.sampling.grammar = std::move(g);
  p.max_tokens = 2000;  // above any match's length in bytes: every schema here bounds its strings and arrays
  return p;
}

void CheckAnswer(const Reply& r, const Json& schema, const std::string& where) {
  CAPTURE(where);
  CAPTURE(r.text);
  CHECK(r.finish == FinishReason::kStop);
  Json v;
  REQUIRE_NOTHROW(v = Json::parse(r.text));
  CHECK(Valid(v, schema, schema));
}

}  // namespace

TEST_CASE("token mask (demo vocabulary): a token is allowed exactly when each of its bytes is, from the state reached") {
  Demo demo;
  const Tokenizer& tok = demo.lm.tokenizer();
  const auto g = JsonSchemaConstraint(demo.lm, Json::parse(kSchemas[3]));
  const std::string doc = R"({"label": "a\"é😀", "kids": [{"label": "x", "id": "123e4567-e89b-12d3-a456-426614174000"}]})";
  const std::vector<int32_t> ids = tok.Encode(doc, {.add_bos = false, .parse_special = false});
  TokenMatcher m(g);
  std::vector<int32_t> so_far;
  for (size_t step = 0; step <= ids.size(); ++step) {
    // The judge: a fresh recogniser fed the output so far and then each token's bytes, one at a time.
    GrammarRecognizer r(g->grammar);
    int32_t st = r.Start();
    for (const char c : tok.Decode(so_far)) st = r.Next(st, static_cast<uint8_t>(c));
    REQUIRE(st != GrammarRecognizer::kDead);
    size_t allowed = 0;
    for (int32_t id = 0; id < tok.size(); ++id) {
      bool ok;
      if (std::find(g->end_ids.begin(), g->end_ids.end(), id) != g->end_ids.end()) {
        ok = r.Accepting(st);
      } else if (tok.IsControl(id) || tok.Kind(id) == TokenKind::kUnused || tok.TokenText(id).empty()) {
        ok = false;
      } else {
        int32_t s = st;
        for (const char c : tok.TokenText(id)) {
          s = r.Next(s, static_cast<uint8_t>(c));
          if (s == GrammarRecognizer::kDead) break;
        }
        ok = s != GrammarRecognizer::kDead;
      }
      allowed += ok;
      if (m.Allows(id) != ok) FAIL_CHECK("step " << step << " token " << id << " '" << tok.TokenText(id) << "' mask " << m.Allows(id));
    }
    CHECK(allowed > 0);
    if (step == ids.size()) break;
    m.Accept(ids[step]);
    so_far.push_back(ids[step]);
  }
  CHECK(m.accepting());
  CHECK_THROWS_WITH_AS(m.Accept(*tok.Find("<bos>")), doctest::Contains("not allowed by the grammar"), Error);
}

TEST_CASE("demo model at temperature 1: constrained answers always parse and validate (Session, plain and speculative)") {
  Demo demo(/*drafter=*/true);
  std::vector<Json> schemas;
  for (const char* s : kSchemas) schemas.push_back(Json::parse(s));
  for (size_t k = 0; k < schemas.size(); ++k) {
    const auto g = JsonSchemaConstraint(demo.lm, schemas[k]);
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      GenerateParams p = Sampled(g, seed);
      p.speculative = seed % 2 == 0;  // drafts are verified against the masked distribution
      Session s(demo.lm, {.context = 2600});
      const Reply r = s.Run(Session::RawPrompt(demo.lm, "Returns the", {}), {}, p);
      CheckAnswer(r, schemas[k], "schema " + std::to_string(k) + " seed " + std::to_string(seed) + (p.speculative ? " speculative" : ""));
    }
  }
  // json_object in chat: any JSON object.
  const auto obj = JsonObjectConstraint(demo.lm);
  int parsed = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    GenerateParams p = Sampled(obj, seed);
    p.max_tokens = 300;
    Session s(demo.lm, {.context = 1024});
    const Reply r = s.Respond(std::vector<Message>{{"user", {Part::Text("Return a JSON object.")}}}, p);
    if (r.finish == FinishReason::kLength) continue;  // unbounded strings may run past max_tokens: nothing to parse
    Json v;
    CHECK_NOTHROW(v = Json::parse(r.text));
    CHECK(v.is_object());
    ++parsed;
  }
  CHECK(parsed > 0);
}

TEST_CASE("demo model at temperature 1: the Scheduler runs the same constraint per request") {
  Demo demo;
  SchedulerOptions opt;
  opt.slots = 2;
  opt.context = 2600;
  Scheduler sched(demo.lm, opt);
  std::vector<std::pair<uint64_t, size_t>> ids;
  for (size_t k = 0; k < std::size(kSchemas); ++k)
    for (uint64_t seed = 7; seed <= 8; ++seed)
      ids.emplace_back(sched.Submit({Session::RawPrompt(demo.lm, "def add(a, b):", {}),
                                     Sampled(JsonSchemaConstraint(demo.lm, Json::parse(kSchemas[k])), seed)}),
                       k);
  sched.RunUntilIdle();
  for (const auto& [id, k] : ids) {
    const Completion c = sched.Wait(id);
    CHECK(c.error.empty());
    CheckAnswer(c.reply, Json::parse(kSchemas[k]), "scheduler schema " + std::to_string(k));
  }
}

namespace {

// Gemma's value syntax -> JSON, written here as the judge (bare or quoted keys, <|"|> strings, JSON scalars).
class GemmaValue {
 public:
  explicit GemmaValue(std::string_view s) : s_(s) {}
  Json Parse() {
    Json v = Value();
    REQUIRE_MESSAGE(pos_ == s_.size(), "trailing text in ", std::string(s_));
    return v;
  }

 private:
  static constexpr std::string_view kQ = "<|\"|>";
  Json Value() {
    REQUIRE(pos_ < s_.size());
    if (s_.substr(pos_).starts_with(kQ)) return String();
    if (s_[pos_] == '{') {
      Json o = Json::object();
      ++pos_;
      while (s_[pos_] != '}') {
        std::string key;
        if (s_.substr(pos_).starts_with(kQ)) key = String();
        else while (s_[pos_] != ':') key += s_[pos_++];
        REQUIRE(s_[pos_++] == ':');
        o[key] = Value();
        if (s_[pos_] == ',') ++pos_;
      }
      ++pos_;
      return o;
    }
    if (s_[pos_] == '[') {
      Json a = Json::array();
      ++pos_;
      while (s_[pos_] != ']') {
        a.push_back(Value());
        if (s_[pos_] == ',') ++pos_;
      }
      ++pos_;
      return a;
    }
    const size_t end = s_.find_first_of(",}]", pos_);
    const std::string atom(s_.substr(pos_, end - pos_));
    pos_ = end == std::string_view::npos ? s_.size() : end;
    return Json::parse(atom);
  }
  std::string String() {
    pos_ += kQ.size();
    const size_t end = s_.find(kQ, pos_);
    REQUIRE(end != std::string_view::npos);
    std::string v(s_.substr(pos_, end - pos_));
    pos_ = end + kQ.size();
    return v;
  }
  std::string_view s_;
  size_t pos_ = 0;
};

// A small vocabulary with Gemma 4's tool-call control tokens, byte pieces and a few words.
Tokenizer ToolVocabulary() {
  std::vector<std::string> pieces = {"<pad>", "<eos>", "<bos>", "<unk>", "<|tool_call>", "<tool_call|>", "<|\"|>", "<turn|>"};
  std::vector<int32_t> types(pieces.size(), 3);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    pieces.push_back(buf);
    types.push_back(6);
  }
  for (const char* w : {"call", ":", "call:", "get_weather", "{", "}", "location", "Paris", "\u2581the", "unit", "celsius", ",", "days",
                        "1", "12", "-", "e", "<", "<|", "true", "null", "\"", "é", "search", "query", "tags", "[", "]", "],"}) {
    pieces.push_back(w);
    types.push_back(1);
  }
  return Tokenizer::FromVocab(pieces, std::vector<float>(pieces.size(), 0.0f), types, {}, {.bos = 2, .eos = 1, .unk = 3, .pad = 0});
}

const char* kTools = R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
     "location": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer"}},
     "required": ["location"]}}},
  {"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {
     "query": {"type": "string", "minLength": 1, "maxLength": 8}, "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 3},
     "exact": {"type": "boolean"}}, "required": ["query", "exact"], "additionalProperties": false}}}
])";

}  // namespace

TEST_CASE("tool calls: random walks through the mask give calls that parse (Gemma's syntax) and validate") {
  const Tokenizer tok = ToolVocabulary();
  const auto trie = std::make_shared<const TokenTrie>(TokenTrie::FromTokenizer(tok));
  const Json tools = Json::parse(kTools);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> logits(static_cast<size_t>(tok.size()));
  const int32_t open = *tok.Find("<|tool_call>"), close = *tok.Find("<tool_call|>");
  std::map<std::string, int> calls;
  for (const Json& choice : {Json("required"), Json{{"type", "function"}, {"function", {{"name", "search"}}}}}) {
    const auto g = ToolCallTokenGrammar(tok, trie, tools, choice);
    // A named function: the prompt ends with <|tool_call>call:search{ (Session::ChatPrompt), the output continues it.
    const std::string opened = choice.is_object() ? "call:search{" : "";
    for (int walk = 0; walk < 60; ++walk) {
      TokenMatcher m(g);
      std::vector<int32_t> ids;
      while (ids.empty() || ids.back() != close) {
        REQUIRE(ids.size() < 4000);
        for (float& l : logits) l = u(rng);
        m.Mask(logits);
        const int32_t id = Argmax(logits);  // a random allowed token
        m.Accept(id);
        ids.push_back(id);
      }
      if (opened.empty()) REQUIRE(ids.front() == open);  // required: the answer starts with the call
      const std::string text = opened + tok.Decode(std::span(ids).subspan(opened.empty() ? 1 : 0, ids.size() - (opened.empty() ? 2 : 1)));
      CAPTURE(text);
      REQUIRE(text.starts_with("call:"));
      const size_t brace = text.find('{');
      const std::string name = text.substr(5, brace - 5);
      if (choice.is_object()) CHECK(name == "search");
      const Json* schema = nullptr;
      for (const Json& t : tools)
        if (t["function"]["name"] == name) schema = &t["function"]["parameters"];
      REQUIRE(schema != nullptr);
      const Json args = GemmaValue(std::string_view(text).substr(brace)).Parse();
      CHECK(Valid(args, *schema, *schema));
      calls[name]++;
    }
  }
  CHECK(calls["get_weather"] > 0);  // "required" reached both functions
  CHECK(calls["search"] > 60);
}

TEST_CASE("tool calls: free text until <|tool_call>, the call constrained, free again after <tool_call|>") {
  const Tokenizer tok = ToolVocabulary();
  const auto trie = std::make_shared<const TokenTrie>(TokenTrie::FromTokenizer(tok));
  const Json tools = Json::parse(kTools);
  TokenMatcher m(ToolCallTokenGrammar(tok, trie, tools, "auto"));
  const int32_t open = *tok.Find("<|tool_call>"), close = *tok.Find("<tool_call|>"), paris = *tok.Find("Paris");
  const int32_t quote = *tok.Find("<|\"|>"), turn = *tok.Find("<turn|>");
  for (const int32_t id : {paris, open, turn, quote}) CHECK(m.Allows(id));  // free: anything
  for (const int32_t id : {paris, *tok.Find("\u2581the")}) m.Accept(id);
  m.Accept(open);
  CHECK(!m.Allows(paris));
  CHECK(!m.Allows(turn));
  const auto feed = [&](std::initializer_list<const char*> pieces) {
    for (const char* p : pieces) {
      const int32_t id = *tok.Find(p);
      REQUIRE_MESSAGE(m.Allows(id), p);
      m.Accept(id);
    }
  };
  feed({"call:", "get_weather", "{", "location", ":", "<|\"|>", "Paris", "<|\"|>"});
  CHECK(!m.Allows(*tok.Find("\"")));  // a JSON quote is not Gemma's
  CHECK(m.Allows(*tok.Find("}")));
  CHECK(!m.Allows(close));            // the body is not closed yet
  feed({"}", "<tool_call|>"});
  CHECK(m.Allows(paris));             // free again
  CHECK(m.Allows(turn));
  // Errors: unknown names, tool_choice none, a vocabulary without the markers.
  CHECK(ToolCallTokenGrammar(tok, trie, tools, "none") == nullptr);
  CHECK_THROWS_WITH_AS(ToolCallTokenGrammar(tok, trie, tools, Json{{"type", "function"}, {"function", {{"name", "nope"}}}}),
                       doctest::Contains("names function 'nope'"), Error);
  CHECK_THROWS_WITH_AS(ToolCallTokenGrammar(tok, trie, Json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer", "minimum": 1}}}}}])"), "auto"),
                       doctest::Contains("tools[0].function.parameters: json schema: keyword 'minimum' is not supported"), Error);
  CHECK_THROWS_WITH_AS(ToolCallTokenGrammar(tok, trie, Json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": ["object", "null"]}}}])"), "auto"),
                       doctest::Contains("tools[0].function.parameters: must be an object schema"), Error);
  Demo demo;
  CHECK_THROWS_WITH_AS(ToolCallConstraint(demo.lm, tools), doctest::Contains("no <|tool_call>"), Error);
}

TEST_CASE("tool calls beside response_format: random walks give either the schema's JSON or valid calls") {
  const Tokenizer tok = ToolVocabulary();
  const auto trie = std::make_shared<const TokenTrie>(TokenTrie::FromTokenizer(tok));
  const Json tools = Json::parse(kTools);
  const Json schema = Json::parse(R"({"type": "object", "properties": {"city": {"type": "string", "maxLength": 6},
      "n": {"type": "integer"}}, "required": ["city"], "additionalProperties": false})");
  // What JsonOrToolCallsConstraint builds for a model, here over the test vocabulary; <eos> ends the answer.
  const Grammar calls = ParseGrammar(ToolCallGrammarText(tools, "", ToolCallQuote(tok), /*whole_calls=*/true));
  const auto g = MakeTokenGrammar(EitherGrammar(JsonSchemaGrammar(schema), calls), trie, {1});
  const int32_t open = *tok.Find("<|tool_call>"), close = *tok.Find("<tool_call|>");
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> logits(static_cast<size_t>(tok.size()));
  int json_answers = 0, call_answers = 0;
  for (int walk = 0; walk < 80; ++walk) {
    TokenMatcher m(g);
    std::vector<int32_t> ids;
    while (ids.empty() || ids.back() != 1) {
      REQUIRE(ids.size() < 4000);
      for (float& l : logits) l = u(rng);
      logits[1] = m.accepting() ? 2.0f : logits[1];  // end as soon as the answer may end
      m.Mask(logits);
      const int32_t id = Argmax(logits);
      m.Accept(id);
      ids.push_back(id);
    }
    ids.pop_back();
    CHECK(m.done());
    if (ids.front() != open) {  // JSON content, checked by this file's own validator
      const Json v = Json::parse(tok.Decode(ids));
      CHECK(Valid(v, schema, schema));
      CHECK(std::find(ids.begin(), ids.end(), open) == ids.end());
      ++json_answers;
      continue;
    }
    // Calls only: each <|tool_call>call:NAME{...}<tool_call|> names a declared function with valid arguments.
    for (size_t i = 0; i < ids.size();) {
      REQUIRE(ids[i] == open);
      const size_t end = static_cast<size_t>(std::find(ids.begin() + static_cast<ptrdiff_t>(i), ids.end(), close) - ids.begin());
      REQUIRE(end < ids.size());
      const std::string text = tok.Decode(std::span(ids).subspan(i + 1, end - i - 1));
      CAPTURE(text);
      REQUIRE(text.starts_with("call:"));
      const size_t brace = text.find('{');
      const std::string name = text.substr(5, brace - 5);
      const Json* params = nullptr;
      for (const Json& t : tools)
        if (t["function"]["name"] == name) params = &t["function"]["parameters"];
      REQUIRE(params != nullptr);
      CHECK(Valid(GemmaValue(std::string_view(text).substr(brace)).Parse(), *params, *params));
      i = end + 1;
    }
    ++call_answers;
  }
  CHECK(json_answers > 0);
  CHECK(call_answers > 0);
}

TEST_CASE("tool calls: a named tool_choice constrains the arguments of the call the prompt opened") {
  const Tokenizer tok = ToolVocabulary();
  const auto trie = std::make_shared<const TokenTrie>(TokenTrie::FromTokenizer(tok));
  const Json named = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  TokenMatcher m(ToolCallTokenGrammar(tok, trie, Json::parse(kTools), named));
  const int32_t paris = *tok.Find("Paris"), open = *tok.Find("<|tool_call>"), turn = *tok.Find("<turn|>");
  // Inside `call:get_weather{` already: a key or `}`, no free text, no second opening, no end of turn.
  for (const int32_t id : {paris, open, turn, *tok.Find("{"), *tok.Find("call:")}) CHECK(!m.Allows(id));
  CHECK(m.Allows(*tok.Find("location")));
  CHECK(!m.Allows(*tok.Find("query")));  // search's parameter, not get_weather's
  CHECK(!m.Allows(*tok.Find("}")));      // location is required
  for (const char* p : {"location", ":", "<|\"|>", "Paris", "<|\"|>", "}", "<tool_call|>"}) {
    const int32_t id = *tok.Find(p);
    REQUIRE_MESSAGE(m.Allows(id), p);
    m.Accept(id);
  }
  CHECK(m.accepting());
  CHECK(m.Allows(paris));  // free after the call
  m.Accept(open);          // a further call may name only get_weather
  CHECK(m.Allows(*tok.Find("call:")));
  m.Accept(*tok.Find("call:"));
  CHECK(m.Allows(*tok.Find("get_weather")));
  CHECK(!m.Allows(*tok.Find("search")));
}

}  // namespace g4_test_grammar
