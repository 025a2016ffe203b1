// The Jinja interpreter against Python's jinja2: the released Gemma 4 chat templates on every conversation of
// chat-template/cases.json, and one small template per construct in jinja/features.json (both rendered by jinja2
// with Hugging Face's settings; features.json by jinja/make_features.py). Then hostile templates: each must end in
// a g4::Error, never a crash, a hang or unbounded memory.
#include <doctest/doctest.h>

#include <string>

#include "g4/core/error.hpp"
#include "g4/text/jinja/template.hpp"
#include "support/test_data.hpp"

namespace g4_test_jinja {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

namespace {

using g4::jinja::Json;
using g4::testing::ReadText;

Json ReadJson(const std::string& path) { return Json::parse(ReadText(path)); }

std::string TemplatePath(const std::string& name) {
  const std::string dir = g4::testing::DataDir() + "/chat-template/";
  if (name == "gemma-4-31B-it") return dir + "gemma4-official.jinja";
  if (name == "gemma-4-31B-it-interleaved") return dir + "gemma4-official-interleaved.jinja";
  FAIL("unknown template " << name);
  return "";
}

// A case of cases.json as a request: its messages, tools and flags (add_generation_prompt defaults to true there).
Json CaseRequest(const Json& c) {
  Json request = c;
  for (const char* key : {"name", "template", "rendered"}) request.erase(key);
  return request;
}

std::string Render(const std::string& source, const Json& variables, const g4::jinja::Limits& limits = {}) {
  return g4::jinja::Template(source).Render(variables, limits);
}

}  // namespace

TEST_CASE("jinja: both Gemma 4 templates render every case of cases.json as jinja2 does, byte for byte") {
  const Json cases = ReadJson(g4::testing::DataDir() + "/chat-template/cases.json");
  REQUIRE(cases["cases"].size() == 34);
  int checked = 0;
  for (const Json& c : cases["cases"]) {
    CAPTURE(c["name"].get<std::string>());
    CAPTURE(c["template"].get<std::string>());
    const std::string source = ReadText(TemplatePath(c["template"]));
    CHECK(g4::jinja::RenderChatTemplate(source, CaseRequest(c)) == c["rendered"].get<std::string>());
    ++checked;
  }
  CHECK(checked == 34);
}

TEST_CASE("jinja: each construct renders as jinja2 renders it, and what jinja2 refuses is refused") {
  const Json features = ReadJson(g4::testing::DataDir() + "/jinja/features.json");
  REQUIRE(features["cases"].size() >= 70);
  for (const Json& c : features["cases"]) {
    const std::string name = c["name"];
    CAPTURE(name);
    const std::string source = c["template"];
    if (c.contains("error")) {
      CHECK_THROWS_AS(Render(source, features["variables"]), g4::Error);
    } else {
      std::string got;
      CHECK_NOTHROW(got = Render(source, features["variables"]));
      CHECK(got == c["rendered"].get<std::string>());
    }
  }
}

TEST_CASE("jinja: errors name the template's line and column") {
  const auto message = [](const std::string& source) {
    try {
      Render(source, Json::object());
    } catch (const g4::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message("line one\n  {{ x.y }}") == "chat template: line 2, column 7: 'x' is undefined");
  CHECK(message("{% if true %}\n{% frobnicate %}").find("line 2, column 4: unsupported statement 'frobnicate'") !=
        std::string::npos);
  CHECK(message("{{ raise_exception('no system role') }}").find("line 1, column 19") != std::string::npos);
  CHECK(message("{{ raise_exception('no system role') }}").find("no system role") != std::string::npos);
  CHECK(message("ab\n{{ 'unterminated }}").find("line 2, column 4: unterminated string") != std::string::npos);
  CHECK(message("{% raw %}x{% endraw %}").find("unsupported statement 'raw'") != std::string::npos);
}

TEST_CASE("jinja: hostile templates end in g4::Error, not a crash or a hang") {
  const g4::jinja::Limits small{.max_output_bytes = 1 << 20, .max_loop_iterations = 100000, .max_recursion = 1000};
  const Json none = Json::object();
  // Unbounded recursion, deep nesting in the source, and deep values built at run time.
  CHECK_THROWS_AS(Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", none, small), g4::Error);
  CHECK_THROWS_AS(Render("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}", none), g4::Error);
  CHECK_THROWS_AS(Render("{{ " + std::string(100000, '[') + std::string(100000, ']') + " }}", none), g4::Error);
  CHECK_THROWS_AS(Render("{{ 1" + std::string(200000, '-') + "1 }}", none), g4::Error);
  std::string chain = "{{ 'a'";
  for (int i = 0; i < 50000; ++i) chain += " ~ 'a'";
  CHECK_THROWS_AS(Render(chain + " }}", none), g4::Error);
  std::string blocks;
  for (int i = 0; i < 5000; ++i) blocks += "{% if true %}";
  CHECK_THROWS_AS(Render(blocks, none), g4::Error);
  CHECK_THROWS_AS(Render("{% set ns = namespace(v=[]) %}{% for i in range(100000) %}{% set ns.v = [ns.v] %}"
                         "{% endfor %}{{ ns.v }}",
                         none, small),
                  g4::Error);
  CHECK_THROWS_AS(Render("{% set ns = namespace() %}{% set ns.self = ns %}", none), g4::Error);
  CHECK_THROWS_AS(Render("{% set ns = namespace(l=[]) %}{% set ns.l = [ns] %}", none), g4::Error);
  std::string many_names;
  for (int i = 0; i < 20000; ++i) many_names += "{% set v" + std::to_string(i) + " = 1 %}";
  CHECK_THROWS_AS(Render(many_names, none), g4::Error);
  std::string big_dict = "{{ {";
  for (int i = 0; i < 50000; ++i) big_dict += "'k" + std::to_string(i % 25000) + "': " + std::to_string(i) + ", ";
  CHECK(Render(big_dict + "} | length }}", none) == "25000");
  // Output, string and list growth.
  CHECK_THROWS_AS(Render("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", none, small), g4::Error);
  CHECK_THROWS_AS(Render("{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                         "{% endfor %}",
                         none, small),
                  g4::Error);
  CHECK_THROWS_AS(Render("{{ 'x' * 1000000000000 }}", none, small), g4::Error);
  CHECK_THROWS_AS(Render("{{ [1] * 1000000000000 }}", none, small), g4::Error);
  CHECK_THROWS_AS(Render("{{ range(1000000000000) | length }}", none), g4::Error);
  // Loops that would run for hours.
  CHECK_THROWS_AS(Render("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", none, small),
                  g4::Error);
  CHECK_THROWS_AS(Render("{% macro f(n) %}{% for i in range(10) %}{{ f(n) }}{% endfor %}{% endmacro %}{{ f(0) }}",
                         none, small),
                  g4::Error);
  // Integer overflow and deep request data.
  CHECK_THROWS_AS(Render("{{ 9223372036854775807 + 1 }}", none), g4::Error);
  CHECK_THROWS_AS(Render("{{ 2 ** 64 }}", none), g4::Error);
  // (parsed, since nlohmann copies values recursively)
  const Json deep = Json::parse("{\"x\": " + std::string(100000, '[') + std::string(100000, ']') + "}");
  CHECK_THROWS_AS(Render("{{ x }}", deep), g4::Error);
  CHECK_THROWS_AS(g4::jinja::RenderChatTemplate("{{ x }}", deep), g4::Error);
}

TEST_CASE("jinja: RenderChatTemplate's defaults and chat_template_kwargs") {
  const std::string source = "{{ bos_token }}|{{ add_generation_prompt }}|{{ enable_thinking | default('unset') }}";
  CHECK(g4::jinja::RenderChatTemplate(source, Json::object()) == "<bos>|True|unset");
  CHECK(g4::jinja::RenderChatTemplate(source, Json{{"add_generation_prompt", false}, {"bos_token", ""}}) == "|False|unset");
  CHECK(g4::jinja::RenderChatTemplate(source, Json{{"chat_template_kwargs", {{"enable_thinking", true}}}}) ==
        "<bos>|True|True");
  CHECK_THROWS_AS(g4::jinja::RenderChatTemplate(source, Json::array()), g4::Error);
}

}  // namespace g4_test_jinja
