// Gemma 4 tool calling: requests adapted to the template (checked against jinja2's renderings in cases.json) and
// the model's markup parsed back. The parser's truth is the template itself: random arguments are written by the
// template's own format_argument macro and must parse back to the same JSON, whole and cut at every byte.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "g4/core/error.hpp"
#include "g4/text/jinja/template.hpp"
#include "g4/text/tool_calls.hpp"
#include "g4/text/tool_request.hpp"
#include "support/test_data.hpp"

namespace g4_test_tool_calls {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

namespace {

using Json = nlohmann::ordered_json;

using g4::testing::ReadText;

std::string Official() { return ReadText(g4::testing::DataDir() + "/chat-template/gemma4-official.jinja"); }
std::string Interleaved() {
  return ReadText(g4::testing::DataDir() + "/chat-template/gemma4-official-interleaved.jinja");
}

const Json& Case(const std::string& name, const std::string& tmpl) {
  static const Json cases = Json::parse(ReadText(g4::testing::DataDir() + "/chat-template/cases.json"));
  for (const Json& c : cases["cases"])
    if (c["name"] == name && c["template"] == tmpl) return c;
  FAIL("no case " << name);
  return cases;
}

Json Request(const Json& c) {
  Json r = c;
  for (const char* key : {"name", "template", "rendered"}) r.erase(key);
  return r;
}

// The template's format_argument macro, cut from the official template.
std::string FormatArgumentMacro() {
  const std::string t = Official();
  const size_t begin = t.find("{%- macro format_argument");
  const size_t end = t.find("{%- endmacro -%}", begin);
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  return t.substr(begin, end + 16 - begin);
}

// A random JSON value of the kind tool arguments hold. Strings take any text but the <|"|> quote itself (which
// format_argument cannot write inside a string); keys are names, as the template writes them bare.
Json RandomValue(std::mt19937& rng, int depth) {
  static const std::vector<std::string> kPieces = {"a", "Z", " ", "{", "}", "[", "]", ",", ":", "\"", "'", "\n", "<",
                                                   "|", ">", "<|", "|>", "\\", "é", "☃", "😀", "<tool_call|>",
                                                   "<|tool_call>", "call:", "null", "1.5", "<channel|>"};
  const int kind = static_cast<int>(rng() % (depth >= 4 ? 6 : 8));
  switch (kind) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng()) * (rng() % 2 ? 1 : -1) * static_cast<int64_t>(rng() % 100000);
    case 3: {
      const double d = std::ldexp(static_cast<double>(rng()) / 4294967296.0 - 0.5, static_cast<int>(rng() % 120) - 60);
      return d;
    }
    case 4:
    case 5: {
      std::string s;
      for (int n = static_cast<int>(rng() % 6); n > 0; --n) s += kPieces[rng() % kPieces.size()];
      return s;
    }
    case 6: {
      Json a = Json::array();
      for (int n = static_cast<int>(rng() % 4); n > 0; --n) a.push_back(RandomValue(rng, depth + 1));
      return a;
    }
    default: {
      Json o = Json::object();
      for (int n = static_cast<int>(rng() % 4); n > 0; --n)
        o["k" + std::to_string(rng() % 50) + (rng() % 2 ? "_x" : "")] = RandomValue(rng, depth + 1);
      return o;
    }
  }
}

// Equality as JSON values: key order does not matter (the template sorts keys), numbers compare by value.
bool SameJson(const Json& a, const Json& b) { return nlohmann::json::parse(a.dump()) == nlohmann::json::parse(b.dump()); }

Json Concatenate(const std::vector<g4::MessageDelta>& deltas) {
  g4::MessageDelta all;
  for (const g4::MessageDelta& d : deltas) {
    all.content += d.content;
    all.reasoning_content += d.reasoning_content;
    all.tool_calls.insert(all.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  }
  return g4::ToolCallParser::Message(all);
}

}  // namespace

TEST_CASE("tool request: string arguments render as objects do, and the official template keeps role: tool") {
  const Json& c = Case("tool_call_and_response", "gemma-4-31B-it");
  Json request = Request(c);
  Json& args = request["messages"][1]["tool_calls"][0]["function"]["arguments"];
  args = args.dump();  // as OpenAI sends it: a JSON string
  REQUIRE(args.is_string());
  const Json adapted = g4::AdaptRequestToTemplate(request, Official());
  CHECK(adapted["messages"].size() == 3);
  CHECK(g4::jinja::RenderChatTemplate(Official(), adapted) == c["rendered"].get<std::string>());
  CHECK_FALSE(g4::ReadsOnlyToolResponses(Official()));
  CHECK(g4::ReadsOnlyToolResponses(Interleaved()));
}

