// The compact uint16 row llama-perplexity's --kl-divergence-base file stores per position (the log-softmax
// itself is model/logprobs.hpp's). Cost: a pass over the vocabulary (262144 logits for Gemma 4) per position.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "g4/core/error.hpp"
#include "g4/model/logprobs.hpp"

namespace g4 {

// llama-perplexity's stored row: CompactRowWords(n_vocab) uint16 words, the floats scale and min_log_prob in the
// first four, then q[i] with log p[i] = min_log_prob + scale * q[i] (65535 levels over the 16 nats below the best
// token; a token further down stores 0, the floor). Rounding error: scale / 2 <= 1.3e-4 nats.
inline size_t CompactRowWords(size_t n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

inline void EncodeCompactRow(std::span<const float> logits, const LogSoftmax& ls, std::span<uint16_t> row) {
  Require(row.size() == CompactRowWords(logits.size()), "log-prob row", "wrong row length");
  float min_logit = ls.max;
  for (const float l : logits) min_logit = std::min(min_logit, l);
  min_logit = std::max(min_logit, ls.max - 16);
  const float log_sum_exp = static_cast<float>(ls.log_sum_exp);
  const float min_log_prob = min_logit - ls.max - log_sum_exp;
  const float scale = (ls.max - min_logit) / 65535.f;
  std::memcpy(row.data(), &scale, sizeof scale);
  std::memcpy(row.data() + 2, &min_log_prob, sizeof min_log_prob);
  uint16_t* q = row.data() + 4;
  std::fill(q, row.data() + row.size(), uint16_t{0});
  if (scale == 0) return;
  const float inv_scale = 1 / scale;
  for (size_t i = 0; i < logits.size(); ++i)  // lrint: round half to even, as llama.cpp's nearest_int
    if (logits[i] > min_logit) q[i] = static_cast<uint16_t>(std::lrint(inv_scale * (logits[i] - min_logit)));
}

// Reads a compact row: its scale and floor, and log p of any token.
class CompactRow {
 public:
  explicit CompactRow(std::span<const uint16_t> row) : q_(row.subspan(4)) {
    std::memcpy(&scale_, row.data(), sizeof scale_);
    std::memcpy(&min_log_prob_, row.data() + 2, sizeof min_log_prob_);
  }
  float LogProb(size_t i) const { return scale_ * q_[i] + min_log_prob_; }

 private:
  std::span<const uint16_t> q_;
  float scale_ = 0, min_log_prob_ = 0;
};

}  // namespace g4
