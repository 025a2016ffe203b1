// KL divergence of a model's next-token distributions from a base model's stored ones (a logits file), with
// llama-perplexity's statistics: both perplexities and their ratio with correlated uncertainties, KLD(base || model)
// with percentiles, the change in the true token's probability (Δp), and how often both pick the same top token.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "g4/eval/log_prob_rows.hpp"

namespace g4 {

// One scored position: the model's logits against the base's compact row, the true next token `target`.
struct KldPosition {
  float nll = 0, nll_base = 0;  // -log p(target) under the model and under the base
  double kld = 0;               // sum over the base's tokens above e^-16 of p_base (log p_base - log p)
  bool same_top = false;        // the two argmaxes agree (the first index among equals, each side)
  float p_diff = 0;             // p(target) - p_base(target)
};

inline KldPosition KldAt(std::span<const float> logits, std::span<const uint16_t> base_row, int32_t target) {
  const LogSoftmax ls = LogSoftmaxOf(logits);
  const CompactRow base(base_row);
  KldPosition r;
  const float log_z = ls.max + static_cast<float>(ls.log_sum_exp);
  r.nll = log_z - logits[static_cast<size_t>(target)];
  r.nll_base = -base.LogProb(static_cast<size_t>(target));
  size_t base_argmax = 0;
  float base_best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float lp_base = base.LogProb(i);
    if (i == 0 || lp_base > base_best) base_best = lp_base, base_argmax = i;
    if (lp_base > -16.f) r.kld += std::exp(lp_base) * (lp_base - logits[i] + log_z);
  }
  r.same_top = static_cast<size_t>(ls.argmax) == base_argmax;
  r.p_diff = std::exp(-r.nll) - std::exp(-r.nll_base);
  return r;
}

// A mean with the standard error of the mean (0 below 11 values, as llama-perplexity).
struct MeanErr {
  double mean = 0, err = 0;
};

class KldSums {
 public:
  void Add(const KldPosition& p) {
    nll_ += p.nll, nll2_ += double(p.nll) * p.nll;
    base_ += p.nll_base, base2_ += double(p.nll_base) * p.nll_base;
    nll_base_ += double(p.nll) * p.nll_base;
    kld_ += p.kld, kld2_ += p.kld * p.kld;
    const double d2 = double(p.p_diff) * p.p_diff;
    p_diff_ += p.p_diff, p_diff2_ += d2, p_diff4_ += d2 * d2;
    same_top_ += p.same_top;
    kld_values_.push_back(static_cast<float>(p.kld));
    p_diff_values_.push_back(p.p_diff);
  }
  size_t count() const { return kld_values_.size(); }
  MeanErr LogPpl() const { return Mean(nll_, nll2_); }
  MeanErr LogPplBase() const { return Mean(base_, base2_); }
  // Cov(mean ln PPL, mean ln PPL_base).
  double LogPplCovariance() const {
    const double n = static_cast<double>(count());
    return count() < 10 ? 0.0 : (nll_base_ / n - (nll_ / n) * (base_ / n)) / (n - 1);
  }
  MeanErr LogPplRatio() const {
    const MeanErr a = LogPpl(), b = LogPplBase();
    return {a.mean - b.mean, std::sqrt(std::max(0.0, a.err * a.err + b.err * b.err - 2 * LogPplCovariance()))};
  }
  MeanErr Kld() const { return Mean(kld_, kld2_); }
  MeanErr PDiff() const { return Mean(p_diff_, p_diff2_); }
  MeanErr PDiffRms() const {
    const MeanErr mse = Mean(p_diff2_, p_diff4_);
    const double rms = std::sqrt(mse.mean);
    return {rms, rms > 0 ? 0.5 / rms * mse.err : 0.0};
  }
  MeanErr SameTop() const {
    const double n = static_cast<double>(count()), p = static_cast<double>(same_top_) / n;
    return {p, count() > 1 ? std::sqrt(p * (1 - p) / (n - 1)) : 0.0};
  }
  // Sorted per-position values, for percentiles.
  std::vector<float> SortedKld() const { return Sorted(kld_values_); }
  std::vector<float> SortedPDiff() const { return Sorted(p_diff_values_); }

 private:
  MeanErr Mean(double sum, double sum2) const {
    const size_t n = count();
    if (n < 1) return {};
    const double f = sum / static_cast<double>(n), var = sum2 / static_cast<double>(n) - f * f;
    return {f, var > 0 && n > 10 ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0};
  }
  static std::vector<float> Sorted(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v;
  }
  double nll_ = 0, nll2_ = 0, base_ = 0, base2_ = 0, nll_base_ = 0, kld_ = 0, kld2_ = 0, p_diff_ = 0, p_diff2_ = 0,
         p_diff4_ = 0;
  size_t same_top_ = 0;
  std::vector<float> kld_values_, p_diff_values_;
};

// llama-perplexity's percentile: linear between the two nearest of the sorted values.
inline float Percentile(const std::vector<float>& sorted, float fraction) {
  if (fraction <= 0) return sorted.front();
  if (fraction >= 1) return sorted.back();
  float p = fraction * static_cast<float>(sorted.size() - 1);
  const size_t ip = static_cast<size_t>(p);
  p -= static_cast<float>(ip);
  return (1 - p) * sorted[ip] + p * sorted[std::min(ip + 1, sorted.size() - 1)];
}

}  // namespace g4