TEST_CASE("tool request: for a template that reads only tool_responses, role: tool messages fold as in llama.cpp") {
  // The OpenAI form of legacy_tool_responses must render as jinja2 rendered the legacy form.
  const Json& legacy = Case("legacy_tool_responses", "gemma-4-31B-it-interleaved");
  Json request = Request(Case("tool_call_and_response", "gemma-4-31B-it-interleaved"));
  request["messages"][2]["content"] = "{\"temperature\": 21, \"sky\": \"clear\"}";
  request["messages"][1]["tool_calls"][0]["function"]["arguments"] = "{\"location\": \"Paris\"}";
  const Json adapted = g4::AdaptRequestToTemplate(request, Interleaved());
  REQUIRE(adapted["messages"].size() == 2);
  CHECK(adapted["messages"][1]["tool_responses"][0]["name"] == "get_weather");
  CHECK(adapted["messages"][1]["tool_responses"][0]["response"]["temperature"] == 21);
  CHECK(g4::jinja::RenderChatTemplate(Interleaved(), adapted) == legacy["rendered"].get<std::string>());

  // A final answer after the results joins the turn; a response that is not JSON stays a string; an unmatched
  // result is named by its tool_call_id.
  Json more = Request(Case("tool_response_then_answer", "gemma-4-31B-it-interleaved"));
  more["messages"].insert(more["messages"].begin() + 3, Json{{"role", "tool"}, {"tool_call_id", "c9"}, {"content", "x"}});
  const Json folded = g4::AdaptRequestToTemplate(more, Interleaved());
  REQUIRE(folded["messages"].size() == 3);
  const Json& turn = folded["messages"][1];
  CHECK(turn["content"] == "It is 21 C and clear in Paris.");
  CHECK(turn["tool_responses"][0] == Json{{"name", "get_weather"}, {"response", "21 C, clear"}});
  CHECK(turn["tool_responses"][1] == Json{{"name", "c9"}, {"response", "x"}});
  CHECK(g4::jinja::RenderChatTemplate(Interleaved(), folded).find(
            "<|tool_response>response:get_weather{value:<|\"|>21 C, clear<|\"|>}<tool_response|>"
            "<|tool_response>response:c9{value:<|\"|>x<|\"|>}<tool_response|>It is 21 C and clear in Paris.<turn|>") !=
        std::string::npos);

  std::string deep = "{\"messages\": " + std::string(10000, '[') + std::string(10000, ']') + "}";
  CHECK_THROWS_AS(g4::AdaptRequestToTemplate(Json::parse(deep), Interleaved()), g4::Error);
}

TEST_CASE("tool calls: every value format_argument writes parses back to the same JSON") {
  const g4::jinja::Template bare(FormatArgumentMacro() + "{{ format_argument(x, escape_keys=False) }}");
  const g4::jinja::Template quoted(FormatArgumentMacro() + "{{ format_argument(x) }}");
  std::mt19937 rng(1234);
  for (int i = 0; i < 400; ++i) {
    Json args = Json::object();
    for (int n = static_cast<int>(rng() % 5); n > 0; --n) args["a" + std::to_string(rng() % 9)] = RandomValue(rng, 1);
    for (const g4::jinja::Template* t : {&bare, &quoted}) {
      const std::string markup = "<|tool_call>call:f" + t->Render(Json{{"x", args}}) + "<tool_call|>";
      CAPTURE(markup);
      std::vector<std::string> warnings;
      const Json msg = g4::ToolCallParser::Parse(markup, &warnings);
      CHECK(warnings.empty());
      CHECK(msg["content"] == "");
      REQUIRE(msg["tool_calls"].size() == 1);
      CHECK(msg["tool_calls"][0]["function"]["name"] == "f");
      CHECK(SameJson(Json::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>()), args));
      // Streamed in random pieces: the fragments join to the same arguments string, byte for byte.
      g4::ToolCallParser p;
      std::vector<g4::MessageDelta> deltas;
      for (size_t at = 0; at < markup.size();) {
        const size_t n = 1 + rng() % 7;
        deltas.push_back(p.Feed(markup.substr(at, n)));
        at += n;
      }
      deltas.push_back(p.Finish());
      CHECK(Concatenate(deltas) == msg);
    }
  }
}

