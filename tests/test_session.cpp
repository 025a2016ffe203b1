// The KV cache's contract (rollback, residency, copy, save/restore) and the session layer over it: cache reuse
// across turns equals recomputation, changed media never come from the cache, stops and cancellation are per call.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "g4/session/scheduler.hpp"
#include "g4/session/session.hpp"
#include "support/compare.hpp"
#include "support/random_model.hpp"
#include "support/demo_model.hpp"
#include "support/test_data.hpp"

namespace g4_test_session {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

using testing::RelErr;
using testing::Tokens;

// Logits of every position of `tokens` run in one fresh sequence: the recomputation everything is compared with.
std::vector<float> FreshLogits(const Gemma4& model, std::span<const int32_t> tokens) {
  Sequence s = model.NewSequence(tokens.size() + 1, tokens.size());
  ForwardOutput out;
  out.all_logits = true;
  model.Forward(s, {tokens}, out);
  return out.logits;
}

std::vector<float> Continue(const Gemma4& model, Sequence& seq, std::span<const int32_t> tokens) {
  ForwardOutput out;
  out.all_logits = true;
  model.Forward(seq, {tokens}, out);
  return out.logits;
}

// Max |difference| over the positions both caches hold, every owning layer, keys and values.
double CacheDiff(const Sequence& a, const Sequence& b) {
  REQUIRE(a.pos() == b.pos());
  double d = 0;
  for (int L = 0; L < a.cache.n_layers(); ++L) {
    if (!a.cache.owns(L)) continue;
    const LayerKV &x = a.cache.layer(L), &y = b.cache.layer(L);
    std::vector<float> xk(x.head_dim), xv(x.head_dim), yk(x.head_dim), yv(x.head_dim);
    for (int64_t p = std::max(x.held_begin(), y.held_begin()); p < a.pos(); ++p)
      for (size_t h = 0; h < x.n_kv_heads; ++h) {
        x.Load(h, p, xk.data(), xv.data());
        y.Load(h, p, yk.data(), yv.data());
        for (size_t i = 0; i < x.head_dim; ++i) d = std::max({d, double(std::abs(xk[i] - yk[i])), double(std::abs(xv[i] - yv[i]))});
      }
  }
  return d;
}

}  // namespace

// Window 4, chunks of 6: sliding rings of 4 + 6 - 1 = 9 slots.
TEST_CASE("kv cache: rollback within the rings equals recomputation; beyond them it is an error, never numbers") {
  ThreadPool pool(2);
  testing::RandomModel rm = testing::MakeRandomModel("SSF", 4, true, 3);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  const auto tokens = Tokens(40, rm.cfg.vocab_size, 5);
  const auto junk = Tokens(4, rm.cfg.vocab_size, 99);  // a speculative round: at most max_chunk - 2 tokens
  const size_t V = static_cast<size_t>(rm.cfg.vocab_size);
  const std::vector<float> fresh = FreshLogits(model, tokens);

  Sequence seq = model.NewSequence(64, 6);
  Continue(model, seq, std::span(tokens).first(30));
  // Undo a branch: going on from 30 needs positions 25.. (window 4 + the drafter's 1).
  Continue(model, seq, junk);  // positions 30..33: the ring now holds 25..33
  CHECK(seq.CanRollback(30));
  seq.Rollback(30);
  CHECK(RelErr(Continue(model, seq, std::span(tokens).subspan(30, 10)), std::span(fresh).subspan(30 * V)) < 1e-5);

  Sequence far = model.NewSequence(64, 6);
  Continue(model, far, std::span(tokens).first(30));  // the ring holds 21..29
  CHECK_FALSE(far.CanRollback(20));
  CHECK_THROWS_WITH_AS(far.Rollback(20), doctest::Contains("ring of 9 slots"), Error);
  CHECK(far.pos() == 30);  // a refused rollback changes nothing
  CHECK_THROWS_AS(far.Rollback(31), Error);  // forward is not a rollback
  // What the rings evicted cannot be read, by a test or by attention.
  std::vector<float> k(8), v(8);
  CHECK_THROWS_WITH_AS(far.cache.layer(0).Load(0, 5, k.data(), v.data()), doctest::Contains("not all in the cache"), Error);
  far.Rollback(0);  // always possible: recompute from the start
  CHECK(RelErr(Continue(model, far, tokens), fresh) < 1e-5);
}

