// Several sequences in one forward pass give what each gives alone; two threads driving one model take turns.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <thread>

#include "g4/model/gemma4.hpp"
#include "support/compare.hpp"
#include "support/random_model.hpp"

namespace g4_test_batch {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

using testing::RelErr;
using testing::Tokens;

int32_t Best(std::span<const float> l) { return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin()); }

}  // namespace

TEST_CASE("batched forward: decode, prefill, verification and an image block in one pass equal each run alone") {
  ThreadPool pool(2);
  testing::RandomModel rm = testing::MakeRandomModel("SSFSSF", 4, true, 13);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  const int V = rm.cfg.vocab_size;
  const size_t H = static_cast<size_t>(rm.cfg.hidden_size);
  // Histories: a long one whose sliding ring (4 + 6 - 1 = 9 slots) has wrapped, a short one, an empty one.
  const auto long_history = Tokens(31, V, 1), short_history = Tokens(3, V, 2);
  // What each sequence runs next.
  const auto decode = Tokens(1, V, 3), verify = Tokens(4, V, 4), prefill = Tokens(6, V, 5);
  const auto image_tokens = Tokens(6, V, 6);
  std::vector<float> soft(3 * H);
  std::mt19937 rng(7);
  for (float& f : soft) f = std::uniform_real_distribution<float>(-1, 1)(rng);
  const std::vector<int32_t> soft_index{-1, 0, 1, 2, -1, -1}, block_id{-1, 0, 0, 0, -1, -1};

  auto fresh = [&](std::span<const int32_t> history) {
    Sequence s = model.NewSequence(64, 6);
    ForwardOutput o;
    if (!history.empty()) model.Forward(s, {history}, o);
    return s;
  };
  struct Case {
    std::span<const int32_t> history;
    ForwardInput in;
    bool all_logits;
  };
  const std::vector<Case> cases{
      {long_history, {decode}, false},
      {short_history, {verify}, true},
      {{}, {prefill}, false},
      {short_history, {image_tokens, soft, soft_index, block_id}, true},
  };
  std::vector<Sequence> alone, batched;
  std::vector<ForwardOutput> alone_out(cases.size()), batch_out(cases.size());
  std::vector<Gemma4::BatchEntry> batch;
  for (size_t i = 0; i < cases.size(); ++i) {
    alone.push_back(fresh(cases[i].history));
    batched.push_back(fresh(cases[i].history));
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    alone_out[i].all_logits = batch_out[i].all_logits = cases[i].all_logits;
    model.Forward(alone[i], cases[i].in, alone_out[i]);
    batch.push_back({&batched[i], cases[i].in, &batch_out[i]});
  }
  model.ForwardBatch(batch);
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    CHECK(batched[i].pos() == alone[i].pos());
    CHECK(RelErr(batch_out[i].logits, alone_out[i].logits) < 1e-5);
    CHECK(RelErr(batch_out[i].final_hidden, alone_out[i].final_hidden) < 1e-5);
  }
  // Then greedy decoding of all four together, step by step, equals each alone.
  for (int step = 0; step < 6; ++step) {
    std::vector<int32_t> next(cases.size());
    std::vector<Gemma4::BatchEntry> step_batch;
    for (size_t i = 0; i < cases.size(); ++i) {
      const std::span<const float> last = std::span(alone_out[i].logits).last(static_cast<size_t>(V));
      next[i] = Best(last);
      CHECK(Best(std::span(batch_out[i].logits).last(static_cast<size_t>(V))) == next[i]);
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      alone_out[i].all_logits = batch_out[i].all_logits = false;
      model.Forward(alone[i], {std::span(next).subspan(i, 1)}, alone_out[i]);
      step_batch.push_back({&batched[i], {std::span(next).subspan(i, 1)}, &batch_out[i]});
    }
    model.ForwardBatch(step_batch);
    for (size_t i = 0; i < cases.size(); ++i) CHECK(RelErr(batch_out[i].logits, alone_out[i].logits) < 1e-5);
  }
}

