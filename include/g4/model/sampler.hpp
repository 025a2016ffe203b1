// Picks the next token from the model's logits: greedy, or a seeded draw after penalties, temperature and the
// top-k / top-p / min-p filters, in Hugging Face's order (penalties, temperature, top-k, top-p, min-p).
//
// Reproducible: the generator is std::mt19937_64, whose output sequence the C++ standard fixes, turned into
// uniforms by hand (no std::*_distribution, whose algorithms differ between standard libraries), and every tie is
// broken by the lower token id. The filtered distribution itself is available (Probabilities), because speculative
// sampling needs the target's p(x) after the same filters.
//
// Cost per token: a few passes over the vocabulary (262144 floats, well under a millisecond) plus, for top-p, a
// sort of only as many of the largest probabilities as it takes to reach the mass p.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/grammar/token_matcher.hpp"

namespace g4 {

// The most likely token: the lowest id among equal maxima; -inf entries (suppressed tokens) never win, and a NaN
// logit is an error. The one argmax of greedy decoding, drafting and the sampler.
inline int32_t Argmax(std::span<const float> v) {
  int32_t best = -1;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) Fail("sampler", "logit of token " + std::to_string(i) + " is NaN");  // no string per token
    if (v[i] > -std::numeric_limits<float>::infinity() && (best < 0 || v[i] > v[static_cast<size_t>(best)]))
      best = static_cast<int32_t>(i);
  }
  Require(best >= 0, "sampler", "every token is suppressed (all logits -inf)");
  return best;
}

struct SamplerConfig {
  float temperature = 1.0f;         // <= 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;                // keep the k largest logits and any tied with the k-th; 0: off
  float top_p = 1.0f;               // keep the most likely tokens until their mass reaches p; 1: off
  float min_p = 0.0f;               // drop tokens below min_p * (largest probability); 0: off
  float repetition_penalty = 1.0f;  // recent tokens: positive logits / r, negative logits * r (CTRL); 1: off
  float presence_penalty = 0.0f;    // subtracted once from the logit of every recent token; 0: off
  float frequency_penalty = 0.0f;   // subtracted from a recent token's logit once per time it occurs (OpenAI's); 0: off
  int32_t penalty_window = 64;      // how many of the last accepted tokens the penalties look at
  uint64_t seed = 0;
  std::vector<int32_t> suppressed;  // never sampled (logit -inf)
  std::shared_ptr<const TokenGrammar> grammar;  // constrained output: each Sampler runs its own TokenMatcher
};

class Sampler {
 public:
  Sampler(SamplerConfig config, int32_t vocab_size) : cfg_(std::move(config)), vocab_(vocab_size), rng_(cfg_.seed) {
    Require(vocab_size > 0, "sampler", "vocabulary size must be positive");
    Require(std::isfinite(cfg_.temperature), "sampler temperature", "must be finite");
    Require(cfg_.top_k >= 0, "sampler top_k", "must be >= 0, got " + std::to_string(cfg_.top_k));
    Require(cfg_.top_p > 0.0f && cfg_.top_p <= 1.0f, "sampler top_p",
            "must be in (0, 1], got " + std::to_string(cfg_.top_p));
    Require(cfg_.min_p >= 0.0f && cfg_.min_p <= 1.0f, "sampler min_p",
            "must be in [0, 1], got " + std::to_string(cfg_.min_p));
    Require(cfg_.repetition_penalty > 0.0f, "sampler repetition_penalty", "must be > 0");
    Require(std::isfinite(cfg_.presence_penalty) && std::isfinite(cfg_.frequency_penalty), "sampler penalties", "must be finite");
    Require(cfg_.penalty_window >= 0, "sampler penalty_window", "must be >= 0");
    for (const int32_t id : cfg_.suppressed)
      Require(id >= 0 && id < vocab_, "sampler suppressed", "token id " + std::to_string(id) + " out of range");
    if (cfg_.grammar) {
      Require(cfg_.grammar->trie->vocab_size() == vocab_, "sampler grammar", "built for another vocabulary size");
      grammar_.emplace(cfg_.grammar);
    }
  }

  // Records a token this sampler's draws emitted (after the prompt's tokens went through Accept): the penalties
  // see it, and the grammar, if any, advances over it.
  void AcceptOutput(int32_t id) {
    Accept(id);
    if (grammar_) grammar_->Accept(id);
  }

  // Records a token that entered the context (prompt or generated), for the penalties.
  void Accept(int32_t id) {
    if (id < 0 || id >= vocab_) Fail("sampler", "accepted token id " + std::to_string(id) + " out of range");  // per token
    if (cfg_.penalty_window == 0) return;
    recent_.push_back(id);
    if (recent_.size() > static_cast<size_t>(cfg_.penalty_window)) recent_.pop_front();
  }