TEST_CASE("kv cache: the drafter reads only positions the target still holds") {
  ThreadPool pool(1);
  testing::RandomModel tm = testing::MakeRandomModel("SSFSSF", 4, true, 17, 32, 4, 2, 8, 16);
  const Gemma4 target(tm.cfg, tm.weights, pool);
  testing::RandomModel dm = testing::MakeRandomDrafter(tm.cfg, 23);
  const Drafter drafter(dm.cfg, dm.weights, dm.assistant, target);
  Sequence seq = target.NewSequence(64, 6);
  ForwardOutput out;
  target.Forward(seq, {Tokens(30, tm.cfg.vocab_size, 1)}, out);
  std::vector<float> logits, h;
  CHECK_NOTHROW(drafter.Step(seq, 2, out.final_hidden, seq.pos(), seq.pos(), logits, h));
  // Reading as if the cache ended 10 positions earlier needs positions the ring has overwritten.
  CHECK_THROWS_WITH_AS(drafter.Step(seq, 2, out.final_hidden, 20, 20, logits, h), doctest::Contains("not all in the cache"), Error);
}

TEST_CASE("kv cache: a cloned sequence and a saved and restored one continue exactly like the original") {
  ThreadPool pool(2);
  testing::RandomModel rm = testing::MakeRandomModel("SSF", 4, true, 7);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  const auto tokens = Tokens(32, rm.cfg.vocab_size, 11);
  for (Type type : {Type::F32, Type::F16}) {
    CAPTURE(TypeName(type));
    Sequence seq = model.NewSequence(64, 6, type);
    Continue(model, seq, std::span(tokens).first(24));
    Sequence copy = seq.Clone();
    const std::string path = (std::filesystem::temp_directory_path() / "g4_test_session.kv").string();
    const std::vector<uint64_t> keys(tokens.begin(), tokens.begin() + 24);
    SequenceFile::Save(seq, keys, path);
    Sequence restored = model.NewSequence(64, 6, type);
    CHECK(SequenceFile::Restore(restored, path) == keys);
    Sequence wider = model.NewSequence(64, 16, type);  // another ring size: rows are stored by position
    SequenceFile::Restore(wider, path);
    const auto next = std::span(tokens).subspan(24);
    const std::vector<float> want = Continue(model, seq, next);
    CHECK(RelErr(Continue(model, copy, next), want) == 0.0);
    CHECK(RelErr(Continue(model, restored, next), want) == 0.0);
    CHECK(RelErr(Continue(model, wider, next), want) == 0.0);
    CHECK(CacheDiff(copy, seq) == 0.0);

    // A truncated, a corrupted and a foreign file are refused, naming the file, and leave the target usable.
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto write = [&](const std::string& b) { std::ofstream(path, std::ios::binary | std::ios::trunc) << b; };
    Sequence target = model.NewSequence(64, 6, type);
    write(bytes.substr(0, bytes.size() / 2));
    CHECK_THROWS_WITH_AS(SequenceFile::Restore(target, path), doctest::Contains(path.c_str()), Error);
    std::string flipped = bytes;
    flipped[bytes.size() / 2] ^= 1;
    write(flipped);
    CHECK_THROWS_WITH_AS(SequenceFile::Restore(target, path), doctest::Contains("checksum"), Error);
    write(bytes);
    testing::RandomModel other = testing::MakeRandomModel("SSF", 4, true, 7, 32, 4, 2, 16);  // head_dim 16
    const Gemma4 foreign(other.cfg, other.weights, pool);
    Sequence alien = foreign.NewSequence(64, 6, type);
    CHECK_THROWS_WITH_AS(SequenceFile::Restore(alien, path), doctest::Contains("foreign"), Error);
    Sequence short_ring = model.NewSequence(20, 6, type);  // context 20 < position 24
    CHECK_THROWS_AS(SequenceFile::Restore(short_ring, path), Error);
    std::filesystem::remove(path);
  }
}

