// Sampler: filter boundaries and ties on hand-made logits, penalties, seeded reproducibility against the C++
// standard's mt19937_64 reference value, and a chi-square test that draws follow the filtered distribution, which
// is recomputed here independently in double precision.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "g4/model/logprobs.hpp"
#include "g4/model/sampler.hpp"

namespace g4_test_sampler {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

std::vector<float> LogitsOfProbs(std::initializer_list<double> p) {
  std::vector<float> l;
  for (const double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::vector<float> Probs(const SamplerConfig& cfg, const std::vector<float>& logits) {
  std::vector<float> p;
  Sampler(cfg, static_cast<int32_t>(logits.size())).Probabilities(logits, p);
  return p;
}

std::vector<int> Support(const std::vector<float>& p) {
  std::vector<int> ids;
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] > 0.0f) ids.push_back(static_cast<int>(i));
  return ids;
}

}  // namespace

TEST_CASE("sampler: greedy takes the argmax, the lowest id on ties, never a suppressed token") {
  SamplerConfig cfg;
  cfg.temperature = 0.0f;
  Sampler s(cfg, 5);
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f};
  CHECK(s.Sample(logits) == 1);
  std::vector<float> p;
  s.Probabilities(logits, p);
  CHECK(p == std::vector<float>{0, 1, 0, 0, 0});

  cfg.suppressed = {1, 3};
  Sampler no13(cfg, 5);
  CHECK(no13.Sample(logits) == 4);
  cfg.suppressed = {0, 1, 2, 3, 4};
  CHECK_THROWS_AS(Sampler(cfg, 5).Sample(logits), Error);
}

TEST_CASE("sampler: top-k keeps the k largest and everything tied with the k-th") {
  SamplerConfig cfg;
  cfg.top_k = 2;
  const std::vector<float> p = Probs(cfg, {1, 2, 3, 4, 5});
  CHECK(Support(p) == std::vector<int>{3, 4});
  CHECK(p[4] == doctest::Approx(std::exp(1.0) / (1 + std::exp(1.0))).epsilon(1e-6));
  CHECK(Support(Probs(cfg, {5, 4, 4, 1})) == std::vector<int>{0, 1, 2});  // a tie at the boundary stays
  cfg.top_k = 100;                                                        // larger than the vocabulary: off
  CHECK(Support(Probs(cfg, {1, 2, 3})) == std::vector<int>{0, 1, 2});
}

TEST_CASE("sampler: top-p keeps tokens up to and including the one that reaches p") {
  SamplerConfig cfg;
  const std::vector<float> logits = LogitsOfProbs({0.125, 0.5, 0.125, 0.25});
  cfg.top_p = 0.45f;
  CHECK(Support(Probs(cfg, logits)) == std::vector<int>{1});
  cfg.top_p = 0.55f;
  CHECK(Support(Probs(cfg, logits)) == std::vector<int>{1, 3});
  cfg.top_p = 0.8f;  // 0.5 + 0.25 < 0.8: one of the two 0.125s joins, the lower id
  const std::vector<float> p = Probs(cfg, logits);
  CHECK(Support(p) == std::vector<int>{0, 1, 3});
  CHECK(p[1] == doctest::Approx(0.5 / 0.875).epsilon(1e-5));  // renormalised
  cfg.top_p = 1.0f;
  CHECK(Support(Probs(cfg, logits)).size() == 4);

  // A wide flat distribution (the growing nth_element prefix must reach past 64 and 256 tokens).
  std::vector<float> flat(1000, 0.0f);
  cfg.top_p = 0.4995f;  // 499 tokens hold 0.499, the 500th reaches 0.5
  CHECK(Support(Probs(cfg, flat)).size() == 500);
}

TEST_CASE("sampler: min-p drops tokens below min_p times the largest probability") {
  SamplerConfig cfg;
  const std::vector<float> logits = LogitsOfProbs({0.5, 0.25, 0.125, 0.125});
  cfg.min_p = 0.3f;  // floor 0.15
  CHECK(Support(Probs(cfg, logits)) == std::vector<int>{0, 1});
  cfg.min_p = 0.2f;  // floor 0.1
  CHECK(Support(Probs(cfg, logits)).size() == 4);
  cfg.min_p = 1.0f;
  CHECK(Support(Probs(cfg, logits)) == std::vector<int>{0});
}