TEST_CASE("batched forward: a prompt chunk without logits fills its cache as with them, beside others") {
  ThreadPool pool(2);
  testing::RandomModel rm = testing::MakeRandomModel("SSFSSF", 4, true, 17);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  const int V = rm.cfg.vocab_size;
  const auto history = Tokens(9, V, 1), chunk = Tokens(5, V, 2), rest = Tokens(3, V, 3);
  // The prompt chunk with and without logits, each beside a decoding sequence, then the prompt's last chunk.
  Sequence with = model.NewSequence(64, 6), without = model.NewSequence(64, 6);
  Sequence other_a = model.NewSequence(64, 6), other_b = model.NewSequence(64, 6);
  ForwardOutput o;
  model.Forward(other_a, {history}, o);
  model.Forward(other_b, {history}, o);
  ForwardOutput with_out, without_out, other_a_out, other_b_out;
  without_out.no_logits = true;
  model.ForwardBatch(std::vector<Gemma4::BatchEntry>{{&with, {chunk}, &with_out}, {&other_a, {std::span(rest).first(1)}, &other_a_out}});
  model.ForwardBatch(std::vector<Gemma4::BatchEntry>{{&without, {chunk}, &without_out}, {&other_b, {std::span(rest).first(1)}, &other_b_out}});
  CHECK(without_out.logits.empty());
  CHECK(without_out.final_hidden.empty());
  CHECK(with_out.logits.size() == static_cast<size_t>(V));
  CHECK(without.pos() == with.pos());
  CHECK(RelErr(other_b_out.logits, other_a_out.logits) < 1e-5);
  without_out.no_logits = false;
  model.Forward(with, {rest}, with_out);
  model.Forward(without, {rest}, without_out);
  CHECK(without_out.logits.size() == static_cast<size_t>(V));
  CHECK(RelErr(without_out.logits, with_out.logits) < 1e-5);
}

TEST_CASE("batched forward: bad batches are errors") {
  ThreadPool pool(1);
  testing::RandomModel rm = testing::MakeRandomModel("SF", 4, true, 3);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  Sequence a = model.NewSequence(32, 4);
  ForwardOutput o1, o2;
  const auto t = Tokens(5, rm.cfg.vocab_size, 1);
  const std::vector<Gemma4::BatchEntry> twice{{&a, {std::span(t).first(1)}, &o1}, {&a, {std::span(t).first(1)}, &o2}};
  CHECK_THROWS_WITH_AS(model.ForwardBatch(twice), doctest::Contains("the same sequence twice"), Error);
  const std::vector<Gemma4::BatchEntry> too_long{{&a, {t}, &o1}};  // 5 tokens, chunks of 4
  CHECK_THROWS_WITH_AS(model.ForwardBatch(too_long), doctest::Contains("exceed the sequence's chunk"), Error);
  CHECK(a.pos() == 0);
}

TEST_CASE("two threads driving one model take turns and get the numbers each gets alone") {
  ThreadPool pool(2);
  testing::RandomModel rm = testing::MakeRandomModel("SSF", 4, true, 21);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  const auto a = Tokens(40, rm.cfg.vocab_size, 1), b = Tokens(40, rm.cfg.vocab_size, 2);
  auto run = [&](const std::vector<int32_t>& tokens) {
    Sequence s = model.NewSequence(64, 6);
    ForwardOutput o;
    std::vector<float> all;
    for (size_t i = 0; i < tokens.size(); i += 3) {
      model.Forward(s, {std::span(tokens).subspan(i, std::min<size_t>(3, tokens.size() - i))}, o);
      all.insert(all.end(), o.logits.begin(), o.logits.end());
    }
    return all;
  };
  const std::vector<float> want_a = run(a), want_b = run(b);
  for (int round = 0; round < 3; ++round) {
    std::vector<float> got_a, got_b;
    std::thread ta([&] { got_a = run(a); }), tb([&] { got_b = run(b); });
    ta.join();
    tb.join();
    CHECK(got_a == want_a);
    CHECK(got_b == want_b);
  }
}

}  // namespace g4_test_batch
