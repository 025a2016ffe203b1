// g4 serve's engine (g4/serve/engine.hpp) on the demo model: requests run through the batched scheduler give what a
// Session gives alone, concurrent requests too; a conversation's next turn lands in the slot that caches it; over-long
// prompts and full queues are refused with the right status; cancellation frees the slot; Stop lets running
// requests finish within its grace and refuses new ones; response_format's answers parse and validate. Also /metrics'
// text and /tokenize, /detokenize.
#include <doctest/doctest.h>

#include <sstream>
#include <thread>

#include "g4/serve/engine.hpp"
#include "g4/serve/metrics.hpp"
#include "g4/serve/tokenize.hpp"
#include "support/demo_model.hpp"
#include "support/test_data.hpp"

namespace g4_test_serve_engine {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::serve;

namespace {

using Demo = testing::DemoModel;

Json Body(const Json& messages, int max_tokens = 8) { return {{"messages", messages}, {"max_tokens", max_tokens}, {"temperature", 0}}; }
Json User(const std::string& text) { return Json::array({{{"role", "user"}, {"content", text}}}); }

// Submits a chat request and reads its events to the end; the streamed content must add up to the reply's text.
Reply Run(Engine& engine, const Json& body, const Capabilities& caps = {}) {
  auto r = std::make_shared<const ChatRequest>(ParseChatRequest(body, caps));
  std::shared_ptr<Exchange> ex = engine.Submit(ChatEngineRequest(r));
  std::string streamed;
  for (;;) {
    auto e = ex->Next(std::chrono::milliseconds(120000));
    REQUIRE(e.has_value());
    if (e->kind == Exchange::Event::Kind::kFailed) FAIL(e->error->what());
    if (e->kind == Exchange::Event::Kind::kDelta) streamed += e->delta.content;
    if (e->kind == Exchange::Event::Kind::kDone) {
      CHECK(e->reply->text == streamed);
      return *e->reply;
    }
  }
}

// The same request answered by a Session alone (what the engine must reproduce).
Reply Alone(const LoadedModel& lm, const Json& body) {
  const ChatRequest r = ParseChatRequest(body, {});
  Session s(lm, {.context = 512});
  return s.RespondTo(r.request, {}, r.params);
}

EngineOptions Options(size_t slots, size_t queue = 8) {
  EngineOptions eo;
  eo.scheduler.slots = slots;
  eo.scheduler.queue = queue;
  eo.scheduler.context = 512;
  eo.scheduler.prefill_budget = 16;
  return eo;
}

}  // namespace

TEST_CASE("serve engine: an exchange carries events one way and cancellation the other") {
  Exchange ex;
  CHECK_FALSE(ex.Next(std::chrono::milliseconds(1)).has_value());
  MessageDelta d;
  d.content = "x";
  CHECK(ex.Delta(d));
  CHECK(ex.Delta(MessageDelta{}));  // empty: not queued
  int hooked = 0;
  ex.OnCancel([&] { ++hooked; });
  ex.Cancel();
  ex.Cancel();  // once is enough
  CHECK(hooked == 1);
  CHECK_FALSE(ex.Delta(d));  // the generation stops at its next piece
  CHECK(ex.Next(std::chrono::milliseconds(1))->delta.content == "x");
  CHECK(ex.Next(std::chrono::milliseconds(1))->delta.content == "x");
  CHECK_FALSE(ex.Next(std::chrono::milliseconds(1)).has_value());
  Exchange late;  // cancelled before the engine hooks in: the hook runs when set
  late.Cancel();
  late.OnCancel([&] { ++hooked; });
  CHECK(hooked == 2);
}

TEST_CASE("serve engine: answers equal a Session's, a next turn lands in the slot that caches it") {
  Demo demo;
  Engine engine(demo.lm, Options(2));
  const Json a1 = User("def add(a, b):");
  const Json b1 = User("class Stack:");
  const Reply ra = Run(engine, Body(a1));
  const Reply rb = Run(engine, Body(b1));
  CHECK(ra.tokens == Alone(demo.lm, Body(a1)).tokens);
  CHECK(rb.tokens == Alone(demo.lm, Body(b1)).tokens);
  CHECK(ra.cached_tokens == 0);
  CHECK(rb.cached_tokens == 0);  // the empty slot, not A's (their shared chat header is a weak match)
  Json a2 = a1;
  a2.push_back({{"role", "assistant"}, {"content", ra.text}});
  a2.push_back({{"role", "user"}, {"content", "Returns the"}});
  const Reply ra2 = Run(engine, Body(a2));
  CHECK(ra2.cached_tokens > 4);  // A's slot still holds the first turn
  CHECK(ra2.tokens == Alone(demo.lm, Body(a2)).tokens);
  // The same request twice: the same greedy answer, the whole prompt but its last token cached.
  const Reply rb2 = Run(engine, Body(b1));
  CHECK(rb2.text == rb.text);
  CHECK(rb2.cached_tokens == rb2.prompt_tokens - 1);
  const Engine::Stats st = engine.stats();
  CHECK(st.requests == 4);
  CHECK(st.failed == 0);
  CHECK(st.generated_tokens == ra.tokens.size() + rb.tokens.size() + ra2.tokens.size() + rb2.tokens.size());
  CHECK(st.cached_tokens == ra2.cached_tokens + rb2.cached_tokens);
  CHECK(st.busy == 0);
  CHECK(st.slots == 2);
  CHECK(st.cache_tokens > 0);
}

TEST_CASE("serve engine: concurrent requests from several threads each get their solo answer") {
  Demo demo;
  Engine engine(demo.lm, Options(3));
  const std::vector<std::string> prompts = {"def add(a, b):", "class Stack:", "import os", "The history of", "for i in range(10):"};
  std::vector<Reply> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] { got[i] = Run(engine, Body(User(prompts[i]), 12)); });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO(prompts[i]);
    CHECK(got[i].tokens == Alone(demo.lm, Body(User(prompts[i]), 12)).tokens);
  }
  CHECK(engine.stats().requests == prompts.size());
}