TEST_CASE("sampler: temperature scales logits before the softmax") {
  SamplerConfig cfg;
  cfg.temperature = 0.5f;
  const std::vector<float> p = Probs(cfg, {0.0f, 1.0f});
  CHECK(p[1] / p[0] == doctest::Approx(std::exp(2.0)).epsilon(1e-5));
}

TEST_CASE("sampler: repetition and presence penalties over the recent window") {
  SamplerConfig cfg;
  cfg.repetition_penalty = 2.0f;
  Sampler s(cfg, 3);
  s.Accept(0);
  s.Accept(1);
  s.Accept(1);  // repeated tokens are penalised once
  std::vector<float> p;
  s.Probabilities(std::vector<float>{2.0f, -2.0f, 1.0f}, p);  // -> {1, -4, 1}
  CHECK(p[0] == doctest::Approx(p[2]).epsilon(1e-6));
  CHECK(p[1] / p[0] == doctest::Approx(std::exp(-5.0)).epsilon(1e-4));

  SamplerConfig pres;
  pres.presence_penalty = 1.5f;
  pres.penalty_window = 2;
  Sampler w(pres, 3);
  for (const int32_t id : {0, 1, 2}) w.Accept(id);  // 0 has left the window of 2
  w.Probabilities(std::vector<float>{0.0f, 0.0f, 0.0f}, p);
  CHECK(p[1] == doctest::Approx(p[2]).epsilon(1e-6));
  CHECK(p[1] / p[0] == doctest::Approx(std::exp(-1.5)).epsilon(1e-5));
}

TEST_CASE("sampler: the frequency penalty subtracts f per occurrence in the window, after presence and repetition") {
  // Window of 4 over accepted 2, 0, 1, 1, 1: token 2 has left it, 0 occurs once, 1 three times.
  SamplerConfig cfg;
  cfg.frequency_penalty = 0.5f;
  cfg.presence_penalty = 0.25f;
  cfg.penalty_window = 4;
  cfg.temperature = 1.0f;
  Sampler s(cfg, 4);
  for (const int32_t id : {2, 0, 1, 1, 1}) s.Accept(id);
  std::vector<float> p;
  s.Probabilities(std::vector<float>{1.0f, 2.0f, 0.5f, -1.0f}, p);
  // By hand: {1 - 0.25 - 0.5, 2 - 0.25 - 1.5, 0.5, -1} = {0.25, 0.25, 0.5, -1}.
  const double e[] = {std::exp(0.25), std::exp(0.25), std::exp(0.5), std::exp(-1.0)};
  const double z = e[0] + e[1] + e[2] + e[3];
  for (size_t i = 0; i < 4; ++i) CHECK(p[i] == doctest::Approx(e[i] / z).epsilon(1e-6));
  // Negative f rewards repetition: greedy then prefers the repeated token 1 over 0.
  SamplerConfig neg;
  neg.frequency_penalty = -2.0f;
  neg.temperature = 0.0f;
  Sampler g(neg, 2);
  for (const int32_t id : {1, 1}) g.Accept(id);
  CHECK(g.Sample(std::vector<float>{3.0f, 0.0f}) == 1);  // {3, 0 + 4}
  SamplerConfig bad;
  bad.frequency_penalty = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(Sampler(bad, 2), Error);
}

TEST_CASE("sampler: seeded draws are reproducible and follow the C++ standard's mt19937_64") {
  // [rand.predef]: the 10000th output of a default-constructed mt19937_64 (seed 5489) is 9981545732273789042.
  SamplerConfig cfg;
  cfg.seed = 5489;
  Sampler u(cfg, 1);
  double x = 0.0;
  for (int i = 0; i < 10000; ++i) x = u.Uniform();
  CHECK(x == static_cast<double>(9981545732273789042ull >> 11) * 0x1.0p-53);

  const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
  auto run = [&](uint64_t seed) {
    SamplerConfig c;
    c.seed = seed;
    Sampler s(c, 8);
    std::vector<int32_t> ids;
    for (int i = 0; i < 64; ++i) ids.push_back(s.Sample(logits));
    return ids;
  };
  CHECK(run(42) == run(42));
  CHECK(run(42) != run(43));
}

