// Perplexity in llama-perplexity's conventions: the whole text is tokenized once (with <bos> where the vocabulary
// adds it), cut into n_chunk = n_tokens / n_ctx chunks of n_ctx tokens, each run from an empty cache with <bos> in
// its first position, and only the second half scored: the logits at positions [n_ctx/2, n_ctx - 1) against the
// token that follows each, so every scored token has at least n_ctx/2 tokens of context.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/model/gemma4.hpp"

namespace g4 {

struct PerplexityChunks {
  size_t n_ctx = 0;
  size_t n_chunk = 0;
  size_t first() const { return n_ctx / 2; }                 // the first scored logits' position
  size_t scored() const { return n_ctx - 1 - first(); }      // scored positions per chunk
};

// How many chunks of n_ctx the n_tokens of `where` (the text file) make; max_chunks < 0: all of them.
inline PerplexityChunks PlanChunks(size_t n_tokens, size_t n_ctx, long long max_chunks, const std::string& where) {
  Require(n_ctx >= 4, "--ctx-size", std::to_string(n_ctx) + " is too small (at least 4: half of a chunk is context)");
  Require(n_tokens >= 2 * n_ctx, where,
          "tokenizes to " + std::to_string(n_tokens) + " tokens; a context of " + std::to_string(n_ctx) +
              " needs at least " + std::to_string(2 * n_ctx) + " (two chunks, as llama-perplexity requires)");
  PerplexityChunks c{n_ctx, n_tokens / n_ctx};
  if (max_chunks >= 0) c.n_chunk = std::min(c.n_chunk, static_cast<size_t>(max_chunks));
  Require(c.n_chunk > 0, "--chunks", "0 chunks: nothing to score");
  return c;
}

// Runs one chunk from position 0 of `seq` (emptied first), its first token replaced by bos when bos >= 0, and
// returns the logits of its scored positions: [scored, vocab]. The unscored half runs without the output head.
inline std::vector<float> ScoredLogits(const Gemma4& model, Sequence& seq, std::span<const int32_t> chunk, int32_t bos) {
  const PerplexityChunks c{chunk.size(), 1};
  Require(seq.cache.context() >= chunk.size(), "perplexity", "the sequence is shorter than the chunk");
  std::vector<int32_t> context(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(c.first()));
  if (bos >= 0) context[0] = bos;
  seq.Rollback(0);
  ForwardOutput head_less;
  model.Forward(seq, {context}, head_less);
  ForwardOutput out;
  out.all_logits = true;
  model.Forward(seq, {chunk.subspan(c.first(), c.scored())}, out);
  return std::move(out.logits);
}

// Sums of the scored tokens' negative log-likelihoods: PPL = exp(mean) and llama-perplexity's uncertainty, the
// standard error of the mean carried through exp.
struct NllSums {
  double sum = 0, sum2 = 0;
  size_t count = 0;
  void Add(double nll) { sum += nll, sum2 += nll * nll, ++count; }
  double Ppl() const { return std::exp(sum / static_cast<double>(count)); }
  double PplUncertainty() const {
    const double mean = sum / static_cast<double>(count), var = sum2 / static_cast<double>(count) - mean * mean;
    return count > 1 && var > 0 ? std::sqrt(var / static_cast<double>(count - 1)) * Ppl() : 0.0;
  }
};

}  // namespace g4