TEST_CASE("forward: soft embeddings carry their row count; an index past them is an error") {
  ThreadPool pool(1);
  testing::RandomModel rm = testing::MakeRandomModel("SF", 4, true, 5);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  const std::vector<int32_t> tokens{1, 2, 3};
  const std::vector<float> rows(2 * static_cast<size_t>(rm.cfg.hidden_size), 0.5f);
  const std::vector<int32_t> ok{-1, 1, -1}, bad{-1, 2, -1};
  Sequence seq = model.NewSequence(8);
  ForwardOutput out;
  CHECK_NOTHROW(model.Forward(seq, {tokens, rows, ok}, out));
  Sequence seq2 = model.NewSequence(8);
  CHECK_THROWS_WITH_AS(model.Forward(seq2, {tokens, rows, bad}, out), doctest::Contains("outside the 2 soft embedding rows"), Error);
}

namespace {

using Demo = testing::DemoModel;

GenerateParams Greedy(size_t n) {
  GenerateParams p;
  p.sampling.temperature = 0;
  p.max_tokens = n;
  return p;
}

}  // namespace

TEST_CASE("session: a second turn that reuses the cache equals a fresh run of the whole conversation") {
  Demo demo;
  Session session(demo.lm);
  std::vector<Message> chat{{"user", {Part::Text("def add(a, b):")}}};
  const Reply first = session.Respond(chat, Greedy(12));
  CHECK(first.cached_tokens == 0);
  CHECK(first.tokens.size() == 12);
  chat.push_back({"model", {Part::Text(first.text)}});
  chat.push_back({"user", {Part::Text("Returns the")}});
  const Reply second = session.Respond(chat, Greedy(16));
  CHECK(second.cached_tokens > 8);  // at least the first user turn came from the cache
  Session fresh(demo.lm);
  const Reply again = fresh.Respond(chat, Greedy(16));
  CHECK(again.cached_tokens == 0);
  CHECK(second.tokens == again.tokens);
  CHECK(second.text == again.text);
  CHECK(CacheDiff(session.sequence(), fresh.sequence()) < 1e-5);
}

TEST_CASE("session: speculative decoding with the drafter gives the plain greedy answer") {
  Demo demo(/*drafter=*/true);
  GenerateParams p = Greedy(40);
  Session a(demo.lm), b(demo.lm);
  const Reply spec = a.Complete("Returns the", {}, p);
  p.speculative = false;
  const Reply plain = b.Complete("Returns the", {}, p);
  CHECK(spec.tokens == plain.tokens);
  CHECK(spec.draft_stats.rounds > 0);
  CHECK(spec.draft_stats.accepted > 0);
  CHECK(plain.draft_stats.rounds == 0);
  CHECK(CacheDiff(a.sequence(), b.sequence()) < 1e-5);
}

