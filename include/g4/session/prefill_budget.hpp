// How many prompt tokens a scheduler step may prefill beside decoding requests, so that such a step takes at most
// `stall` times a step without prefill (issue 29: 2.5). A decode step streams the weights once (memory-bound) while
// every prompt token adds its own arithmetic (compute-bound), so what a token costs against a plain step depends on
// the machine and the model: on the 2-core Zen 3 a 256-token chunk made a 4-stream step 28x a plain one, where AMX
// prefills an order of magnitude faster. So the budget is learned from the steps' own times: a plain step's seconds
// per number of decoding rows, and the seconds one prompt token adds, each a moving average; the budget is the most
// tokens that fit (stall - 1) plain steps. Until both are known, a step beside decoding requests prefills `probe`.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "g4/core/error.hpp"

namespace g4 {

class PrefillBudget {
 public:
  // cap: most tokens a step prefills (also when nothing decodes); stall <= 0: always cap.
  explicit PrefillBudget(size_t cap, double stall = 2.5, size_t probe = 8)
      : cap_(cap), stall_(stall), probe_(std::max<size_t>(1, std::min(probe, cap))) {
    Require(cap >= 1, "prefill budget", "the cap must be >= 1");
    Require(std::isfinite(stall) && (stall <= 0.0 || stall > 1.0), "prefill budget",
            "the stall ratio must be > 1 (prefill_stall; <= 0: a fixed budget)");
  }

  // Prompt tokens the next step may prefill, when `decoding` rows of it decode.
  size_t Next(size_t decoding) const {
    if (decoding == 0 || stall_ <= 0.0) return cap_;
    const double plain = Plain(decoding);
    if (plain <= 0.0 || token_s_ <= 0.0) return probe_;
    const double fit = std::floor((stall_ - 1.0) * plain / token_s_);
    return static_cast<size_t>(std::clamp(fit, 1.0, static_cast<double>(cap_)));
  }

  // Records a finished step: `decoding` decode rows and `prefilled` prompt tokens took `seconds`.
  void Record(size_t decoding, size_t prefilled, double seconds) {
    if (!(seconds > 0.0) || (decoding == 0 && prefilled == 0)) return;
    if (prefilled == 0) return RecordPlain(decoding, seconds);
    const double base = decoding > 0 ? Plain(decoding) : Plain(1);
    if (decoding > 0 && base <= 0.0) {
      // No plain step of these rows yet (prompts arrived together, and one is still prefilling): what is left once
      // the known token cost is taken off stands for it.
      const double rest = seconds - static_cast<double>(prefilled) * token_s_;
      if (token_s_ > 0.0 && rest > 0.0) RecordPlain(decoding, rest);
      return;
    }
    // What the tokens added: beside decoding rows, over that plain step; alone, over the pass over the weights that
    // any step makes (the plain step of the fewest rows measured), or everything while none is known (more than
    // they cost: a smaller budget, never a longer stall).
    Average(token_s_, std::max(seconds - std::max(base, 0.0), 0.0) / static_cast<double>(prefilled));
  }

  // The measured averages (tests, benchmarks): a plain step of `decoding` rows (0 if none measured at or below it),
  // and the seconds a prompt token adds (0 if unmeasured).
  double plain_seconds(size_t decoding) const { return std::max(Plain(decoding), 0.0); }
  double token_seconds() const { return token_s_; }

 private:
  // The plain step of `decoding` rows, or of the most rows measured below (a shorter step: a smaller budget);
  // -1 if none.
  double Plain(size_t decoding) const {
    if (plain_.empty()) return -1.0;
    for (size_t d = std::min(decoding, plain_.size() - 1); d >= 1; --d)
      if (plain_[d] > 0.0) return plain_[d];
    return -1.0;
  }
  void RecordPlain(size_t decoding, double seconds) {
    if (plain_.size() <= decoding) plain_.resize(decoding + 1, 0.0);
    Average(plain_[decoding], seconds);
  }
  // A moving average over about the last four steps: the host's speed drifts.
  static void Average(double& avg, double x) { avg = avg > 0.0 ? 0.75 * avg + 0.25 * x : x; }

  size_t cap_;
  double stall_;
  size_t probe_;
  std::vector<double> plain_;  // [decoding rows] seconds of a step without prefill; 0: not measured
  double token_s_ = 0.0;       // seconds one prompt token adds to a step
};

}  // namespace g4