TEST_CASE("serve engine: refusals (over the context: 400; queue full: 503), cancellation, and stopping") {
  Demo demo;
  Engine engine(demo.lm, Options(1, 1));
  const Json b1 = User("class Stack:");
  auto submit = [&](const Json& body) { return engine.Submit(ChatEngineRequest(std::make_shared<const ChatRequest>(ParseChatRequest(body, {})))); };
  try {
    submit(Body(User(std::string(3000, 'x') + " y z")));
    FAIL("an over-long prompt was accepted");
  } catch (const ApiError& e) {
    CHECK(e.status() == 400);
    CHECK(e.code() == "context_length_exceeded");
  }
  const Reply rb = Run(engine, Body(b1));  // the engine goes on

  // One slot, a queue of one: a long prompt (prefilled 16 tokens a step) runs, one waits, a third gets 503.
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word" + std::to_string(i) + " ";
  std::shared_ptr<Exchange> running = submit(Body(User(long_text), 64));
  while (!(engine.stats().busy == 1 && engine.stats().queued == 0)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::shared_ptr<Exchange> waiting = submit(Body(b1));
  try {
    submit(Body(b1));
    FAIL("a request past the queue was accepted");
  } catch (const ApiError& e) {
    CHECK(e.status() == 503);
  }
  // Cancelling the running one frees the slot: the waiting one then answers as before.
  running->Cancel();
  for (;;) {
    auto e = running->Next(std::chrono::milliseconds(60000));
    REQUIRE(e.has_value());
    if (e->kind == Exchange::Event::Kind::kDelta) continue;
    REQUIRE(e->kind == Exchange::Event::Kind::kDone);
    CHECK(e->reply->finish == FinishReason::kCancelled);
    CHECK(e->reply->tokens.size() < 64);
    break;
  }
  for (;;) {
    auto e = waiting->Next(std::chrono::milliseconds(60000));
    REQUIRE(e.has_value());
    if (e->kind == Exchange::Event::Kind::kDelta) continue;
    REQUIRE(e->kind == Exchange::Event::Kind::kDone);
    CHECK(e->reply->tokens == rb.tokens);
    break;
  }

  // Stop: a running request finishes within the grace; afterwards requests are refused with 503.
  std::shared_ptr<Exchange> last = submit(Body(b1));
  engine.Stop(std::chrono::milliseconds(120000));
  std::optional<Reply> done;
  while (auto e = last->Next(std::chrono::milliseconds(1)))
    if (e->kind == Exchange::Event::Kind::kDone) done = e->reply;
  REQUIRE(done.has_value());
  CHECK(done->tokens == rb.tokens);
  try {
    submit(Body(b1));
    FAIL("a request after Stop was accepted");
  } catch (const ApiError& e) {
    CHECK(e.status() == 503);
  }
}

TEST_CASE("serve engine: response_format constrains the answer; what cannot be constrained is a 400 naming the field") {
  Demo demo;
  Engine engine(demo.lm, Options(2));
  const Json schema = Json::parse(R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
      "age": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
      "required": ["name", "age"], "additionalProperties": false})");
  for (int seed = 1; seed <= 3; ++seed) {
    Json body = Body(User("Describe a person."), 200);
    body["temperature"] = 1.0;
    body["seed"] = seed;
    body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "person"}, {"schema", schema}}}};
    const Reply r = Run(engine, body);
    INFO("seed " << seed << ": " << r.text);
    REQUIRE(r.finish == FinishReason::kStop);
    // Validated here, independently of the grammar: the object's keys and their types.
    const Json v = Json::parse(r.text);
    REQUIRE(v.is_object());
    CHECK(v.contains("name"));
    CHECK(v.contains("age"));
    for (const auto& [key, value] : v.items()) {
      if (key == "name") CHECK((value.is_string() && value.get<std::string>().size() <= 12));
      else if (key == "age") CHECK(value.is_number_integer());
      else if (key == "tags") {
        REQUIRE(value.is_array());
        CHECK(value.size() <= 3);
        for (const Json& t : value) CHECK((t == "a" || t == "b"));
      } else {
        FAIL("unexpected key " << key);
      }
    }
  }
  Json obj = Body(User("Return a JSON object."), 300);
  obj["response_format"] = {{"type", "json_object"}};
  const Reply ro = Run(engine, obj);
  if (ro.finish == FinishReason::kStop) CHECK(Json::parse(ro.text).is_object());
  else CHECK(ro.text.rfind("{", 0) == 0);  // cut by max_tokens inside a free string: still the object's start

  auto refused = [&](const Json& body, const Capabilities& caps) -> ApiError {
    try {
      engine.Submit(ChatEngineRequest(std::make_shared<const ChatRequest>(ParseChatRequest(body, caps))));
    } catch (const ApiError& e) {
      return e;
    }
    FAIL("accepted: " << body.dump());
    return ApiError(0, "");
  };
  Json bad = Body(User("x"));
  bad["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"schema", {{"not", {{"type", "string"}}}}}}}};
  const ApiError e1 = refused(bad, {});
  CHECK(e1.status() == 400);
  CHECK(e1.param() == "response_format.json_schema.schema");
  CHECK(std::string(e1.what()).find("not") != std::string::npos);
  const Json tool = {{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}};
  // Tools beside response_format: the JSON or calls (the demo's vocabulary has no call markers: the JSON alone).
  Demo templated(false, testing::OfficialTemplatePath());  // tools need a template that renders them
  Engine with_template(templated.lm, Options(1));
  Json both = Body(User("Return a JSON object."), 300);
  both["tools"] = {tool};
  both["response_format"] = {{"type", "json_object"}};
  Capabilities templated_caps;
  templated_caps.chat_template = true;
  const Reply rb = Run(with_template, both, templated_caps);
  if (rb.finish == FinishReason::kStop) CHECK(Json::parse(rb.text).is_object());
  else CHECK(rb.text.rfind("{", 0) == 0);
  Json required = Body(User("x"));
  required["tools"] = {tool};
  required["tool_choice"] = "required";
  const ApiError e3 = refused(required, templated_caps);  // the demo's vocabulary has no <|tool_call>
  CHECK(e3.status() == 400);
  CHECK(std::string(e3.what()).find("<|tool_call>") != std::string::npos);
}