TEST_CASE("session: stops, suppressed tokens and cancellation are per call; the session goes on after each") {
  Demo demo;
  Session session(demo.lm);
  const Reply plain = session.Complete("Returns the", {}, Greedy(24));
  REQUIRE(plain.text.size() > 6);
  CHECK(plain.finish == FinishReason::kLength);
  // A stop string cuts the text before it.
  GenerateParams stop = Greedy(24);
  stop.stop_strings = {plain.text.substr(4, 3)};
  const Reply stopped = session.Complete("Returns the", {}, stop);
  CHECK(stopped.finish == FinishReason::kStop);
  CHECK(stopped.text == plain.text.substr(0, plain.text.find(stop.stop_strings[0])));
  // A suppressed token is never chosen, even greedily.
  GenerateParams no_first = Greedy(4);
  no_first.sampling.suppressed = {plain.tokens[0]};
  const Reply other = session.Complete("Returns the", {}, no_first);
  CHECK(other.tokens[0] != plain.tokens[0]);
  // A stop id ends the answer on it.
  GenerateParams stop_id = Greedy(24);
  stop_id.stop_ids = {plain.tokens[3]};
  const Reply ended = session.Complete("Returns the", {}, stop_id);
  CHECK(ended.finish == FinishReason::kStop);
  CHECK(ended.tokens.back() == plain.tokens[3]);
  // The callback cancels; the next call is unaffected.
  size_t pieces = 0;
  const Reply cancelled = session.Complete("Returns the", {}, Greedy(24), [&](std::string_view) { return ++pieces < 2; });
  CHECK(cancelled.finish == FinishReason::kCancelled);
  CHECK(cancelled.tokens.size() < plain.tokens.size());
  const Reply after = session.Complete("Returns the", {}, Greedy(24));
  CHECK(after.tokens == plain.tokens);
  CHECK(after.cached_tokens > 0);
}

TEST_CASE("session: a saved conversation restores into a new session and continues identically") {
  Demo demo;
  Session session(demo.lm);
  std::vector<Message> chat{{"user", {Part::Text("def mean(values):")}}};
  const Reply first = session.Respond(chat, Greedy(10));
  const std::string path = (std::filesystem::temp_directory_path() / "g4_test_session_chat.kv").string();
  session.Save(path);
  chat.push_back({"model", {Part::Text(first.text)}});
  chat.push_back({"user", {Part::Text("and the median?")}});
  Session restored(demo.lm);
  restored.Restore(path);
  CHECK(restored.sequence().pos() == session.sequence().pos());
  Session forked = session.Fork();
  const Reply a = session.Respond(chat, Greedy(12)), b = restored.Respond(chat, Greedy(12)), c = forked.Respond(chat, Greedy(12));
  CHECK(b.cached_tokens == a.cached_tokens);
  CHECK(c.cached_tokens == a.cached_tokens);
  CHECK(a.tokens == b.tokens);
  CHECK(a.tokens == c.tokens);
  std::filesystem::remove(path);
}

TEST_CASE("session: an image conversation reuses the cache; a changed image of the same size does not") {
  ThreadPool pool(2);
  ModelFiles files;
  files.model = testing::DataDir() + "/golden-gguf/multimodal-bf16.gguf";
  files.mmproj = testing::DataDir() + "/golden-gguf/multimodal-mmproj-bf16.gguf";
  const LoadedModel lm(files, pool);
  const RgbImage picture = LoadImage(testing::DataDir() + "/media/sample.png");
  RgbImage negative = picture;
  for (uint8_t& px : negative.pixels) px = static_cast<uint8_t>(255 - px);
  const Media a = lm.EmbedImage(picture, 70), b = lm.EmbedImage(negative, 70);
  REQUIRE(a->n == b->n);

  auto conversation = [](const Media& m, const std::string& more) {
    std::vector<Message> chat{{"user", {Part::Image(m), Part::Text("What is this?")}}};
    if (!more.empty()) {
      chat.push_back({"model", {Part::Text("A picture.")}});
      chat.push_back({"user", {Part::Text(more)}});
    }
    return chat;
  };
  Session session(lm);
  session.Respond(conversation(a, ""), Greedy(4));
  const std::vector<uint64_t>& keys = session.cached_keys();
  const size_t image_start = static_cast<size_t>(std::find_if(keys.begin(), keys.end(), [](uint64_t k) { return k >> 63; }) - keys.begin());
  REQUIRE(image_start < keys.size());
  const Reply second = session.Respond(conversation(a, "And the colours?"), Greedy(8));
  CHECK(second.cached_tokens > a->n);  // the image's soft tokens came from the cache
  Session fresh(lm);
  CHECK(fresh.Respond(conversation(a, "And the colours?"), Greedy(8)).tokens == second.tokens);

  // Same size, other pixels: the prompt's tokens are identical, but the cache must stop before the image.
  const Reply changed = session.Respond(conversation(b, "And the colours?"), Greedy(8));
  CHECK(changed.cached_tokens == image_start);
  Session fresh_b(lm);
  const Reply want = fresh_b.Respond(conversation(b, "And the colours?"), Greedy(8));
  CHECK(changed.tokens == want.tokens);
  // Prefills split at other points sum in other orders (~3e-5 here); stale image entries would differ by O(1).
  CHECK(CacheDiff(session.sequence(), fresh_b.sequence()) < 1e-4);
}

