// Lossless speculative decoding with the MTP drafter (spec 4.3). A round: the drafter proposes k tokens from
// the target's cache; the target verifies [tok, d_1..d_k] in ONE forward (k + 1 positions, weights streamed
// once); the longest prefix of drafts that the target agrees with is kept, plus the target's own next token.
// Rolling back is moving seq.pos: the rejected drafts' cache entries are simply overwritten later (the sliding
// rings have max_chunk - 1 spare slots, so entries the window still needs survive a round of <= max_chunk - 1).
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

inline VerifyRule GreedyVerify() {
  return [](std::span<const float> logits, int32_t draft) {
    const int32_t t = Gemma4::Argmax(logits);
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

// Generates up to n_new tokens after `prompt`. on_token returns false to stop. The first emitted token comes
// from the prompt's last logits (pick(logits, -1)). DraftModel is Drafter, or anything with its Step().
template <typename DraftModel>
std::vector<int32_t> GenerateSpeculative(const Gemma4& target, const DraftModel& drafter, Sequence& seq,
                                         const ForwardInput& prompt, size_t n_new, const SpeculativeOptions& opt,
                                         const VerifyRule& pick, SpeculativeStats* stats = nullptr,
                                         const std::function<bool(int32_t)>& on_token = {}) {
  Require(opt.k >= 1 && opt.k_max >= opt.k, "draft", "k must be >= 1 and <= k_max");
  Require(static_cast<size_t>(opt.k_max) < seq.cache.max_chunk(), "draft",
          "k_max " + std::to_string(opt.k_max) + " needs a sequence with max_chunk > k_max");
  const auto& stops = target.config().tokens.stop_ids;
  const size_t H = static_cast<size_t>(target.config().hidden_size), V = static_cast<size_t>(target.config().vocab_size);
  std::vector<int32_t> out;
  ForwardOutput fo;
  target.Forward(seq, prompt, fo);
  int32_t tok = pick(fo.logits, -1).first;
  std::vector<float> h = fo.final_hidden;
  int k = opt.k;
  std::vector<float> dl, dh;
  for (;;) {
    out.push_back(tok);
    if ((on_token && !on_token(tok)) || out.size() >= n_new ||
        std::find(stops.begin(), stops.end(), tok) != stops.end())
      break;
    // Draft k tokens (fewer near the end: no point drafting past n_new).
    const int kr = static_cast<int>(std::min<size_t>(static_cast<size_t>(k), n_new - out.size()));
    std::vector<int32_t> batch{tok};
    const int64_t P = seq.pos;
    std::vector<float> cur_h = h;
    for (int j = 0; j < kr; ++j) {
      drafter.Step(seq, batch.back(), cur_h, P, P, dl, dh);
      batch.push_back(Gemma4::Argmax(dl));
      cur_h.swap(dh);
    }
    // Verify all of them at once.
    ForwardOutput vo;
    vo.all_logits = true;
    target.Forward(seq, {batch}, vo);
    int m = 0;
    int32_t next = -1;
    bool stopped = false;
    for (int i = 0; i <= kr; ++i) {
      const int32_t draft = i < kr ? batch[static_cast<size_t>(i) + 1] : -1;
      const auto [t, ok] = pick(std::span(vo.logits).subspan(static_cast<size_t>(i) * V, V), draft);
      if (!ok) {
        next = t;
        break;
      }
      ++m;
      out.push_back(t);
      if ((on_token && !on_token(t)) || out.size() >= n_new || std::find(stops.begin(), stops.end(), t) != stops.end()) {
        stopped = true;
        break;
      }
    }
    if (stats) {
      stats->rounds++;
      stats->drafted += static_cast<size_t>(kr);
      stats->accepted += static_cast<size_t>(m);
    }
    // tok and the accepted drafts stay in the cache, except a last emitted token (as after plain decoding,
    // whose final token is never fed back).
    seq.pos = P + 1 + m - (stopped ? 1 : 0);
    if (stopped) break;
    tok = next;
    h.assign(vo.final_hidden.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(m) * H),
             vo.final_hidden.begin() + static_cast<std::ptrdiff_t>((static_cast<size_t>(m) + 1) * H));
    if (opt.adaptive) k = m == kr ? std::min(opt.k_max, k + 2) : std::max(1, k - 1);
  }
  return out;
}

}  // namespace g4