TEST_CASE("serve engine: /metrics is Prometheus text with the engine's counts") {
  Engine::Stats s;
  s.requests = 3;
  s.generated_tokens = 40;
  s.generation_seconds = 2;
  s.queued = 1;
  s.busy = 2;
  s.slots = 4;
  const std::string text = MetricsText(s, {{200, 5}, {400, 2}});
  // Every line: a comment (# HELP / # TYPE name), or `name{labels} value` with a name declared by a TYPE line.
  std::set<std::string> typed;
  std::map<std::string, double> values;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      CHECK((type == "counter" || type == "gauge"));
      typed.insert(name);
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    const size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    const std::string series = line.substr(0, space);
    const std::string name = series.substr(0, series.find('{'));
    CHECK(typed.count(name) == 1);
    values[series] = std::stod(line.substr(space + 1));
  }
  CHECK(values.at("g4_http_requests_total{status=\"200\"}") == 5);
  CHECK(values.at("g4_http_requests_total{status=\"400\"}") == 2);
  CHECK(values.at("g4_requests_total") == 3);
  CHECK(values.at("g4_generated_tokens_total") == 40);
  CHECK(values.at("g4_generation_tokens_per_second") == 20);
  CHECK(values.at("g4_requests_queued") == 1);
  CHECK(values.at("g4_slots_busy") == 2);
  CHECK(values.at("g4_slots_total") == 4);
}

TEST_CASE("serve engine: /tokenize and /detokenize in llama-server's shapes") {
  Demo demo;
  const Tokenizer& tok = demo.lm.tokenizer();
  const std::string text = "def add(a, b): <bos> é";
  const Json ids = TokenizeJson(tok, {{"content", text}})["tokens"];
  const std::vector<int32_t> want = tok.Encode(text, {.add_bos = false, .parse_special = false});
  CHECK(ids == Json(want));
  CHECK(TokenizeJson(tok, {{"content", text}, {"add_special", true}})["tokens"][0] == demo.lm.model().config().tokens.bos);
  const Json pieces = TokenizeJson(tok, {{"content", text}, {"with_pieces", true}})["tokens"];
  std::string joined;
  for (const Json& p : pieces) {
    REQUIRE(p["piece"].is_string());  // this text's tokens are whole characters
    joined += p["piece"].get<std::string>();
  }
  CHECK(joined == text);
  CHECK(DetokenizeJson(tok, {{"tokens", ids}})["content"] == text);
  CHECK_THROWS_AS(DetokenizeJson(tok, {{"tokens", {1, -1}}}), ApiError);
  CHECK_THROWS_AS(DetokenizeJson(tok, {{"tokens", {1, tok.size()}}}), ApiError);
  CHECK_THROWS_AS(DetokenizeJson(tok, {{"tokens", "abc"}}), ApiError);
  CHECK_THROWS_AS(TokenizeJson(tok, {{"content", 5}}), ApiError);
}

}  // namespace g4_test_serve_engine