TEST_CASE("session: a model file with a foreign or broken chat template still runs raw; chat says what it does instead") {
  namespace fs = std::filesystem;
  const fs::path demo = testing::DataDir() + "/demo";
  const fs::path dir = fs::temp_directory_path() / "g4_test_foreign_template";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(demo))
    if (entry.is_regular_file()) fs::create_symlink(fs::absolute(entry.path()), dir / entry.path().filename());
  Demo plain;
  Session reference(plain.lm);
  const Reply want = reference.Complete("Returns the", {}, Greedy(12));
  for (const std::string tmpl : {"{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", "{% if %}broken"}) {
    CAPTURE(tmpl);
    std::ofstream(dir / "chat_template.jinja", std::ios::trunc) << tmpl;
    ThreadPool pool(2);
    ModelFiles files;
    files.model = dir.string();
    const LoadedModel lm(files, pool);
    Session session(lm);
    CHECK(session.Complete("Returns the", {}, Greedy(12)).tokens == want.tokens);  // raw mode reads no template
    // Chat: a template that parses is rendered as the file says; a broken one is reported and the built-in
    // format is used.
    const bool broken = tmpl.starts_with("{% if %}");
    CHECK((lm.chat_template() == nullptr) == broken);
    CHECK(lm.chat_note().empty() == !broken);
    const std::vector<Message> chat{{"user", {Part::Text("def add(a, b):")}}};
    CHECK(session.Respond(chat, Greedy(4)).tokens.size() > 0);
  }
  fs::remove_all(dir);
}

namespace {

// log_softmax of one row of logits, in double: the test's own truth for logprobs.
std::vector<double> LogSoftmax(std::span<const float> row) {
  const double max = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (const float l : row) sum += std::exp(l - max);
  std::vector<double> out(row.size());
  for (size_t i = 0; i < row.size(); ++i) out[i] = row[i] - max - std::log(sum);
  return out;
}

// Checks a reply's logprobs against the log-softmax of fresh logits over prompt + answer (Gemma4::Forward in one
// pass): the sampled token's, and top alternatives that are the most likely ones, most likely first.
void CheckLogprobs(const LoadedModel& lm, std::span<const int32_t> prompt, const Reply& r, size_t top_n) {
  REQUIRE(r.logprobs.has_value());
  std::vector<int32_t> all(prompt.begin(), prompt.end());
  all.insert(all.end(), r.tokens.begin(), r.tokens.end());
  const std::vector<float> logits = FreshLogits(lm.model(), all);
  const size_t V = static_cast<size_t>(lm.model().config().vocab_size);
  const std::vector<int32_t>& stops = lm.model().config().tokens.stop_ids;
  const bool last_is_stop = !r.tokens.empty() && std::find(stops.begin(), stops.end(), r.tokens.back()) != stops.end();
  REQUIRE(r.logprobs->size() == r.tokens.size() - (last_is_stop ? 1 : 0));
  for (size_t i = 0; i < r.logprobs->size(); ++i) {
    CAPTURE(i);
    const TokenLogprob& t = (*r.logprobs)[i];
    const std::vector<double> want = LogSoftmax(std::span(logits).subspan((prompt.size() - 1 + i) * V, V));
    CHECK(t.id == r.tokens[i]);
    CHECK(t.text == lm.tokenizer().TokenText(t.id));
    CHECK(t.logprob == doctest::Approx(want[static_cast<size_t>(t.id)]).epsilon(1e-3));
    std::vector<double> sorted = want;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    REQUIRE(t.top.size() == top_n);
    for (size_t k = 0; k < top_n; ++k) {
      CHECK(t.top[k].logprob == doctest::Approx(want[static_cast<size_t>(t.top[k].id)]).epsilon(1e-3));
      CHECK(t.top[k].logprob == doctest::Approx(sorted[k]).epsilon(1e-3));  // the k-th most likely (ties aside)
      CHECK(t.top[k].text == lm.tokenizer().TokenText(t.top[k].id));
    }
  }
}

}  // namespace