  // The distribution the next draw uses: [vocab] probabilities summing to 1, zero outside the filters. Greedy
  // gives a one-hot vector.
  void Probabilities(std::span<const float> logits, std::vector<float>& probs) const {
    Require(logits.size() == static_cast<size_t>(vocab_), "sampler",
            "logits have " + std::to_string(logits.size()) + " entries for a vocabulary of " + std::to_string(vocab_));
    probs.assign(logits.begin(), logits.end());
    ApplyPenalties(probs);
    for (const int32_t id : cfg_.suppressed) probs[id] = -std::numeric_limits<float>::infinity();
    if (grammar_) grammar_->Mask(probs);
    const int32_t best = Argmax(probs);
    if (cfg_.temperature <= 0.0f) {
      std::fill(probs.begin(), probs.end(), 0.0f);
      probs[best] = 1.0f;
      return;
    }
    const float max_logit = probs[best];
    if (cfg_.top_k > 0 && cfg_.top_k < vocab_) KeepTopK(probs);
    // Softmax of logit / T, shifted by the maximum so exp never overflows.
    double sum = 0.0;
    for (float& p : probs) {
      p = std::exp((p - max_logit) / cfg_.temperature);
      sum += p;
    }
    Scale(probs, sum);
    if (cfg_.top_p < 1.0f) KeepTopP(probs);
    if (cfg_.min_p > 0.0f) {
      const float floor = cfg_.min_p * probs[best];
      double kept = 0.0;
      for (float& p : probs) {
        if (p < floor) p = 0.0f;
        kept += p;
      }
      Scale(probs, kept);
    }
  }

  // Draws the next token. probs_out, when given, receives the distribution it was drawn from.
  int32_t Sample(std::span<const float> logits, std::vector<float>* probs_out = nullptr) {
    Probabilities(logits, scratch_);
    const int32_t id = Draw(scratch_);
    if (probs_out) probs_out->swap(scratch_);
    return id;
  }

  // A token drawn from any distribution over the vocabulary (weights need not sum to 1), e.g. the residual
  // max(0, p - q) of speculative sampling. Consumes one uniform.
  int32_t Draw(std::span<const float> weights) {
    double total = 0.0;
    for (const float w : weights) total += w;
    Require(total > 0.0 && std::isfinite(total), "sampler", "nothing to draw from (all weights zero)");
    const double target = Uniform() * total;
    double acc = 0.0;
    int32_t last = -1;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] <= 0.0f) continue;
      acc += weights[i];
      last = static_cast<int32_t>(i);
      if (acc > target) return last;
    }
    return last;  // rounding left target at the very top
  }

  // Uniform in [0, 1) with 53 random bits, from the sampler's seeded stream (speculative acceptance tests use it).
  double Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

  const SamplerConfig& config() const { return cfg_; }

 private:
  // Repetition (CTRL) and presence penalties once per distinct recent token, the frequency penalty once per
  // occurrence: l = (l / r or l * r) - presence - count * frequency, as OpenAI and vLLM apply them.
  void ApplyPenalties(std::vector<float>& logits) const {
    if (recent_.empty() || (cfg_.repetition_penalty == 1.0f && cfg_.presence_penalty == 0.0f && cfg_.frequency_penalty == 0.0f))
      return;
    std::vector<int32_t> seen(recent_.begin(), recent_.end());
    std::sort(seen.begin(), seen.end());
    for (size_t i = 0; i < seen.size();) {
      size_t j = i + 1;
      while (j < seen.size() && seen[j] == seen[i]) ++j;
      float& l = logits[seen[i]];
      l = l > 0.0f ? l / cfg_.repetition_penalty : l * cfg_.repetition_penalty;
      l -= cfg_.presence_penalty + static_cast<float>(j - i) * cfg_.frequency_penalty;
      i = j;
    }
  }

  // Keeps logits >= the k-th largest (ties with it too, as transformers' TopKLogitsWarper does).
  void KeepTopK(std::vector<float>& logits) const {
    std::vector<float> sorted = logits;
    std::nth_element(sorted.begin(), sorted.begin() + (cfg_.top_k - 1), sorted.end(), std::greater<float>());
    const float kth = sorted[cfg_.top_k - 1];
    for (float& l : logits)
      if (l < kth) l = -std::numeric_limits<float>::infinity();
  }

  // Keeps the largest probabilities (lower id first among equals) up to and including the one whose running sum
  // reaches top_p. Sorts only a growing prefix found with nth_element: peaked distributions stop at 64 tokens.
  void KeepTopP(std::vector<float>& probs) const {
    std::vector<int32_t> order(probs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    const auto before = [&](int32_t a, int32_t b) { return probs[a] != probs[b] ? probs[a] > probs[b] : a < b; };
    size_t m = std::min<size_t>(64, order.size());
    while (true) {
      std::nth_element(order.begin(), order.begin() + (m - 1), order.end(), before);
      double mass = 0.0;
      for (size_t i = 0; i < m; ++i) mass += probs[order[i]];
      if (mass >= cfg_.top_p || m == order.size()) break;
      m = std::min(m * 4, order.size());
    }
    std::sort(order.begin(), order.begin() + m, before);
    double acc = 0.0;
    size_t keep = 0;
    while (keep < m && acc < cfg_.top_p) acc += probs[order[keep++]];
    std::vector<float> kept(probs.size(), 0.0f);
    for (size_t i = 0; i < keep; ++i) kept[order[i]] = probs[order[i]];
    probs.swap(kept);
    Scale(probs, acc);
  }

  static void Scale(std::vector<float>& probs, double sum) {
    const double inv = 1.0 / sum;
    for (float& p : probs) p = static_cast<float>(p * inv);
  }

  SamplerConfig cfg_;
  int32_t vocab_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;  // the last penalty_window accepted tokens, oldest first (a whole prompt passes through)
  std::vector<float> scratch_;
  mutable std::optional<TokenMatcher> grammar_;  // mutable: its mask cache fills as Probabilities asks
};

}  // namespace g4
