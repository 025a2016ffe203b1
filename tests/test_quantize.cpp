// QuantizeRow: round trips f32 -> type -> f32 (decoded by DequantizeRow, written independently from ggml's
// dequantize_row_*) within each format's documented bound, exactness on representable values, hand-derived
// ggml blocks, and errors on bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/core/quantize.hpp"
#include "g4/core/tensor.hpp"

namespace g4_test_quantize {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

// Test data: several distributions per row of n values, so blocks see spread, outliers, tiny values and zeros.
std::vector<float> TestValues(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    switch ((i / 256) % 5) {
      case 0: v[i] = u(rng); break;
      case 1: v[i] = 3.0f * g(rng) * (i % 97 == 0 ? 20.0f : 1.0f); break;  // gaussian with outliers
      case 2: v[i] = 1e-3f * u(rng) + 2e-3f; break;                          // small, all positive
      case 3: v[i] = i % 256 < 64 ? 0.0f : -0.5f * std::abs(g(rng)); break;  // zeros, then all negative
      default: v[i] = 100.0f * u(rng); break;
    }
  }
  return v;
}

std::vector<float> RoundTrip(Type type, const std::vector<float>& x, std::vector<std::byte>* blocks = nullptr) {
  std::vector<std::byte> q(TensorBytes(type, {static_cast<int64_t>(x.size())}, "test"));
  QuantizeRow(type, x.data(), x.size(), q.data());
  std::vector<float> y(x.size());
  DequantizeRow(type, q.data(), x.size(), y.data());
  if (blocks) *blocks = q;
  return y;
}

float HalfAt(const std::byte* p) {
  f16 h;
  std::memcpy(&h, p, 2);
  return F16ToF32(h);
}

constexpr double kTiny = 0x1p-20;  // slack for the f32 roundings of x * (1/d) and d * q, relative to amax

}  // namespace

TEST_CASE("F32 exact; BF16 and F16 exact on representable values, nearest otherwise") {
  std::mt19937 rng(1);
  std::vector<float> x(4096);
  for (float& v : x) v = BF16ToF32({static_cast<uint16_t>(rng() & 0xFFFF)});
  for (float& v : x)
    if (!std::isfinite(v)) v = 1.0f;
  CHECK(RoundTrip(Type::F32, x) == x);
  CHECK(RoundTrip(Type::BF16, x) == x);
  for (float& v : x) {
    v = F16ToF32({static_cast<uint16_t>(rng() & 0x7BFF)});  // finite halves of both signs below 2^16
    if (rng() & 1) v = -v;
  }
  CHECK(RoundTrip(Type::F16, x) == x);
  const std::vector<float> r = TestValues(1024, 2);
  const std::vector<float> h = RoundTrip(Type::F16, r), b = RoundTrip(Type::BF16, r);
  for (size_t i = 0; i < r.size(); ++i) {
    CHECK(std::abs(h[i] - r[i]) <= std::max(0x1p-11 * std::abs(r[i]), 0x1p-25));  // half an ulp (and subnormals)
    CHECK(std::abs(b[i] - r[i]) <= 0x1p-8 * std::abs(r[i]));
  }
}

TEST_CASE("Q8_0: |err| <= d/2 + 127 |d - d_h| per block of 32, d = amax/127") {
  const std::vector<float> x = TestValues(5 * 256, 3);
  std::vector<std::byte> q;
  const std::vector<float> y = RoundTrip(Type::Q8_0, x, &q);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    double amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::abs(static_cast<double>(x[b * 32 + j])));
    const double d = amax / 127, dh = HalfAt(q.data() + b * sizeof(BlockQ8_0));
    for (size_t j = 0; j < 32; ++j) {
      const size_t i = b * 32 + j;
      REQUIRE(std::abs(y[i] - x[i]) <= d / 2 + 127 * std::abs(d - dh) + kTiny * amax);
    }
  }
}

