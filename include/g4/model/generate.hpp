// Token generation, plain or speculative, in one loop. A round: the drafter (if any) proposes k tokens from the
// target's cache; the target verifies [tok, d_1..d_k] in ONE forward (k + 1 positions, weights streamed once); the
// longest prefix of drafts that the target agrees with is kept, plus the target's own next token; the rejected
// drafts are rolled back (Sequence::Rollback). Without a drafter a round is k = 0: one token, plain decoding.
//
// Greedy: every emitted token is the target's argmax for its exact prefix, so the output equals plain greedy.
// Sampling: the drafter proposes its argmax (a point mass q), accepted with probability p(d); on rejection the
// token is drawn from the residual p with d removed and renormalised. The output distribution is exactly p.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "g4/model/drafter.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/sampler.hpp"

namespace g4 {

struct SpeculativeOptions {
  int k = 4;              // drafts per round (the first round when adaptive)
  bool adaptive = false;  // +2 after a fully accepted round, -1 otherwise (transformers' heuristic)
  int k_max = 8;
};

struct SpeculativeStats {
  size_t rounds = 0, drafted = 0, accepted = 0;
  double acceptance_per_round() const { return rounds ? static_cast<double>(accepted) / rounds : 0.0; }
};

// Chooses the token to emit at one verified position. Given the target's logits row and the draft token (or
// -1 after the last draft), returns {token, accepted_draft}. Greedy and speculative sampling both fit this.
using VerifyRule = std::function<std::pair<int32_t, bool>(std::span<const float> logits, int32_t draft)>;

// The raw argmax (reference checks against transformers' greedy search, which applies no suppression).
inline VerifyRule GreedyVerify() {
  return [](std::span<const float> logits, int32_t draft) {
    const int32_t t = Argmax(logits);
    return std::pair<int32_t, bool>{t, draft >= 0 && t == draft};
  };
}

// Speculative sampling against a point-mass draft. probs(logits, p) fills the target's distribution after the
// sampler's filters; uniform() draws from [0, 1).
inline VerifyRule SamplingVerify(std::function<void(std::span<const float>, std::vector<float>&)> probs,
                                 std::function<double()> uniform) {
  return [probs = std::move(probs), uniform = std::move(uniform)](std::span<const float> logits, int32_t draft) {
    std::vector<float> p;
    probs(logits, p);
    double total = 1.0;
    if (draft >= 0) {
      const double pd = p[static_cast<size_t>(draft)];
      if (uniform() < pd) return std::pair<int32_t, bool>{draft, true};
      total = 1.0 - pd;  // residual: p without the draft, renormalised
      p[static_cast<size_t>(draft)] = 0.0f;
    }
    const double u = uniform() * total;
    double acc = 0;
    int32_t last = -1;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] <= 0) continue;
      last = static_cast<int32_t>(i);
      acc += p[i];
      if (u < acc) return std::pair<int32_t, bool>{last, false};
    }
    return std::pair<int32_t, bool>{last, false};  // rounding left u past the end: the last possible token
  };
}

// The rule of a sampler: its greedy choice (penalties and suppressed tokens applied) at temperature <= 0, else
// speculative sampling from its filtered distribution with its seeded uniforms.
inline VerifyRule SamplerVerify(Sampler& sampler) {
  if (sampler.config().temperature <= 0) {
    return [&sampler](std::span<const float> logits, int32_t draft) {
      const int32_t t = sampler.Sample(logits);  // one-hot: no uniform is drawn
      return std::pair<int32_t, bool>{t, draft >= 0 && t == draft};
    };
  }
  return SamplingVerify([&sampler](std::span<const float> l, std::vector<float>& p) { sampler.Probabilities(l, p); },
                        [&sampler] { return sampler.Uniform(); });
}

struct GenerateLimits {
  size_t max_tokens = 256;
  std::span<const int32_t> stop_ids{};  // generation ends after emitting one of these
};