TEST_CASE("tool calls: the template's own rendering of a call parses back, for arguments as object and as string") {
  const Json& c = Case("tool_call_and_response", "gemma-4-31B-it");
  const std::string rendered = c["rendered"];
  const size_t b = rendered.find("<|tool_call>"), e = rendered.find("<tool_call|>") + 12;
  const Json msg = g4::ToolCallParser::Parse(rendered.substr(b, e - b));
  REQUIRE(msg["tool_calls"].size() == 1);
  CHECK(msg["tool_calls"][0]["id"] == "call_0");
  CHECK(msg["tool_calls"][0]["type"] == "function");
  CHECK(SameJson(Json::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>()),
                 c["messages"][1]["tool_calls"][0]["function"]["arguments"]));
}

TEST_CASE("tool calls: thought, content and several calls, whole or cut at every byte, give the same message") {
  const std::string out =
      "<|channel>thought\nThe user wants <b>weather</b>; use a <|\"|>tool<|\"|>.<channel|>Checking {both} cities."
      "<|tool_call>call:get_weather{location:<|\"|>Paris, <|tool_call> {France}<|\"|>,days:3}<tool_call|>"
      "<|tool_call>call:get_time{tz:<|\"|>Europe/Berlin<|\"|>,opts:{fmt:[1,2.5e-05,None,true]}}<tool_call|>"
      "<|tool_response>";
  const Json whole = g4::ToolCallParser::Parse(out);
  CHECK(whole["reasoning_content"] == "The user wants <b>weather</b>; use a \"tool\".");
  CHECK(whole["content"] == "Checking {both} cities.");
  REQUIRE(whole["tool_calls"].size() == 2);
  CHECK(whole["tool_calls"][0]["function"]["name"] == "get_weather");
  CHECK(whole["tool_calls"][0]["function"]["arguments"] == R"({"location":"Paris, <|tool_call> {France}","days":3})");
  CHECK(whole["tool_calls"][1]["id"] == "call_1");
  CHECK(whole["tool_calls"][1]["function"]["arguments"] ==
        R"({"tz":"Europe/Berlin","opts":{"fmt":[1,2.5e-05,null,true]}})");

  const auto no_marker_leak = [](const g4::MessageDelta& d) {
    for (const std::string* s : {&d.content, &d.reasoning_content}) {
      if (s->find("<|\"|>") != std::string::npos) return false;
      for (const std::string_view m : {"<|tool_call>", "<|channel>", "<channel|>", "<|\"|>", "<|tool_response>"})
        for (size_t n = 1; n < m.size(); ++n)
          if (s->ends_with(m.substr(0, n))) return false;
    }
    return true;
  };
  for (size_t cut = 0; cut <= out.size(); ++cut) {
    CAPTURE(cut);
    g4::ToolCallParser p;
    std::vector<g4::MessageDelta> deltas = {p.Feed(out.substr(0, cut)), p.Feed(out.substr(cut)), p.Finish()};
    CHECK(no_marker_leak(deltas[0]));
    CHECK(no_marker_leak(deltas[1]));
    CHECK(Concatenate(deltas) == whole);
  }
  g4::ToolCallParser p;
  std::vector<g4::MessageDelta> deltas;
  for (const char ch : out) {
    deltas.push_back(p.Feed(std::string(1, ch)));
    CHECK(no_marker_leak(deltas.back()));
  }
  deltas.push_back(p.Finish());
  CHECK(Concatenate(deltas) == whole);
  // OpenAI's shape: the first delta of a call has its id and name and no arguments; arguments follow.
  std::vector<g4::ToolCallDelta> calls;
  for (const auto& d : deltas) calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  REQUIRE(calls.size() >= 4);
  CHECK(calls[0].id == "call_0");
  CHECK(calls[0].name == "get_weather");
  CHECK(calls[0].arguments.empty());
  CHECK(calls[1].id.empty());
}