TEST_CASE("Q4_0: |err| <= |d|/2 + 8 |d - d_h|, or |d| (x/d - 7) where the top level clamps") {
  const std::vector<float> x = TestValues(5 * 256, 4);
  std::vector<std::byte> q;
  const std::vector<float> y = RoundTrip(Type::Q4_0, x, &q);
  size_t clamped = 0;
  for (size_t b = 0; b < x.size() / 32; ++b) {
    double amax = 0, max = 0;
    for (size_t j = 0; j < 32; ++j)
      if (std::abs(x[b * 32 + j]) > amax) {
        amax = std::abs(x[b * 32 + j]);
        max = x[b * 32 + j];
      }
    const double d = max / -8, dh = HalfAt(q.data() + b * sizeof(BlockQ4_0));
    for (size_t j = 0; j < 32; ++j) {
      const size_t i = b * 32 + j;
      const double t = d != 0 ? x[i] / d : 0;
      const double step = t > 7.5 ? std::abs(d) * (t - 7) : std::abs(d) / 2;
      clamped += t > 7.5;
      REQUIRE(std::abs(y[i] - x[i]) <= step + 8 * std::abs(d - dh) + kTiny * amax);
    }
  }
  CHECK(clamped > 0);  // the data reaches the asymmetric end of the range
}

TEST_CASE("Q4_K: every value on the nearest point of its sub-block grid; |err| <= D/2 where covered") {
  const std::vector<float> x = TestValues(5 * 256, 5);
  std::vector<std::byte> q;
  const std::vector<float> y = RoundTrip(Type::Q4_K, x, &q);
  size_t covered = 0;
  double err2 = 0, ideal2 = 0;
  for (size_t b = 0; b < x.size() / kQK_K; ++b) {
    BlockQ4_K blk;
    std::memcpy(&blk, q.data() + b * sizeof blk, sizeof blk);
    const float d = F16ToF32(blk.d), dmin = F16ToF32(blk.dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      Q4KScaleMin(j, blk.scales, &sc, &m);
      const double D = d * sc, M = dmin * m;
      double lo = 0, hi = 0;
      for (int l = 0; l < 32; ++l) {
        lo = std::min(lo, static_cast<double>(x[b * kQK_K + 32 * j + l]));
        hi = std::max(hi, static_cast<double>(x[b * kQK_K + 32 * j + l]));
      }
      const double slack = 0x1p-20 * (15 * D + M + hi - lo);
      for (int l = 0; l < 32; ++l) {
        const size_t i = b * kQK_K + 32 * j + l;
        double nearest = 1e30;
        for (int k = 0; k < 16; ++k) nearest = std::min(nearest, std::abs(x[i] - (D * k - M)));
        REQUIRE(std::abs(y[i] - x[i]) <= nearest + slack);
        if (x[i] >= -M - D / 2 && x[i] <= 15 * D - M + D / 2) {
          ++covered;
          REQUIRE(std::abs(y[i] - x[i]) <= D / 2 + slack);
        }
        err2 += (y[i] - x[i]) * (y[i] - x[i]);
        const double ideal_step = (hi - lo) / 15;  // a uniform 16-level grid over the sub-block's range
        ideal2 += ideal_step * ideal_step / 12;
      }
    }
  }
  CHECK(covered >= x.size() * 99 / 100);
  // The 6-bit scales and the 16-level grid cost at most ~1.5x the RMS error of an ideal unquantized grid.
  CHECK(std::sqrt(err2) <= 1.5 * std::sqrt(ideal2));
}

