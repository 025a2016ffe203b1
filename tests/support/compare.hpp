// Helpers the suites share: random token ids and the relative error they compare logits with.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace g4::testing {

// n token ids below `vocab`, drawn from `rng` (a caller's stream) or from a fresh one seeded with `seed`.
inline std::vector<int32_t> Tokens(size_t n, int vocab, std::mt19937& rng) {
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}
inline std::vector<int32_t> Tokens(size_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  return Tokens(n, vocab, rng);
}

// max |a - ref| / max |ref|.
inline double RelErr(std::span<const float> a, std::span<const float> ref) {
  REQUIRE(a.size() == ref.size());
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(a[i]) - ref[i]));
    s = std::max(s, std::abs(static_cast<double>(ref[i])));
  }
  return d / (s > 0 ? s : 1);
}

}  // namespace g4::testing
