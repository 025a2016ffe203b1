// The request scheduler: requests arriving and cancelled at random steps (seeded) all end cleanly, every slot is idle
// at the end, each finished request's tokens equal the same request run alone (greedy and seeded sampling, image
// blocks under chunked prefill), prefix reuse equals recomputation, a full queue is an error, other threads submit
// and cancel while one thread serves.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <thread>

#include "g4/session/scheduler.hpp"
#include "support/compare.hpp"
#include "support/random_model.hpp"
#include "support/demo_model.hpp"
#include "support/test_data.hpp"

namespace g4_test_scheduler {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

// The request alone, as Session::Run decodes it (one fresh sequence, Generate, the sampler accepting the prompt).
std::vector<int32_t> Alone(const Gemma4& model, const Prompt& prompt, const GenerateParams& params, size_t context, size_t max_chunk) {
  Sequence seq = model.NewSequence(context, max_chunk);
  Sampler sampler(params.sampling, model.config().vocab_size);
  for (const int32_t id : prompt.tokens()) sampler.Accept(id);
  std::vector<int32_t> stops(model.config().tokens.stop_ids.begin(), model.config().tokens.stop_ids.end());
  stops.insert(stops.end(), params.stop_ids.begin(), params.stop_ids.end());
  return Generate(model, seq, prompt.input(0), {std::min(params.max_tokens, context - prompt.size()), stops}, SamplerVerify(sampler),
                  [&](int32_t id) {
                    sampler.Accept(id);
                    return true;
                  });
}

bool IsPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

struct RandomSetup {
  ThreadPool pool{2};
  testing::RandomModel rm;
  std::unique_ptr<Gemma4> model;
  RandomSetup() : rm(testing::MakeRandomModel("SSFSSF", 4, true, 13)) {
    rm.cfg.tokens.boi = 60;
    rm.cfg.tokens.eoi = 61;
    rm.cfg.tokens.image = 62;
    model = std::make_unique<Gemma4>(rm.cfg, rm.weights, pool);
  }
};

struct Planned {
  std::unique_ptr<Prompt> prompt;
  GenerateParams params;
  int arrive = 0, cancel_at = -1;
  std::vector<int32_t> expected;
};

// Seeded requests: fresh prompts, prompts continuing an earlier one (prefix reuse), some with an image block,
// greedy or seeded sampling, some with a stop id.
std::vector<Planned> Plan(const Gemma4& model, uint32_t seed, size_t n, size_t context, size_t max_chunk) {
  std::mt19937 rng(seed);
  const int V = model.config().vocab_size;
  const size_t H = static_cast<size_t>(model.config().hidden_size);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Planned> plan;
  for (size_t i = 0; i < n; ++i) {
    Planned p;
    p.prompt = std::make_unique<Prompt>(model.config());
    if (i > 0 && uni(0, 1) == 0) {  // continue an earlier request: its prompt and answer, then more
      const Planned& before = plan[static_cast<size_t>(uni(0, static_cast<int>(i) - 1))];
      if (before.prompt->size() + before.expected.size() + 8 < context / 2) {
        p.prompt = std::make_unique<Prompt>(*before.prompt);
        p.prompt->AddTokens(before.expected);
      }
    }
    p.prompt->AddTokens(testing::Tokens(static_cast<size_t>(uni(1, 12)), 60, rng()));
    if (uni(0, 3) == 0) {
      MediaEmbedding m;
      m.n = static_cast<size_t>(uni(1, 4));
      m.rows.resize(m.n * H);
      for (float& f : m.rows) f = std::uniform_real_distribution<float>(-1, 1)(rng);
      p.prompt->AddMedia(m);
      p.prompt->AddTokens(testing::Tokens(static_cast<size_t>(uni(1, 4)), 60, rng()));
    }
    p.params.max_tokens = static_cast<size_t>(uni(1, 14));
    if (uni(0, 1) == 0) {
      p.params.sampling.temperature = 0;
    } else {
      p.params.sampling.temperature = 0.9f;
      p.params.sampling.top_k = 20;
      p.params.sampling.seed = rng();
    }
    if (uni(0, 3) == 0) p.params.stop_ids = {uni(0, V - 1)};
    p.arrive = uni(0, 40);
    if (uni(0, 3) == 0) p.cancel_at = p.arrive + uni(0, 10);
    p.expected = Alone(model, *p.prompt, p.params, context, max_chunk);
    plan.push_back(std::move(p));
  }
  return plan;
}

void CheckIdle(const Scheduler& s) {
  CHECK(s.queued() == 0);
  CHECK(s.running() == 0);
  for (const Scheduler::SlotState& st : s.slot_states()) {
    CHECK(!st.busy);
    CHECK(st.keys.size() == static_cast<size_t>(st.pos));
  }
}

}  // namespace