TEST_CASE("session: logprobs are the log-softmax of the model's own logits, whether drafted or not, and stream with the text") {
  Demo demo(/*drafter=*/true);
  GenerateParams p = Greedy(16);
  p.logprobs = true;
  p.top_logprobs = 5;
  p.sampling.temperature = 0.8f;  // logprobs describe the model, not the sampler's settings
  p.sampling.seed = 7;
  p.sampling.frequency_penalty = 1.0f;
  p.speculative = false;
  const Prompt prompt = Session::RawPrompt(demo.lm, "Returns the", {});
  Session plain(demo.lm);
  std::vector<TokenLogprob> streamed;
  std::string text;
  const Reply r = plain.Complete("Returns the", {}, p, {}, [&](const MessageDelta& d) {
    streamed.insert(streamed.end(), d.logprobs.begin(), d.logprobs.end());
    text += d.content;
    return true;
  });
  CheckLogprobs(demo.lm, prompt.tokens(), r, 5);
  CHECK(text == r.text);
  REQUIRE(streamed.size() == r.logprobs->size());
  for (size_t i = 0; i < streamed.size(); ++i) CHECK(streamed[i].id == (*r.logprobs)[i].id);
  // With the drafter (verification logits of several positions per pass; speculative sampling draws other
  // tokens from the same distribution): each token's logprob is still the model's at its position.
  p.speculative = true;
  Session drafted(demo.lm);
  const Reply d = drafted.Complete("Returns the", {}, p);
  CHECK(d.draft_stats.rounds > 0);
  CheckLogprobs(demo.lm, prompt.tokens(), d, 5);
  // Not asked: none recorded.
  p.logprobs = false;
  CHECK_FALSE(Session(demo.lm).Complete("Returns the", {}, p).logprobs.has_value());
}