TEST_CASE("tool calls: hostile and malformed output comes back as text with a warning") {
  const auto check_text = [](const std::string& out, std::set<std::string> names = {}) {
    std::vector<std::string> warnings;
    const Json msg = g4::ToolCallParser::Parse(out, &warnings, std::move(names));
    CHECK(msg["tool_calls"].empty());
    CHECK(warnings.size() == 1);
    CHECK(msg["content"] == out);
  };
  check_text("<|tool_call>call:f{a:<|\"|>never closed");
  check_text("<|tool_call>call:f{a:1}");
  check_text("<|tool_call>call:f{a:}<tool_call|>");
  check_text("<|tool_call>call:f{a:1,}<tool_call|>");
  check_text("<|tool_call>call:f{a:1} trailing<tool_call|>");
  check_text("<|tool_call>f{a:1}<tool_call|>");
  check_text("<|tool_call>call:bad name{a:1}<tool_call|>");
  check_text("<|tool_call>call:rm_rf{a:1}<tool_call|>", {"get_weather"});
  check_text("<|tool_call>call:f{a:[1,2}<tool_call|>");
  check_text("<|tool_call>call:f{a:nope}<tool_call|>");
  // 10 MB of nesting, with and without a closing marker.
  const std::string deep(10 << 20, '[');
  check_text("<|tool_call>call:f{a:" + deep + "<tool_call|>");
  check_text("<|tool_call>call:f{a:" + deep);
  check_text("<|tool_call>call:f" + std::string(10 << 20, '{') + "<tool_call|>");
  // Long runs of marker beginnings and of quotes stay linear (quadratic, these took minutes).
  const std::string angles(4 << 20, '<');
  CHECK(g4::ToolCallParser::Parse(angles)["content"] == angles);
  std::string quotes = "<|channel>thought\n";
  for (int i = 0; i < 200000; ++i) quotes += "<|\"|>";
  CHECK(g4::ToolCallParser::Parse(quotes)["reasoning_content"] == std::string(200000, '"'));
  // A good call after a bad one still parses; text around stays in order.
  std::vector<std::string> warnings;
  const Json msg = g4::ToolCallParser::Parse("x<|tool_call>call:f{a:}<tool_call|>y<|tool_call>call:g{}<tool_call|>z",
                                             &warnings);
  CHECK(warnings.size() == 1);
  CHECK(msg["content"] == "x<|tool_call>call:f{a:}<tool_call|>yz");
  REQUIRE(msg["tool_calls"].size() == 1);
  CHECK(msg["tool_calls"][0]["function"]["arguments"] == "{}");
  CHECK(msg["tool_calls"][0]["id"] == "call_1");  // the bad call's id was streamed before it failed: not reused
  // Stray markers: a lone closing channel and end-of-turn markers vanish, a quote outside a call reads '"'.
  const Json stray = g4::ToolCallParser::Parse("a<channel|>b<|\"|>c<turn|>");
  CHECK(stray["content"] == "ab\"c");
  CHECK(g4::ToolCallParser::Parse("<|channel>thought")["reasoning_content"] == "");
  CHECK(g4::ToolCallParser::Parse("a < b <| c")["content"] == "a < b <| c");
}

TEST_CASE("tool calls: arguments stream as the model writes them, as JSON fragments that join to the whole") {
  // Fed one byte at a time, a call's id and name come with its '{', and its argument fragments before its end.
  const std::string out = "<|tool_call>call:get_weather{location:<|\"|>Paris, {France}<|\"|>,days:[3,-1.5e+2,True]}<tool_call|>";
  g4::ToolCallParser p({"get_weather"});
  std::string args;
  size_t header_at = 0, fragments = 0, args_done_at = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const g4::MessageDelta d = p.Feed(out.substr(i, 1));
    CHECK(d.content.empty());
    for (const g4::ToolCallDelta& t : d.tool_calls) {
      CHECK(t.index == 0);
      CHECK_FALSE(t.withdrawn);
      if (!t.id.empty()) {
        header_at = i;
        CHECK(t.name == "get_weather");
        CHECK(t.arguments.empty());
      } else {
        args += t.arguments;
        ++fragments;
        args_done_at = i;
      }
    }
  }
  CHECK(p.Finish().empty());
  CHECK(header_at == out.find('{'));
  CHECK(args_done_at == out.find("<tool_call|>") - 1);  // the closing '}' went out before the end marker came
  CHECK(fragments > 20);                                // string bytes go out as they come
  // Independent truth: nlohmann's compact writing of the value the call holds.
  const Json expected = {{"location", "Paris, {France}"}, {"days", {3, -1.5e+2, true}}};
  CHECK(Json::parse(args) == expected);
  CHECK(args == R"({"location":"Paris, {France}","days":[3,-1.5e+2,true]})");  // numbers as the model wrote them

  // The converter alone: escapes as JSON does, holds back a cut quote marker, errors at the first bad byte.
  g4::GemmaArgumentsToJson conv;
  CHECK(conv.Feed("{q:<|\"|>a\"b\\\\c\n\x01<|") == "{\"q\":\"a\\\"b\\\\\\\\c\\n\\u0001");
  CHECK(conv.Feed("\"|>}") == "\"}");
  CHECK(conv.done());
  CHECK(Json::parse(std::string("{\"q\":\"a\\\"b\\\\\\\\c\\n\\u0001\"}"))["q"] == "a\"b\\\\c\n\x01");
  g4::GemmaArgumentsToJson bad;
  CHECK(bad.Feed("{a:1") == "{\"a\":");  // the number waits for its end
  CHECK_THROWS_AS(bad.Feed(",}"), g4::Error);
  g4::GemmaArgumentsToJson lead0;
  CHECK_THROWS_AS(lead0.Feed("{a:007}"), g4::Error);  // not a JSON number
}