TEST_CASE("Q6_K: every value on the nearest point of its sub-block grid; |err| <= D/2 where covered") {
  const std::vector<float> x = TestValues(5 * 256, 6);
  std::vector<std::byte> q;
  const std::vector<float> y = RoundTrip(Type::Q6_K, x, &q);
  size_t covered = 0;
  double err2 = 0, ideal2 = 0;
  for (size_t b = 0; b < x.size() / kQK_K; ++b) {
    BlockQ6_K blk;
    std::memcpy(&blk, q.data() + b * sizeof blk, sizeof blk);
    const float d = F16ToF32(blk.d);
    for (int j = 0; j < 16; ++j) {
      const double D = static_cast<double>(d * blk.scales[j]);
      double amax = 0;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::abs(static_cast<double>(x[b * kQK_K + 16 * j + l])));
      const double slack = 0x1p-20 * (32 * std::abs(D) + amax);
      for (int l = 0; l < 16; ++l) {
        const size_t i = b * kQK_K + 16 * j + l;
        double nearest = 1e30;
        for (int k = -32; k < 32; ++k) nearest = std::min(nearest, std::abs(x[i] - D * k));
        REQUIRE(std::abs(y[i] - x[i]) <= nearest + slack);
        const double lo = std::min(-32 * D, 31 * D), hi = std::max(-32 * D, 31 * D);
        if (x[i] >= lo - std::abs(D) / 2 && x[i] <= hi + std::abs(D) / 2) {
          ++covered;
          REQUIRE(std::abs(y[i] - x[i]) <= std::abs(D) / 2 + slack);
        }
        err2 += (y[i] - x[i]) * (y[i] - x[i]);
        const double ideal_step = amax / 31.5;  // a symmetric 64-level grid over [-amax, amax]
        ideal2 += ideal_step * ideal_step / 12;
      }
    }
  }
  CHECK(covered >= x.size() * 99 / 100);
  CHECK(std::sqrt(err2) <= 1.5 * std::sqrt(ideal2));
}

TEST_CASE("hand-derived ggml blocks: Q8_0 and Q4_0 of x[j] = j - 16; K-quants of zeros") {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ8_0 q8;
  QuantizeRow(Type::Q8_0, x.data(), 32, reinterpret_cast<std::byte*>(&q8));
  // amax 16: d = 16/127, q = round((j - 16) * 127 / 16), halves away from zero.
  CHECK(q8.d.bits == F32ToF16(16.0f / 127.0f).bits);
  for (int j = 0; j < 32; ++j) CHECK(q8.qs[j] == static_cast<int>(std::round((j - 16) * 127.0 / 16.0)));
  CHECK(q8.qs[0] == -127);
  CHECK(q8.qs[1] == -119);  // -15 * 7.9375 = -119.06
  BlockQ4_0 q4;
  QuantizeRow(Type::Q4_0, x.data(), 32, reinterpret_cast<std::byte*>(&q4));
  // max = x[0] = -16: d = 2, levels trunc(x/2 + 8.5): low half (j - 16)/2 + 8.5, high half j/2 + 8.5 (max 15).
  CHECK(q4.d.bits == 0x4000);
  for (int j = 0; j < 16; ++j) {
    const int lo = (j + 1) / 2, hi = std::min(15, 8 + (j + 1) / 2);
    CHECK(q4.qs[j] == (lo | (hi << 4)));
  }
  std::vector<float> zeros(256, 0.0f);
  std::vector<std::byte> k4(sizeof(BlockQ4_K), std::byte{0xAB}), k6(sizeof(BlockQ6_K), std::byte{0xAB});
  QuantizeRow(Type::Q4_K, zeros.data(), 256, k4.data());
  QuantizeRow(Type::Q6_K, zeros.data(), 256, k6.data());
  for (std::byte v : k4) CHECK(v == std::byte{0});
  for (std::byte v : k6) CHECK(v == std::byte{0});
}

TEST_CASE("quantize: bad input throws a g4::Error") {
  std::vector<float> x(64, 1.0f);
  std::vector<std::byte> out(1024);
  CHECK_THROWS_WITH_AS(QuantizeRow(Type::Q8_0, x.data(), 40, out.data()), doctest::Contains("blocks of 32"), Error);
  CHECK_THROWS_WITH_AS(QuantizeRow(Type::Q4_K, x.data(), 64, out.data()), doctest::Contains("256"), Error);
  CHECK_THROWS_AS(QuantizeRow(Type::I32, x.data(), 64, out.data()), Error);
  x[7] = std::nanf("");
  CHECK_THROWS_WITH_AS(QuantizeRow(Type::Q4_0, x.data(), 64, out.data()), doctest::Contains("value 7"), Error);
  std::vector<float> block(256, 1.0f);
  block[3] = INFINITY;
  CHECK_THROWS_WITH_AS(QuantizeRow(Type::Q6_K, block.data(), 256, out.data()), doctest::Contains("not finite"), Error);
}

}  // namespace g4_test_quantize