TEST_CASE("session: tool_choice shapes the prompt; a forced call is parsed from its start; one call ends the answer") {
  const testing::DemoModel demo(false, testing::OfficialTemplatePath());
  const LoadedModel& lm = demo.lm;
  const Tokenizer& tok = lm.tokenizer();
  using Json = nlohmann::ordered_json;
  const Json tool = {{"type", "function"},
                     {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}};
  const Json bare = {{"messages", {{{"role", "user"}, {"content", "Weather in Paris?"}}}}};
  Json with_tools = bare;
  with_tools["tools"] = {tool};
  const auto ids = [&](const Json& request) { return Session::ChatPrompt(lm, request, {}, false).tokens(); };
  CHECK(ids(with_tools) != ids(bare));
  Json none = with_tools;
  none["tool_choice"] = "none";
  CHECK(ids(none) == ids(bare));  // no tools offered
  Json forced = with_tools;
  forced["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  std::vector<int32_t> want = ids(with_tools);
  const std::vector<int32_t> call = tok.Encode("<|tool_call>call:get_weather{", {.add_bos = false, .parse_special = true});
  want.insert(want.end(), call.begin(), call.end());
  CHECK(ids(forced) == want);
  forced["tool_choice"]["function"]["name"] = "rm";
  CHECK_THROWS_WITH_AS(ids(forced), doctest::Contains("tool_choice"), Error);
  forced["tool_choice"]["function"]["name"] = "get_weather";

  // The demo model continues the forced call; whatever it writes, the stream and the reply agree: the call's id
  // and name first, then fragments that join to the reply's arguments (or, malformed, the call withdrawn and its
  // text, prefix included, in the content).
  Session session(lm);
  std::vector<ToolCallDelta> deltas;
  const Reply r = session.RespondTo(forced, {}, Greedy(40), {}, [&](const MessageDelta& d) {
    deltas.insert(deltas.end(), d.tool_calls.begin(), d.tool_calls.end());
    return true;
  });
  REQUIRE(!deltas.empty());
  CHECK(deltas[0].name == "get_weather");
  CHECK(deltas[0].arguments.empty());
  std::string fragments;
  bool withdrawn = false;
  for (const ToolCallDelta& t : deltas) fragments += t.arguments, withdrawn = withdrawn || t.withdrawn;
  if (withdrawn) {
    CHECK(r.tool_calls.empty());
    CHECK(r.text.starts_with("<|tool_call>call:get_weather{"));
    CHECK(!r.warnings.empty());
  } else {
    REQUIRE(r.tool_calls.size() >= 1);
    CHECK(r.tool_calls[0]["function"]["arguments"] == fragments);
  }
  MESSAGE("demo model, forced call: " << (withdrawn ? "malformed, returned as text: " + r.text : "arguments " + fragments));

  // parallel_tool_calls false: the answer ends with its first call (Push says stop), the rest is not read.
  Json one = with_tools;
  one["parallel_tool_calls"] = false;
  Reply reply;
  const GenerateParams params;
  const TextCallback no_text;  // (Output keeps references: no temporaries)
  const DeltaCallback no_deltas;
  session_detail::Output out(tok, params, reply, no_text, no_deltas, /*chat=*/true, RequestToolChoice(one));
  const std::vector<int32_t> answer =
      tok.Encode("<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|><|tool_call>call:get_weather{city:<|\"|>Rome<|\"|>}<tool_call|>");
  size_t close = 0;  // the token that completes the first "<tool_call|>" (several text tokens in the demo's vocabulary)
  for (std::string seen; seen.find("<tool_call|>") == std::string::npos; ++close) seen += tok.TokenText(answer[close]);
  size_t pushed = 0;
  while (pushed < answer.size() && out.Push(answer[pushed])) ++pushed;
  CHECK(pushed + 1 == close);  // Push said stop at the first call's end
  out.Finish();
  REQUIRE(reply.tool_calls.size() == 1);
  CHECK(reply.tool_calls[0]["function"]["arguments"] == R"({"city":"Paris"})");
}

TEST_CASE("scheduler: logprobs and a forced call come out as in Session (one implementation, session_detail::Output)") {
  Demo demo;
  GenerateParams p = Greedy(12);
  p.logprobs = true;
  p.top_logprobs = 3;
  Scheduler sched(demo.lm, SchedulerOptions{.slots = 1, .queue = 4, .context = 256});
  const Prompt prompt = Session::RawPrompt(demo.lm, "Returns the", {});
  std::vector<TokenLogprob> streamed;
  SchedulerRequest req(prompt, p);
  req.on_delta = [&](const MessageDelta& d) {
    streamed.insert(streamed.end(), d.logprobs.begin(), d.logprobs.end());
    return true;
  };
  const uint64_t id = sched.Submit(std::move(req));
  sched.RunUntilIdle();
  const std::optional<Completion> c = sched.Take(id);
  REQUIRE(c.has_value());
  CHECK(c->error.empty());
  CheckLogprobs(demo.lm, prompt.tokens(), c->reply, 3);
  CHECK(streamed.size() == c->reply.logprobs->size());
  const Reply alone = Session(demo.lm).Complete("Returns the", {}, p);
  CHECK(alone.tokens == c->reply.tokens);
}

}  // namespace g4_test_session