TEST_CASE("sampler: draws match the filtered distribution (chi-square)") {
  const std::vector<float> logits = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f};
  SamplerConfig cfg;
  cfg.temperature = 0.8f;
  cfg.top_k = 6;
  cfg.top_p = 0.9f;
  cfg.seed = 7;

  // Independent reference: softmax(l / T) over the 6 largest; cumulative masses are 0.476, 0.731, 0.867, 0.940, so
  // top-p 0.9 keeps ids 0..3.
  std::vector<double> want(8, 0.0);
  double z = 0.0;
  for (int i = 0; i < 4; ++i) z += std::exp(logits[i] / 0.8);
  for (int i = 0; i < 4; ++i) want[i] = std::exp(logits[i] / 0.8) / z;

  Sampler s(cfg, 8);
  std::vector<float> p;
  s.Probabilities(logits, p);
  for (int i = 0; i < 8; ++i) CHECK(p[i] == doctest::Approx(want[i]).epsilon(1e-5));

  const int n = 200000;
  std::vector<int> count(8, 0);
  std::vector<float> drawn_from;
  for (int i = 0; i < n; ++i) count[s.Sample(logits, &drawn_from)]++;
  CHECK(drawn_from == p);
  double chi2 = 0.0;
  for (int i = 0; i < 8; ++i) {
    if (want[i] == 0.0) {
      CHECK(count[i] == 0);
      continue;
    }
    const double e = n * want[i];
    chi2 += (count[i] - e) * (count[i] - e) / e;
  }
  CHECK(chi2 < 16.266);  // 3 degrees of freedom, p = 0.001
}

TEST_CASE("sampler: Draw from explicit weights, and bad input") {
  SamplerConfig cfg;
  Sampler s(cfg, 4);
  CHECK(s.Draw(std::vector<float>{0.0f, 0.0f, 3.0f, 0.0f}) == 2);
  CHECK_THROWS_AS(s.Draw(std::vector<float>{0.0f, 0.0f}), Error);
  CHECK_THROWS_AS(s.Sample(std::vector<float>{1.0f, 2.0f}), Error);  // wrong vocabulary size
  CHECK_THROWS_AS(s.Sample(std::vector<float>{0.0f, std::nanf(""), 0.0f, 0.0f}), Error);
  CHECK_THROWS_AS(s.Accept(4), Error);
  SamplerConfig bad;
  bad.top_p = 0.0f;
  CHECK_THROWS_AS(Sampler(bad, 4), Error);
  bad = {};
  bad.suppressed = {9};
  CHECK_THROWS_AS(Sampler(bad, 4), Error);
}

TEST_CASE("logprobs: the one log-softmax against a long double oracle, the top alternatives, and bad rows") {
  // A wide row (large gaps, ties, -inf): the log-softmax summed here in long double from the same floats.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {3.25f, -40.0f, 7.5f, 7.5f, -inf, 0.0f, 6.0f, -1.5e3f};
  long double z = 0;
  for (const float l : logits) z += std::exp(static_cast<long double>(l) - 7.5L);
  const auto oracle = [&](size_t i) { return static_cast<double>(logits[i] - 7.5L - std::log(z)); };
  const LogSoftmax ls = LogSoftmaxOf(logits);
  CHECK(ls.argmax == 2);  // the first of the tied best
  for (int32_t i : {0, 2, 5, 6}) CHECK(-ls.NegLogProb(logits, i) == doctest::Approx(oracle(static_cast<size_t>(i))).epsilon(1e-6));
  const TokenLogprob lp = LogprobOf(logits, 6, 3);
  CHECK(lp.logprob == doctest::Approx(oracle(6)).epsilon(1e-6));
  REQUIRE(lp.top.size() == 3);
  CHECK((lp.top[0].id == 2 && lp.top[1].id == 3 && lp.top[2].id == 6));  // ties: lower id first
  CHECK(lp.top[1].logprob == doctest::Approx(oracle(3)).epsilon(1e-6));
  CHECK(LogprobOf(logits, 4, 0).logprob == -inf);
  CHECK_THROWS_AS(LogSoftmaxOf(std::vector<float>{}), Error);
  CHECK_THROWS_AS(LogSoftmaxOf(std::vector<float>{-inf, -inf}), Error);
  CHECK_THROWS_AS(LogprobOf(logits, 8, 1), Error);
}

}  // namespace g4_test_sampler