// One round after `tok` (emitted, not yet fed; `h` the final hidden row that predicted it): the drafter proposes
// kr tokens, the target verifies [tok, d_1..d_kr] in one forward pass, and the agreed drafts are emitted, then the
// target's own token, through emit (false: stop, e.g. a stop id or a limit). Rejected positions are rolled back;
// a last emitted token is not fed back (the cache ends as after plain decoding). kr = 0 (or no drafter): one
// plain decode step. Returns the accepted drafts' count and, unless stopped, the next token with its hidden row.
struct RoundResult {
  int accepted = 0;
  bool stopped = false;
  int32_t next = -1;
};
// What a round computes into, kept across rounds so a decode step allocates nothing (the drafter's logits are a
// vocabulary row, 1 MiB for 262144 tokens).
struct RoundScratch {
  ForwardOutput verify;
  std::vector<int32_t> batch;
  std::vector<float> h, draft_logits, draft_h;
};
template <typename DraftModel>
RoundResult SpeculativeRound(const Gemma4& target, const DraftModel* drafter, Sequence& seq, int32_t tok, std::vector<float>& h,
                             int kr, const VerifyRule& pick, const std::function<bool(int32_t)>& emit, RoundScratch& scratch) {
  const size_t H = static_cast<size_t>(target.config().hidden_size), V = static_cast<size_t>(target.config().vocab_size);
  if (!drafter) kr = 0;
  std::vector<int32_t>& batch = scratch.batch;
  batch.assign(1, tok);
  const int64_t P = seq.pos();
  if (kr > 0) scratch.h = h;
  for (int j = 0; j < kr; ++j) {
    drafter->Step(seq, batch.back(), scratch.h, P, P, scratch.draft_logits, scratch.draft_h);
    batch.push_back(Argmax(scratch.draft_logits));
    scratch.h.swap(scratch.draft_h);
  }
  ForwardOutput& vo = scratch.verify;
  vo.all_logits = kr > 0;
  target.Forward(seq, {batch}, vo);
  RoundResult r;
  for (int i = 0; i <= kr; ++i) {
    const int32_t draft = i < kr ? batch[static_cast<size_t>(i) + 1] : -1;
    const auto [t, ok] = pick(std::span(vo.logits).subspan(static_cast<size_t>(i) * V, V), draft);
    if (!ok) r.next = t;
    else ++r.accepted;
    if (!emit(t)) {
      r.stopped = true;
      break;
    }
    if (!ok) break;
  }
  // tok and the accepted drafts stay in the cache, except a last emitted token (as after plain decoding, whose
  // final token is never fed back).
  const int64_t keep = P + 1 + r.accepted - (r.stopped && r.next < 0 ? 1 : 0);
  if (keep < seq.pos()) seq.Rollback(keep);
  if (r.stopped) r.next = -1;
  else h.assign(vo.final_hidden.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(r.accepted) * H),
                vo.final_hidden.begin() + static_cast<std::ptrdiff_t>((static_cast<size_t>(r.accepted) + 1) * H));
  return r;
}

// Generates up to limits.max_tokens tokens after `prompt`. on_token returns false to stop. The first emitted token
// comes from the prompt's last logits (pick(logits, -1)). The last emitted token is not fed back: the cache holds
// the prompt and every emitted token but the last. drafter may be null (plain decoding); DraftModel is Drafter, or
// anything with its Step().
template <typename DraftModel>
std::vector<int32_t> Generate(const Gemma4& target, const DraftModel* drafter, Sequence& seq, const ForwardInput& prompt,
                              const GenerateLimits& limits, const SpeculativeOptions& opt, const VerifyRule& pick,
                              SpeculativeStats* stats = nullptr, const std::function<bool(int32_t)>& on_token = {}) {
  if (drafter) {
    Require(opt.k >= 1 && opt.k_max >= opt.k, "draft", "k must be >= 1 and <= k_max");
    // A round writes up to k_max + 1 positions and may keep one: the rings must still hold the drafter's window.
    Require(static_cast<size_t>(opt.k_max) + 2 <= seq.cache.max_chunk(), "draft",
            "k_max " + std::to_string(opt.k_max) + " needs a sequence with max_chunk >= k_max + 2");
  }
  const size_t n_new = limits.max_tokens;
  const auto is_stop = [&](int32_t t) { return std::find(limits.stop_ids.begin(), limits.stop_ids.end(), t) != limits.stop_ids.end(); };
  std::vector<int32_t> out;
  ForwardOutput fo;
  target.Forward(seq, prompt, fo);  // even for no new tokens: the cache then holds the prompt, as callers expect
  if (n_new == 0) return out;
  const auto emit = [&](int32_t t) {
    out.push_back(t);
    return !(on_token && !on_token(t)) && out.size() < n_new && !is_stop(t);
  };
  int32_t tok = pick(fo.logits, -1).first;
  std::vector<float> h = std::move(fo.final_hidden);
  int k = drafter ? opt.k : 0;
  RoundScratch scratch;
  if (!emit(tok)) return out;
  for (;;) {
    // Draft k tokens (fewer near the end: no point drafting past n_new).
    const int kr = static_cast<int>(std::min<size_t>(static_cast<size_t>(k), n_new - out.size()));
    const RoundResult r = SpeculativeRound(target, drafter, seq, tok, h, kr, pick, emit, scratch);
    if (stats && drafter) {
      stats->rounds++;
      stats->drafted += static_cast<size_t>(kr);
      stats->accepted += static_cast<size_t>(r.accepted);
    }
    if (r.stopped) break;
    tok = r.next;
    if (opt.adaptive) k = r.accepted == kr ? std::min(opt.k_max, k + 2) : std::max(1, k - 1);
  }
  return out;
}

// Plain decoding (no drafter).
inline std::vector<int32_t> Generate(const Gemma4& target, Sequence& seq, const ForwardInput& prompt, const GenerateLimits& limits,
                                     const VerifyRule& pick, const std::function<bool(int32_t)>& on_token = {}) {
  return Generate<Drafter>(target, nullptr, seq, prompt, limits, {}, pick, nullptr, on_token);
}

}  // namespace g4