TEST_CASE("tool calls: a call that fails after its name went out is withdrawn; its text comes back as content") {
  const std::string out = "a<|tool_call>call:f{x:<|\"|>ok<|\"|>,y:}<tool_call|>b";
  g4::ToolCallParser p;
  std::vector<g4::MessageDelta> deltas;
  for (const char c : out) deltas.push_back(p.Feed(std::string(1, c)));
  deltas.push_back(p.Finish());
  std::vector<g4::ToolCallDelta> calls;
  size_t warnings = 0;
  for (const auto& d : deltas) {
    calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
    warnings += d.warnings.size();
  }
  REQUIRE(calls.size() >= 2);
  CHECK(calls.front().name == "f");
  CHECK(calls.back().withdrawn);
  CHECK(warnings == 1);
  const Json msg = Concatenate(deltas);
  CHECK(msg["tool_calls"].empty());
  CHECK(msg["content"] == out);
  // Cut short (no closing marker before the end): the same.
  std::vector<std::string> w;
  const Json cut = g4::ToolCallParser::Parse("<|tool_call>call:f{x:<|\"|>o", &w);
  CHECK(cut["tool_calls"].empty());
  CHECK(cut["content"] == "<|tool_call>call:f{x:<|\"|>o");
  CHECK(w.size() == 1);
}

TEST_CASE("tool calls: tool_choice none, a forced function, and one call at most") {
  const std::string two = "<|tool_call>call:f{a:1}<tool_call|><|tool_call>call:g{b:2}<tool_call|>after";
  // none: every call is text, with a warning.
  g4::ToolChoice none({"f", "g"});
  none.allowed = false;
  std::vector<std::string> w;
  const Json n = g4::ToolCallParser::Parse(two, &w, none);
  CHECK(n["tool_calls"].empty());
  CHECK(n["content"] == two);
  CHECK(w.size() == 2);
  // Forced: the prompt ended with <|tool_call>call:f{, so the answer starts inside the call's arguments.
  g4::ToolChoice forced({"f", "g"});
  forced.forced = "f";
  for (size_t cut = 0; cut <= 12; ++cut) {
    const std::string answer = "a:<|\"|>x<|\"|>}<tool_call|>";
    g4::ToolCallParser p(forced);
    const Json m = Concatenate({p.Feed(answer.substr(0, cut)), p.Feed(answer.substr(cut)), p.Finish()});
    REQUIRE(m["tool_calls"].size() == 1);
    CHECK(m["tool_calls"][0]["function"]["name"] == "f");
    CHECK(m["tool_calls"][0]["function"]["arguments"] == R"({"a":"x"})");
    CHECK(m["content"] == "");
  }
  // parallel_tool_calls false: the first well-formed call ends the answer; nothing after it is read.
  g4::ToolChoice one({"f", "g"});
  one.max_calls = 1;
  g4::ToolCallParser p(one);
  g4::MessageDelta d1 = p.Feed("<|tool_call>call:f{a:}<tool_call|>");  // malformed: text, does not count
  CHECK_FALSE(p.ended());
  g4::MessageDelta d2 = p.Feed(two);
  CHECK(p.ended());
  const Json m = Concatenate({d1, d2, p.Feed("more"), p.Finish()});
  REQUIRE(m["tool_calls"].size() == 1);
  CHECK(m["tool_calls"][0]["function"]["name"] == "f");
  CHECK(m["content"] == "<|tool_call>call:f{a:}<tool_call|>");
}

}  // namespace g4_test_tool_calls