TEST_CASE("scheduler: requests arriving and cancelled at random steps end cleanly and equal each run alone") {
  RandomSetup setup;
  const Gemma4& model = *setup.model;
  size_t cached_total = 0;
  for (const uint32_t seed : {1u, 2u, 3u}) {
    CAPTURE(seed);
    SchedulerOptions opt;
    opt.slots = 3;
    opt.queue = 32;
    opt.context = 64;
    opt.max_chunk = 6;
    opt.prefill_budget = 1 + seed * 2;  // 3, 5, 7: prompts go in several chunks
    opt.prefill_stall = 0;  // a fixed budget, so each seed plays the same steps (a learned one follows the clock)
    const std::vector<Planned> plan = Plan(model, seed, 16, opt.context, opt.max_chunk);
    Scheduler sched(model, nullptr, {}, opt);
    std::map<uint64_t, size_t> which;  // id -> plan index
    std::map<size_t, uint64_t> id_of;
    std::map<uint64_t, Completion> done;
    size_t submitted = 0;
    for (int step = 0;; ++step) {
      for (size_t i = 0; i < plan.size(); ++i) {
        if (plan[i].arrive == step) {
          SchedulerRequest r{*plan[i].prompt, plan[i].params, {}, [&](const Completion& c) { done[c.id] = c; }};
          const uint64_t id = sched.Submit(std::move(r));
          which[id] = i;
          id_of[i] = id;
          ++submitted;
        }
        if (plan[i].cancel_at == step) sched.Cancel(id_of.at(i));
      }
      const bool more = sched.Step();
      if (!more && submitted == plan.size() && step > 60) break;
      REQUIRE(step < 1000);
    }
    REQUIRE(done.size() == plan.size());
    size_t cancelled = 0, cached = 0;
    for (const auto& [id, c] : done) {
      const Planned& p = plan[which.at(id)];
      CAPTURE(which.at(id));
      CHECK(c.error.empty());
      CHECK(c.reply.prompt_tokens == p.prompt->size());
      CHECK(c.reply.cached_tokens < p.prompt->size());
      cached += c.reply.cached_tokens;
      if (c.reply.finish == FinishReason::kCancelled) {
        ++cancelled;
        CHECK(p.cancel_at >= 0);
        CHECK(IsPrefix(c.reply.tokens, p.expected));
      } else {
        CHECK(c.reply.tokens == p.expected);
        const bool by_stop = !p.params.stop_ids.empty() && !c.reply.tokens.empty() && c.reply.tokens.back() == p.params.stop_ids[0];
        CHECK(c.reply.finish == (by_stop ? FinishReason::kStop : FinishReason::kLength));
      }
    }
    MESSAGE("seed " << seed << ": " << cancelled << " of " << plan.size() << " cancelled, " << cached << " prompt tokens from slot caches");
    cached_total += cached;
    CheckIdle(sched);
  }
  CHECK(cached_total > 0);  // some continuations found their conversation still cached
}

TEST_CASE("scheduler: a full queue is an error; prompts that cannot run are refused at Submit") {
  RandomSetup setup;
  SchedulerOptions opt;
  opt.slots = 1;
  opt.queue = 2;
  opt.context = 32;
  opt.max_chunk = 4;
  Scheduler sched(*setup.model, nullptr, {}, opt);
  Prompt p(setup.model->config());
  p.AddTokens(testing::Tokens(5, 60, 1));
  GenerateParams g;
  g.sampling.temperature = 0;
  g.max_tokens = 3;
  sched.Submit({p, g});
  sched.Submit({p, g});
  CHECK_THROWS_WITH_AS(sched.Submit({p, g}), doctest::Contains("queue is full"), Error);
  CHECK(sched.Step());  // one admitted, one still queued
  sched.Submit({p, g});
  Prompt long_prompt(setup.model->config());
  long_prompt.AddTokens(testing::Tokens(32, 60, 2));
  CHECK_THROWS_AS(sched.Submit({long_prompt, g}), Error);
  Prompt big_image(setup.model->config());
  MediaEmbedding m;
  m.n = 5;
  m.rows.assign(5 * static_cast<size_t>(setup.model->config().hidden_size), 0.5f);
  big_image.AddMedia(m);
  CHECK_THROWS_WITH_AS(sched.Submit({big_image, g}), doctest::Contains("exceeds max_chunk"), Error);
  Prompt empty(setup.model->config());
  CHECK_THROWS_AS(sched.Submit({empty, g}), Error);
  sched.RunUntilIdle();
  for (uint64_t id = 1; id <= 3; ++id) {
    const auto c = sched.Take(id);
    REQUIRE(c.has_value());
    CHECK(c->reply.tokens.size() == 3);
  }
  CheckIdle(sched);
}

