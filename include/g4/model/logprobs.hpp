// A generated token's log-probability and the most likely alternatives at its position, as OpenAI's logprobs
// report them. The distribution is the log-softmax of the model's raw logits: before penalties, temperature and
// the top-k / top-p / min-p filters, and with suppressed tokens still in it (what vLLM reports by default), so it
// describes the model, not the sampler's settings. Cost: two passes over the vocabulary (262144 logits for
// Gemma 4) and a top_n heap, about a millisecond per token: computed only when a request asks.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "g4/core/error.hpp"

namespace g4 {

// log softmax(logits)[i] = logits[i] - max - log_sum_exp; argmax is the first index of the largest logit. The
// normaliser is llama-perplexity's arithmetic (a double sum of float exp terms), so g4 perplexity and the logprobs
// of an answer share one log-softmax.
struct LogSoftmax {
  float max = 0;
  int32_t argmax = 0;
  double log_sum_exp = 0;
  double NegLogProb(std::span<const float> logits, int32_t id) const {
    return max + log_sum_exp - logits[static_cast<size_t>(id)];
  }
};

inline LogSoftmax LogSoftmaxOf(std::span<const float> logits) {
  Require(!logits.empty(), "logits", "an empty row");
  LogSoftmax ls;
  ls.max = logits[0];
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > ls.max) ls.max = logits[i], ls.argmax = static_cast<int32_t>(i);
  Require(std::isfinite(ls.max), "logits", "the row has no finite maximum");
  double sum = 0;
  for (const float l : logits) sum += std::exp(l - ls.max);
  ls.log_sum_exp = std::log(sum);
  return ls;
}

struct TokenLogprob {
  struct Alternative {
    int32_t id = 0;
    std::string text;  // the token's bytes (a byte-fallback token may be part of a character)
    float logprob = 0;
  };
  int32_t id = 0;
  std::string text;
  float logprob = 0;
  std::vector<Alternative> top;  // the top_n most likely tokens, most likely first (lower id first among equals)
};

// log_softmax(logits)[id] and the top_n most likely ids with theirs (texts left empty: the caller's tokenizer
// names them).
inline TokenLogprob LogprobOf(std::span<const float> logits, int32_t id, size_t top_n) {
  Require(id >= 0 && static_cast<size_t>(id) < logits.size(), "logprobs", "token id " + std::to_string(id) + " out of range");
  const LogSoftmax ls = LogSoftmaxOf(logits);
  const double log_z = ls.max + ls.log_sum_exp;
  const auto lp = [&](int32_t i) { return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(i)]) - log_z); };
  TokenLogprob out;
  out.id = id;
  out.logprob = lp(id);
  // A min-heap of the best top_n so far: the worst on top (smaller logit, or equal and larger id).
  const auto better = [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] != logits[static_cast<size_t>(b)] ? logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]
                                                                            : a < b;
  };
  std::vector<int32_t> heap;
  const size_t n = std::min(top_n, logits.size());
  heap.reserve(n + 1);
  for (int32_t i = 0; n > 0 && static_cast<size_t>(i) < logits.size(); ++i) {
    if (heap.size() == n && !better(i, heap.front())) continue;
    heap.push_back(i);
    std::push_heap(heap.begin(), heap.end(), better);
    if (heap.size() > n) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.pop_back();
    }
  }
  std::sort(heap.begin(), heap.end(), better);
  for (const int32_t i : heap) out.top.push_back({i, {}, lp(i)});
  return out;
}

}  // namespace g4