TEST_CASE("scheduler: other threads submit, wait and cancel while one thread serves") {
  RandomSetup setup;
  const Gemma4& model = *setup.model;
  SchedulerOptions opt;
  opt.slots = 2;
  opt.context = 64;
  opt.max_chunk = 6;
  opt.prefill_budget = 4;
  const std::vector<Planned> plan = Plan(model, 9, 10, opt.context, opt.max_chunk);
  Scheduler sched(model, nullptr, {}, opt);
  std::atomic<bool> was_cancelled{false};
  {
    std::jthread server([&](std::stop_token st) { sched.Serve(st); });
    std::vector<std::thread> clients;
    for (size_t t = 0; t < 2; ++t)
      clients.emplace_back([&, t] {
        for (size_t i = t; i < plan.size(); i += 2) {
          const Planned& p = plan[i];
          const uint64_t id = sched.Submit({*p.prompt, p.params});
          if (p.cancel_at >= 0) sched.Cancel(id);
          const Completion c = sched.Wait(id);
          if (c.reply.finish == FinishReason::kCancelled) {
            CHECK(p.cancel_at >= 0);
            CHECK(IsPrefix(c.reply.tokens, p.expected));
          } else {
            CHECK(c.reply.tokens == p.expected);
          }
        }
      });
    for (std::thread& c : clients) c.join();
    // Cancelling from another thread while the request runs: submit a long one and cancel it mid-way.
    Prompt p(model.config());
    p.AddTokens(testing::Tokens(20, 60, 5));
    GenerateParams g;
    g.sampling.temperature = 0;
    g.max_tokens = 40;
    const uint64_t id = sched.Submit({p, g});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    CHECK(sched.Cancel(id) == sched.Cancel(id));  // twice is harmless
    const Completion c = sched.Wait(id);
    CHECK(c.reply.tokens.size() <= 40);
    was_cancelled = c.reply.finish == FinishReason::kCancelled;
    CHECK(!sched.Cancel(id));
  }  // the server stops
  MESSAGE("the long request was " << std::string(was_cancelled.load() ? "cancelled" : "done before the cancel"));
  CheckIdle(sched);
}

namespace {

using Demo = testing::DemoModel;

}  // namespace

TEST_CASE("scheduler (demo model): text, stops and prefix reuse equal Session runs") {
  Demo demo;
  SchedulerOptions opt;
  opt.slots = 2;
  opt.context = 256;
  opt.max_chunk = 64;
  opt.prefill_budget = 5;
  Scheduler sched(demo.lm, opt);
  const Prompt first = Session::RawPrompt(demo.lm, "def add(a, b):", {});
  GenerateParams greedy;
  greedy.sampling.temperature = 0;
  greedy.max_tokens = 12;
  GenerateParams sampled;
  sampled.sampling.temperature = 0.8f;
  sampled.sampling.top_p = 0.9f;
  sampled.sampling.seed = 42;
  sampled.max_tokens = 16;
  sampled.stop_strings = {"\n\n"};

  auto fresh = [&](const Prompt& p, const GenerateParams& g) {
    Session s(demo.lm, {.context = opt.context});
    return s.Run(p, {}, g);
  };
  std::string streamed_a, streamed_b;
  const uint64_t a = sched.Submit({first, greedy, [&](std::string_view t) {
                                     streamed_a += t;
                                     return true;
                                   }});
  const uint64_t b = sched.Submit({Session::RawPrompt(demo.lm, "Returns the", {}), sampled, [&](std::string_view t) {
                                     streamed_b += t;
                                     return true;
                                   }});
  sched.RunUntilIdle();
  const Completion ca = *sched.Take(a), cb = *sched.Take(b);
  const Reply ra = fresh(first, greedy), rb = fresh(Session::RawPrompt(demo.lm, "Returns the", {}), sampled);
  CHECK(ca.reply.tokens == ra.tokens);
  CHECK(ca.reply.text == ra.text);
  CHECK(streamed_a == ra.text);
  CHECK(cb.reply.tokens == rb.tokens);
  CHECK(cb.reply.text == rb.text);
  CHECK(streamed_b == rb.text);
  CHECK(cb.reply.finish == rb.finish);

  // A follow-up that extends the first request: it lands in that slot and reuses its cache.
  Prompt follow = first;
  follow.AddTokens(ca.reply.tokens);
  follow.AddTokens(demo.lm.tokenizer().Encode("\n    return", {.add_bos = false, .parse_special = false}));
  const uint64_t f = sched.Submit({follow, greedy});
  sched.RunUntilIdle();
  const Completion cf = *sched.Take(f);
  const Reply rf = fresh(follow, greedy);
  CHECK(cf.reply.cached_tokens >= first.size());
  CHECK(rf.cached_tokens == 0);
  CHECK(cf.reply.tokens == rf.tokens);
  CHECK(cf.reply.text == rf.text);

  // A chat request, parsed as Session::Respond parses it.
  const std::vector<Message> chat{{"user", {Part::Text("def add(a, b):")}}};
  SchedulerRequest chat_request(Session::ChatPrompt(demo.lm, chat, false), greedy);
  chat_request.chat = true;
  chat_request.turn_stops = demo.lm.chat_stop_ids();
  chat_request.turn_stops.insert(chat_request.turn_stops.end(), demo.lm.tool_stop_ids().begin(), demo.lm.tool_stop_ids().end());
  const uint64_t ch = sched.Submit(std::move(chat_request));
  sched.RunUntilIdle();
  const Completion cc = *sched.Take(ch);
  Session chat_session(demo.lm, {.context = opt.context});
  const Reply rc = chat_session.Respond(chat, greedy);
  CHECK(cc.reply.tokens == rc.tokens);
  CHECK(cc.reply.text == rc.text);
  CHECK(cc.reply.finish == rc.finish);

  // Nothing to generate: it ends at once, with no slot.
  GenerateParams none = greedy;
  none.max_tokens = 0;
  const uint64_t z = sched.Submit({first, none});
  CHECK(!sched.Step());
  const Completion cz = *sched.Take(z);
  CHECK(cz.reply.tokens.empty());
  CHECK(cz.reply.finish == FinishReason::kLength);

  // A text callback that says stop cancels its request.
  size_t calls = 0;
  const uint64_t s = sched.Submit({first, greedy, [&](std::string_view) { return ++calls < 2; }});
  sched.RunUntilIdle();
  const Completion cs = *sched.Take(s);
  CHECK(cs.reply.finish == FinishReason::kCancelled);
  CHECK(calls == 2);
  CHECK(IsPrefix(cs.reply.tokens, ra.tokens));
  CheckIdle(sched);
}

TEST_CASE("scheduler (demo model + drafter): a request alone decodes speculatively, with the tokens of plain decoding") {
  const testing::DemoModel demo(/*drafter=*/true);
  const LoadedModel& lm = demo.lm;
  REQUIRE(lm.drafter() != nullptr);
  SchedulerOptions opt;
  opt.slots = 2;
  opt.context = 256;
  opt.max_chunk = 64;
  opt.prefill_budget = 64;
  Scheduler sched(lm, opt);
  GenerateParams greedy;
  greedy.sampling.temperature = 0;
  greedy.max_tokens = 40;
  GenerateParams sampled = greedy;
  sampled.sampling.temperature = 0.7f;
  sampled.sampling.seed = 7;
  sampled.draft.adaptive = true;
  const Prompt code = Session::RawPrompt(lm, "def fibonacci(n):\n", {});
  const Prompt prose = Session::RawPrompt(lm, "The history of the city", {});

  // Greedy alone: speculative rounds whose drafts are accepted, and plain decoding's tokens.
  GenerateParams plain = greedy;
  plain.speculative = false;
  const Reply want = Session(lm, {.context = opt.context}).Run(code, {}, plain);
  const uint64_t a = sched.Submit({code, greedy});
  sched.RunUntilIdle();
  const Completion ca = *sched.Take(a);
  CHECK(ca.reply.tokens == want.tokens);
  CHECK(ca.reply.draft_stats.rounds > 0);
  CHECK(ca.reply.draft_stats.accepted > 0);
  CHECK(ca.reply.draft_stats.rounds + 1 < ca.reply.tokens.size());  // fewer passes than tokens: what drafting is for

  // Seeded sampling alone: the same draws as Session's speculative generation (same rule, same rounds).
  const Reply want_sampled = Session(lm, {.context = opt.context}).Run(prose, {}, sampled);
  REQUIRE(want_sampled.draft_stats.rounds > 0);
  const uint64_t b = sched.Submit({prose, sampled});
  sched.RunUntilIdle();
  const Completion cb = *sched.Take(b);
  CHECK(cb.reply.tokens == want_sampled.tokens);
  CHECK(cb.reply.draft_stats.rounds == want_sampled.draft_stats.rounds);

  // Two at once decode plainly in one batch (no rounds), with the same tokens.
  const uint64_t c = sched.Submit({code, greedy});
  const uint64_t d = sched.Submit({prose, plain});
  sched.RunUntilIdle();
  const Completion cc = *sched.Take(c), cd = *sched.Take(d);
  CHECK(cc.reply.tokens == want.tokens);
  CHECK(cd.reply.tokens == Session(lm, {.context = opt.context}).Run(prose, {}, plain).tokens);
  CHECK(cd.reply.draft_stats.rounds == 0);
  CheckIdle(sched);
}

}  // namespace g4_test_scheduler
