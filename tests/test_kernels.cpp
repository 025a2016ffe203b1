// Kernels: every Highway target this CPU supports, forced in turn, against the double-precision scalar
// reference (g4::ref) and, for f32 GEMM, Eigen. Tolerances are derived from f32 arithmetic: a sum of n
// products computed in f32 is within n * eps * sum|a_i b_i| of the exact value (the standard forward bound).
#include <doctest/doctest.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/core/row_groups.hpp"
#include "g4/core/tensor.hpp"
#include "g4/kernels/cpu_tuning.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/kernels/reference.hpp"

namespace g4_test_kernels {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

std::vector<float> RandomFloats(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Runs `body` once per available target, with that target forced; restores the best target afterwards.
template <typename F>
void ForEachTarget(F&& body) {
  const std::vector<std::string> targets = AvailableTargets();
  REQUIRE(!targets.empty());
  for (const std::string& t : targets) {
    ForceTarget(t);
    REQUIRE(CurrentTarget() == t);
    INFO("target " << t);
    body(t);
  }
  ForceTarget("");
}

// A weight tensor of `type` filled with random but valid encodings: floats in [-1, 1]; quantized blocks with
// random quants and small positive scales. Independent of any quantizer.
Tensor RandomWeights(Type type, int64_t n_out, int64_t n_in, uint32_t seed) {
  Tensor t("w", type, {n_out, n_in});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), scale(0.001f, 0.05f);
  std::byte* p = t.data();
  const size_t n = static_cast<size_t>(n_out * n_in);
  auto put_f16 = [](std::byte* dst, float v) {
    const f16 h = F32ToF16(v);
    std::memcpy(dst, &h, 2);
  };
  switch (type) {
    case Type::F32:
      for (size_t i = 0; i < n; ++i) {
        const float v = u(rng);
        std::memcpy(p + 4 * i, &v, 4);
      }
      break;
    case Type::BF16:
      for (size_t i = 0; i < n; ++i) {
        const bf16 v = F32ToBF16(u(rng));
        std::memcpy(p + 2 * i, &v, 2);
      }
      break;
    case Type::F16:
      for (size_t i = 0; i < n; ++i) put_f16(p + 2 * i, u(rng));
      break;
    default: {  // random bytes, then sane scales
      for (size_t i = 0; i < t.view().nbytes; ++i) p[i] = static_cast<std::byte>(rng() & 0xFF);
      const TypeInfo info = GetTypeInfo(type);
      for (size_t b = 0; b < n / info.block_elems; ++b) {
        std::byte* blk = p + b * info.block_bytes;
        if (type == Type::Q6_K) {
          put_f16(blk + offsetof(BlockQ6_K, d), scale(rng) / 4);
        } else if (type == Type::Q4_K) {
          put_f16(blk + offsetof(BlockQ4_K, d), scale(rng) / 8);
          put_f16(blk + offsetof(BlockQ4_K, dmin), scale(rng) / 8);
        } else {
          put_f16(blk, scale(rng));  // Q8_0 / Q4_0: d first
        }
      }
    }
  }
  return t;
}

// The magnitude of the offset of each weight of a quantized row: the kernels compute w = s * u - k with an
// unsigned level u (matmul_int8-inl.h), so |s u| <= |w| + k, and their f32 error scales with |w| + 2k.
std::vector<double> OffsetMagnitudes(Type type, const std::byte* row, size_t n_in) {
  std::vector<double> k(n_in, 0.0);
  auto half = [](const std::byte* p) {
    f16 h;
    std::memcpy(&h, p, 2);
    return static_cast<double>(F16ToF32(h));
  };
  for (size_t i = 0; i < n_in; ++i) {
    switch (type) {
      case Type::Q8_0: k[i] = 128 * std::abs(half(row + i / 32 * sizeof(BlockQ8_0))); break;
      case Type::Q4_0: k[i] = 8 * std::abs(half(row + i / 32 * sizeof(BlockQ4_0))); break;
      case Type::Q4_K: {
        const std::byte* b = row + i / 256 * sizeof(BlockQ4_K);
        uint8_t scales[12], sc, m;
        std::memcpy(scales, b + offsetof(BlockQ4_K, scales), 12);
        Q4KScaleMin(static_cast<int>(i % 256 / 32), scales, &sc, &m);
        k[i] = std::abs(half(b + offsetof(BlockQ4_K, dmin))) * m;
        break;
      }
      case Type::Q6_K: {
        const std::byte* b = row + i / 256 * sizeof(BlockQ6_K);
        int8_t sc;
        std::memcpy(&sc, b + offsetof(BlockQ6_K, scales) + i % 256 / 16, 1);
        k[i] = 32 * std::abs(half(b + offsetof(BlockQ6_K, d)) * sc);
        break;
      }
      default: break;
    }
  }
  return k;
}

// Bound on |ours - exact| for one output. Float weights: f32 accumulation of n_in products (plus the rounding
// of the result). Quantized weights: the activations are rounded to int8 blocks of 32 (dx = amax / 127, error
// <= dx / 2 each), and the f32 sums run over |w| + 2k magnitudes (see OffsetMagnitudes).
double MatMulBound(Type type, const std::byte* w_bytes, const std::vector<float>& w_row, const float* x,
                   size_t n_in) {
  const bool quantized = GetTypeInfo(type).block_elems > 1;
  const std::vector<double> k = quantized ? OffsetMagnitudes(type, w_bytes, n_in) : std::vector<double>(n_in, 0.0);
  double magnitude = 0, rounding = 0;
  for (size_t b = 0; b < n_in; b += 32) {
    double amax = 0;
    for (size_t i = b; i < std::min(n_in, b + 32); ++i) amax = std::max(amax, std::abs(static_cast<double>(x[i])));
    const double half_step = quantized ? amax / 127 / 2 * (1 + 1e-4) : 0;
    for (size_t i = b; i < std::min(n_in, b + 32); ++i) {
      magnitude += (std::abs(w_row[i]) + 2 * k[i]) * (std::abs(x[i]) + half_step);
      rounding += std::abs(w_row[i]) * half_step;
    }
  }
  return (static_cast<double>(n_in) + 2) * kEps * magnitude + rounding + 1e-30;
}

// row_groups: the product goes through a RowGroupWeights copy (read by AVX3_DL's fused kernels, ignored by the
// other paths), the reference through the original.
void CheckMatMulOf(const Tensor& w, const std::vector<float>& x, size_t n_tok, ThreadPool& pool, bool row_groups) {
  const Type type = w.view().type;
  const int64_t n_out = w.view().rows(), n_in = w.view().cols();
  INFO("type " << TypeName(type) << " n_out " << n_out << " n_in " << n_in << " n_tok " << n_tok << " row groups "
               << row_groups);
  std::vector<float> want(n_tok * static_cast<size_t>(n_out)), got(want.size(), std::nanf(""));
  ref::MatMul(w.view(), x.data(), n_tok, want.data());
  if (row_groups) {
    const RowGroupWeights grouped(w.view(), pool);
    MatMul(grouped.view(), x.data(), n_tok, got.data(), pool);
  } else {
    MatMul(w.view(), x.data(), n_tok, got.data(), pool);
  }
  std::vector<float> row(static_cast<size_t>(n_in));
  size_t bad = 0;
  for (int64_t o = 0; o < n_out; ++o) {
    DequantizeTensorRow(w.view(), o, row.data());
    for (size_t t = 0; t < n_tok; ++t) {
      const size_t k = t * static_cast<size_t>(n_out) + static_cast<size_t>(o);
      const double bound = MatMulBound(type, w.view().row(o), row, x.data() + t * static_cast<size_t>(n_in),
                                       static_cast<size_t>(n_in));
      if (!(std::abs(static_cast<double>(got[k]) - want[k]) <= bound)) {
        if (bad++ < 5) FAIL_CHECK("y[" << t << ", " << o << "] = " << got[k] << ", want " << want[k] << " +- " << bound);
      }
    }
  }
  CHECK(bad == 0);
}

void CheckMatMul(Type type, int64_t n_out, int64_t n_in, size_t n_tok, ThreadPool& pool, bool row_groups = false) {
  const Tensor w = RandomWeights(type, n_out, n_in, static_cast<uint32_t>(n_out * 131 + n_in * 7 + n_tok));
  CheckMatMulOf(w, RandomFloats(n_tok * static_cast<size_t>(n_in), -1.0f, 1.0f, 99), n_tok, pool, row_groups);
}

}  // namespace

TEST_CASE("dispatch: every available target can be forced and reports itself") {
  const auto targets = AvailableTargets();
  REQUIRE(!targets.empty());
  for (const auto& t : targets) {
    ForceTarget(t);
    CHECK(CurrentTarget() == t);
    CHECK(AvailableTargets() == targets);  // forcing does not hide the others
  }
  ForceTarget("");
  CHECK(CurrentTarget() == targets.front());
  CHECK_THROWS_AS(ForceTarget("NO_SUCH_TARGET"), Error);
}

// Highway 1.2 added AVX3_ZEN4 and AVX3_SPR above AVX3_DL; kernels that tested for AVX3_DL by name or by equality
// switched their fast paths off on exactly those CPUs (7.8x slower decode). The best target of any CPU with AVX2
// must read row groups, and so must every target from the best down to AVX2, whatever Highway calls them.
TEST_CASE("dispatch: the best target of an AVX2 machine reads row groups, as does every target down to AVX2") {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool cpu_has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c");
#else
  const bool cpu_has_avx2 = false;
#endif
  const auto targets = AvailableTargets();
  const auto avx2 = std::find(targets.begin(), targets.end(), "AVX2");
  CHECK((avx2 != targets.end()) == cpu_has_avx2);
  ForceTarget("");
  CHECK(KernelsReadRowGroups() == cpu_has_avx2);
  for (auto t = targets.begin(); t != targets.end(); ++t) {
    ForceTarget(*t);
    INFO("target " << *t);
    CHECK(KernelsReadRowGroups() == (avx2 != targets.end() && t <= avx2));
  }
  ForceTarget("");
}

TEST_CASE("matmul: float weights, every target, odd sizes, 1..33 tokens") {
  ThreadPool pool(2);
  ForEachTarget([&](const std::string&) {
    for (Type type : {Type::F32, Type::BF16, Type::F16})
      for (int64_t n_in : {1, 7, 33, 300, 4100})  // 4100: one token from the tile on AVX-512 too (kOneRowMaxCols)
        for (int64_t n_out : {1, 5, 67})
          for (size_t n_tok : {1, 3, 8, 33}) CheckMatMul(type, n_out, n_in, n_tok, pool);
  });
}

// On AVX3_DL, 1..15 tokens take the fused 16-row kernels (9, 12 and 15 in two passes; 67 rows end in a group of
// 3); more take AMX tiles where the CPU has them (33: two full 16-token tiles and one of a single token) and
// otherwise the fused prefill kernel, in passes of 64 tokens and chunks of 4 (19, 33 and 70 = 64 + 6 end in
// chunks of 3, 1 and 2). Each type also runs from a row-group copy (core/row_groups.hpp; 67 rows: a last group
// of 3 rows padded to 16), which AVX2 reads with its vpmaddubsw kernels (70 tokens: passes of 64 and 6), as AVX3_DL
// and AVX3 do for one token, and for 2 tokens of Q4_K and 2..4 of Q6_K (MaddubsOverVnniMaxTokens; up to 4 tokens of
// those keep their accumulators in registers); AVX3 takes the VNNI kernels for more where the CPU has VNNI, as here on
// Zen 4 or Ice Lake. From the matrix itself, AVX3, AVX2 and the other targets take the unpacked-row kernel.
TEST_CASE("matmul: block-quantized weights, every target, 1..70 tokens, with and without AMX") {
  ThreadPool pool(2);
  for (bool amx : {true, false}) {
    INFO("AMX allowed: " << amx);  // without: 33 tokens take AVX3_DL's fused kernels in chunks, as on Ice Lake
    AllowAmx(amx);
    ForEachTarget([&](const std::string&) {
      for (Type type : {Type::Q8_0, Type::Q4_0, Type::Q4_K, Type::Q6_K}) {
        const int64_t block = static_cast<int64_t>(GetTypeInfo(type).block_elems);
        for (int64_t n_in : {block, 3 * block})
          for (int64_t n_out : {1, 5, 67})
            for (size_t n_tok : {1, 2, 3, 4, 8, 9, 12, 15, 19, 33, 70})
              for (bool groups : {false, true}) CheckMatMul(type, n_out, n_in, n_tok, pool, groups);
      }
    });
  }
  AllowAmx(true);
}

TEST_CASE("row groups: every byte of every row's block is stored once, where RowGroupOffset says") {
  ThreadPool pool(2);
  for (Type type : {Type::Q8_0, Type::Q4_0, Type::Q4_K, Type::Q6_K}) {
    INFO(TypeName(type));
    const size_t block_bytes = GetTypeInfo(type).block_bytes;
    std::vector<int> covered(block_bytes);  // the fields tile the block exactly once
    for (const RowGroupField& f : RowGroupFields(type))
      for (size_t o = f.offset; o < f.offset + f.bytes; ++o) ++covered[o];
    CHECK(std::count(covered.begin(), covered.end(), 1) == static_cast<std::ptrdiff_t>(block_bytes));
    // 21 rows (a second, short group repeats the last row) of 2 super-blocks, every byte distinct modulo 251.
    const int64_t n_out = 21, n_in = 2 * static_cast<int64_t>(GetTypeInfo(type).block_elems);
    Tensor w("w", type, {n_out, n_in});
    for (size_t i = 0; i < w.view().nbytes; ++i) w.data()[i] = static_cast<std::byte>(i % 251);
    const RowGroupWeights grouped(w.view(), pool);
    const size_t row_bytes = w.view().row_bytes();
    size_t bad = 0;
    for (size_t g = 0; g < 2; ++g)
      for (size_t j = 0; j < kRowGroupRows; ++j)
        for (size_t b = 0; b < row_bytes / block_bytes; ++b)
          for (const RowGroupField& f : RowGroupFields(type))
            for (size_t o = f.offset; o < f.offset + f.bytes; ++o) {
              const size_t row = std::min<size_t>(16 * g + j, n_out - 1), in_unit = (o - f.offset) % f.unit;
              const std::byte want = w.view().row(static_cast<int64_t>(row))[b * block_bytes + o];
              const std::byte got = grouped.view().row_groups[(16 * g * row_bytes + b * 16 * block_bytes) +
                                                              16 * (RowGroupOffset(type, o) - in_unit) + f.unit * j + in_unit];
              bad += got != want;
            }
    CHECK(bad == 0);
  }
}

// The integer kernels sum u8 x s8 products in int16 where they can (vpmaddubsw on AVX2 and AVX3): weights whose every
// byte is 0x00, 0x7F, 0x80 or 0xFF put every level at its extreme (Q8_0 -128 and 127, Q6_K 63, the 4-bit types
// 15), and activations of one magnitude put every quant at +-127, so any sum that can saturate does.
TEST_CASE("matmul: extreme levels and activations, every target, with and without row groups") {
  ThreadPool pool(2);
  ForEachTarget([&](const std::string&) {
    for (Type type : {Type::Q8_0, Type::Q4_0, Type::Q4_K, Type::Q6_K}) {
      const int64_t n_in = 2 * static_cast<int64_t>(GetTypeInfo(type).block_elems), n_out = 19;
      for (int byte : {0x00, 0x7F, 0x80, 0xFF}) {
        INFO("every weight byte " << byte);
        const TypeInfo info = GetTypeInfo(type);
        const Tensor sane = RandomWeights(type, n_out, n_in, 5);  // for its f16 scales
        Tensor w("w", type, {n_out, n_in});
        std::memset(w.data(), byte, w.view().nbytes);
        for (size_t b = 0; b < w.view().nbytes / info.block_bytes; ++b) {  // the f16 scales back (d, dmin)
          const size_t at = b * info.block_bytes + (type == Type::Q6_K ? offsetof(BlockQ6_K, d) : 0);
          std::memcpy(w.data() + at, sane.view().data + at, type == Type::Q4_K ? 4 : 2);
        }
        for (float sign : {1.0f, -1.0f}) {
          std::vector<float> x(3 * static_cast<size_t>(n_in));
          for (size_t i = 0; i < x.size(); ++i) {  // tokens: all +0.5 sign, mixed signs, all -2 sign
            const size_t t = i / static_cast<size_t>(n_in);
            x[i] = t == 0 ? 0.5f * sign : t == 1 ? (i % 3 == 0 ? -sign : sign) : -2.0f * sign;
          }
          for (size_t n_tok : {1, 3})
            for (bool groups : {false, true}) CheckMatMulOf(w, std::vector<float>(x.begin(), x.begin() + n_tok * n_in), n_tok, pool, groups);
        }
      }
    }
  });
}

// The fused few-token kernels read each group's per-row scales with a gather or with scalar loads, chosen by
// CPU vendor (ScaleLoads::kAuto); both ways must give the same results on every machine.
TEST_CASE("matmul: fused kernels with gathered and with scalar scale loads") {
  ThreadPool pool(2);
  // Every target: the setting only matters to those with the VNNI kernels, and which those are is the kernels' call.
  ForEachTarget([&](const std::string&) {
    for (ScaleLoads how : {ScaleLoads::kGather, ScaleLoads::kScalar}) {
      INFO("scale loads " << (how == ScaleLoads::kGather ? "gather" : "scalar"));
      SetScaleLoads(how);
      for (Type type : {Type::Q8_0, Type::Q4_0, Type::Q6_K})
        for (int64_t n_out : {5, 67})
          for (size_t n_tok : {1, 4, 5, 15}) CheckMatMul(type, n_out, 3 * static_cast<int64_t>(GetTypeInfo(type).block_elems), n_tok, pool);
    }
  });
  SetScaleLoads(ScaleLoads::kAuto);
}

// One token from row groups prefetches ahead of its stream in software or leaves it to the hardware, chosen by CPU
// family (OneTokenPrefetch::kAuto); both ways must give the same results on every machine and target.
TEST_CASE("matmul: one token from row groups with software and with hardware prefetch, every target") {
  ThreadPool pool(2);
  ForEachTarget([&](const std::string&) {
    for (OneTokenPrefetch how : {OneTokenPrefetch::kSoftware, OneTokenPrefetch::kHardware}) {
      INFO("prefetch " << (how == OneTokenPrefetch::kSoftware ? "software" : "hardware"));
      SetOneTokenPrefetch(how);
      for (Type type : {Type::Q8_0, Type::Q4_0, Type::Q4_K, Type::Q6_K})
        for (int64_t n_out : {5, 67}) CheckMatMul(type, n_out, 2 * static_cast<int64_t>(GetTypeInfo(type).block_elems), 1, pool, true);
    }
  });
  SetOneTokenPrefetch(OneTokenPrefetch::kAuto);
}

TEST_CASE("matmul: f32 GEMM agrees with Eigen, single and multi-threaded") {
  const int64_t n_out = 130, n_in = 257;
  const size_t n_tok = 33;
  const Tensor w = RandomWeights(Type::F32, n_out, n_in, 5);
  const std::vector<float> x = RandomFloats(n_tok * n_in, -1.0f, 1.0f, 6);
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMajor> W(reinterpret_cast<const float*>(w.view().data), n_out, n_in);
  const Eigen::Map<const RowMajor> X(x.data(), n_tok, n_in);
  const RowMajor want = (X * W.transpose()).eval();  // [n_tok, n_out]
  for (size_t threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    ForEachTarget([&](const std::string&) {
      std::vector<float> got(n_tok * n_out);
      MatMul(w.view(), x.data(), n_tok, got.data(), pool);
      for (size_t t = 0; t < n_tok; ++t)
        for (int64_t o = 0; o < n_out; ++o) {
          double abs_sum = 0;
          for (int64_t i = 0; i < n_in; ++i) abs_sum += std::abs(W(o, i) * X(t, i));
          // Both sides round: twice the one-sided bound.
          REQUIRE(std::abs(got[t * n_out + o] - want(t, o)) <= 2 * (n_in + 2) * kEps * abs_sum);
        }
    });
  }
}

TEST_CASE("matmul: invalid weights throw a g4::Error naming the tensor") {
  ThreadPool pool(1);
  std::vector<std::byte> bytes(4096);
  std::vector<float> x(64), y(64);
  TensorView w{"blk.0.ffn_up", Type::Q8_0, {2, 40}, bytes.data(), bytes.size()};  // 40 is not a multiple of 32
  try {
    MatMul(w, x.data(), 1, y.data(), pool);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("blk.0.ffn_up") != std::string::npos);
    CHECK(std::string(e.what()).find("block size 32") != std::string::npos);
  }
  TensorView w3{"w3", Type::F32, {2, 2, 4}, bytes.data(), bytes.size()};
  CHECK_THROWS_AS(MatMul(w3, x.data(), 1, y.data(), pool), Error);
  TensorView small{"small", Type::F32, {64, 64}, bytes.data(), bytes.size()};  // needs 16384 bytes
  CHECK_THROWS_WITH_AS(MatMul(small, x.data(), 1, y.data(), pool), doctest::Contains("small"), Error);
  TensorView ints{"ints", Type::I32, {2, 4}, bytes.data(), bytes.size()};
  CHECK_THROWS_AS(MatMul(ints, x.data(), 1, y.data(), pool), Error);
  TensorView ok{"ok", Type::F32, {2, 4}, bytes.data(), bytes.size()};
  CHECK_THROWS_WITH_AS(MatMul(ok, nullptr, 1, y.data(), pool), doctest::Contains("matmul ok input"), Error);
  CHECK_THROWS_WITH_AS(MatMul(ok, x.data(), 1, nullptr, pool), doctest::Contains("matmul ok output"), Error);
  MatMul(ok, nullptr, 0, nullptr, pool);  // no tokens: no data needed
  TensorView bf16{"blk.0.attn_q", Type::BF16, {2, 4}, bytes.data(), bytes.size()};
  // No row-group layout for float weights.
  CHECK_THROWS_WITH_AS(RowGroupWeights(bf16, pool), doctest::Contains("blk.0.attn_q"), Error);
}

TEST_CASE("rmsnorm and layernorm: every target, with and without weight, in place") {
  ForEachTarget([&](const std::string&) {
    for (size_t dim : {1, 3, 17, 64, 1000}) {
      INFO("dim " << dim);
      const size_t rows = 3;
      const std::vector<float> x = RandomFloats(rows * dim, -3.0f, 3.0f, static_cast<uint32_t>(dim));
      const std::vector<float> w = RandomFloats(dim, -2.0f, 2.0f, 11), b = RandomFloats(dim, -1.0f, 1.0f, 12);
      // f32 sums of dim terms: relative error <= (dim + c) eps on every output.
      const double rel = (static_cast<double>(dim) + 8) * kEps;
      for (const float* wp : {w.data(), static_cast<const float*>(nullptr)}) {
        std::vector<float> want(x.size()), got = x;
        ref::RMSNorm(x.data(), wp, 1e-6f, rows, dim, want.data());
        RMSNorm(got.data(), wp, 1e-6f, rows, dim, got.data());
        for (size_t i = 0; i < x.size(); ++i) REQUIRE(std::abs(got[i] - want[i]) <= rel * std::abs(want[i]) + 1e-30);
      }
      std::vector<float> want(x.size()), got = x;
      ref::LayerNorm(x.data(), w.data(), b.data(), 1e-5f, rows, dim, want.data());
      LayerNorm(got.data(), w.data(), b.data(), 1e-5f, rows, dim, got.data());
      for (size_t i = 0; i < x.size(); ++i) {
        const double scaled = std::abs(want[i] - b[i % dim]);  // |(x - mean) * inv * w|
        // The mean's rounding shifts every centred value by up to dim eps |x|max: bound it by 3 (the range).
        REQUIRE(std::abs(got[i] - want[i]) <= rel * (scaled + std::abs(b[i % dim]) + 3.0 * std::abs(w[i % dim])) + 1e-30);
      }
    }
  });
}

TEST_CASE("gelu-tanh gate, softmax, softcap: every target, sizes 1..1000") {
  ForEachTarget([&](const std::string&) {
    for (size_t n : {1, 5, 16, 33, 1000}) {
      INFO("n " << n);
      const std::vector<float> g = RandomFloats(n, -6.0f, 6.0f, static_cast<uint32_t>(n)),
                               u = RandomFloats(n, -2.0f, 2.0f, 3);
      std::vector<float> want(n), got = g;
      ref::GeluTanhGate(g.data(), u.data(), n, want.data());
      GeluTanhGate(got.data(), u.data(), n, got.data());
      // tanh within 4 ulp and its argument within 3 roundings: |err(1 + tanh)| <= 8 eps, times 0.5 |g u|;
      // plus the roundings of the products.
      for (size_t i = 0; i < n; ++i)
        REQUIRE(std::abs(got[i] - want[i]) <= 8 * kEps * std::abs(g[i] * u[i]) + 4 * kEps * std::abs(want[i]) + 1e-30);

      std::vector<float> s = RandomFloats(n, -20.0f, 20.0f, static_cast<uint32_t>(n + 1)), s_ref = s;
      ref::Softmax(s_ref.data(), n);
      Softmax(s.data(), n);
      double total = 0;
      for (size_t i = 0; i < n; ++i) {
        total += s[i];
        // exp within a few ulp of an argument rounded once (|arg| <= 40: 40 eps absolute), sum of n terms.
        REQUIRE(std::abs(s[i] - s_ref[i]) <= (static_cast<double>(n) + 48) * kEps * s_ref[i] + 1e-30);
      }
      CHECK(total == doctest::Approx(1.0).epsilon(1e-5));

      std::vector<float> c = RandomFloats(n, -100.0f, 100.0f, static_cast<uint32_t>(n + 2)), c_ref = c;
      ref::Softcap(c_ref.data(), n, 30.0f);
      Softcap(c.data(), n, 30.0f);
      for (size_t i = 0; i < n; ++i) REQUIRE(std::abs(c[i] - c_ref[i]) <= 8 * kEps * std::abs(c_ref[i]) + 1e-30);
    }
  });
  CHECK_THROWS_AS(Softcap(nullptr, 0, 0.0f), Error);
}

TEST_CASE("rope neox: every target, partial rotation, large positions") {
  ForEachTarget([&](const std::string&) {
    for (size_t head_dim : {2, 6, 64, 256}) {
      for (int64_t pos : {0, 7, 100000}) {
        INFO("head_dim " << head_dim << " pos " << pos);
        const size_t n_heads = 3, half = head_dim / 2;
        std::vector<float> inv_freq(half);
        for (size_t j = 0; j < half; ++j)  // the last quarter zero: unrotated pairs, as in partial RoPE
          inv_freq[j] = j >= half - half / 4 && half > 1 ? 0.0f : std::pow(10000.0f, -2.0f * j / head_dim);
        std::vector<float> x = RandomFloats(n_heads * head_dim, -2.0f, 2.0f, 21), x_ref = x;
        ref::RopeNeox(x_ref.data(), n_heads, head_dim, inv_freq.data(), pos);
        RopeNeox(x.data(), n_heads, head_dim, inv_freq.data(), pos);
        // cos, sin rounded once each, two products and a sum: <= 4 eps (|x0| + |x1|) per output.
        for (size_t h = 0; h < n_heads; ++h)
          for (size_t j = 0; j < half; ++j) {
            const size_t lo = h * head_dim + j, hi = lo + half;
            const double bound = 4 * kEps * (std::abs(x_ref[lo]) + std::abs(x_ref[hi]) + 1e-30) + 1e-30;
            const double mag = 4 * kEps * (std::abs(x[lo]) + std::abs(x[hi]));
            REQUIRE(std::abs(x[lo] - x_ref[lo]) <= bound + mag);
            REQUIRE(std::abs(x[hi] - x_ref[hi]) <= bound + mag);
          }
      }
    }
  });
  CHECK_THROWS_AS(RopeNeox(nullptr, 1, 3, nullptr, 0), Error);
}

namespace {

// Attention over random q, K, V in [-1, 1] against the double-precision reference, on every target, with each
// thread count. A score (f32 dot of head_dim products <= 1) errs by <= head_dim^2 eps * scale; a score error e
// moves each probability by <= ~2e relatively, so the output (a convex mix of values in [-1, 1]) by <= ~2e; the
// weighted sum of <= max_keys values, exp, the chunk rescales and a merge of split passes add <= (max_keys + 24)
// eps.
void CheckAttention(size_t n_heads, size_t n_kv, size_t n_tok, size_t head_dim, size_t capacity,
                    const std::vector<int64_t>& begin, const std::vector<int64_t>& end,
                    std::initializer_list<size_t> thread_counts) {
  const std::vector<float> q = RandomFloats(n_tok * n_heads * head_dim, -1.0f, 1.0f, 31),
                           k = RandomFloats(n_kv * capacity * head_dim, -1.0f, 1.0f, 32),
                           v = RandomFloats(n_kv * capacity * head_dim, -1.0f, 1.0f, 33);
  AttentionArgs a;
  a.q = q.data();
  a.n_tok = n_tok;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv;
  a.head_dim = head_dim;
  a.k = k.data();
  a.v = v.data();
  a.capacity = capacity;
  a.key_begin = begin.data();
  a.key_end = end.data();
  a.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> want(n_tok * n_heads * head_dim);
  a.out = want.data();
  ref::Attention(a);
  int64_t max_keys = 0;
  for (size_t t = 0; t < n_tok; ++t) max_keys = std::max(max_keys, end[t] - begin[t]);
  const double score_err = static_cast<double>(head_dim * head_dim + 2) * kEps * a.scale;
  const double bound = 3 * score_err + static_cast<double>(max_keys + 24) * kEps;
  for (size_t threads : thread_counts) {
    ThreadPool pool(threads);
    ForEachTarget([&](const std::string&) {
      INFO("heads " << n_heads << "/" << n_kv << " tokens " << n_tok << " head_dim " << head_dim << " threads "
                    << threads);
      std::vector<float> got(want.size(), std::nanf(""));
      AttentionArgs b = a;
      b.out = got.data();
      Attention(b, pool);
      for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::abs(got[i] - want[i]) <= bound);
      for (size_t t = 0; t < n_tok; ++t)  // an empty range gives zeros
        if (begin[t] == end[t])
          for (size_t i = t * n_heads * head_dim; i < (t + 1) * n_heads * head_dim; ++i) REQUIRE(got[i] == 0.0f);
    });
  }
}

}  // namespace

TEST_CASE("attention: every target, GQA, ring slots, empty and long ranges, 1..3 threads") {
  // (heads, KV heads, tokens): the queries sharing a KV head (tokens x group) come in tiles of 4 and leave 2, 3
  // or 1; with 3 tokens the keys' union is 82 long, so the last chunk (18 keys) is padded to a multiple of 4.
  // Queries at positions 200..204; a sliding window of 80 keys over a ring of 96 slots (positions wrap), one
  // query with a 0-key range, one whose range starts at 0 in the same cache (full attention, short).
  const size_t shapes[][3] = {{4, 2, 5}, {3, 1, 5}, {1, 1, 5}, {4, 2, 3}};
  for (const auto& shape : shapes)
    for (size_t head_dim : {1, 5, 64, 100})  // 100: blocks of 4 vectors, single vectors and scalar columns
      CheckAttention(shape[0], shape[1], shape[2], head_dim, 96, {121, 122, 123, 124, 0}, {201, 202, 203, 124, 70},
                     {1, 3});
}

TEST_CASE("attention: long ranges split between threads (split-K) merge to the reference") {
  // One pass per KV head leaves threads idle when tokens x KV heads are fewer than the threads (decoding on the
  // 12B's full layers: 16 heads on 1 KV head); the keys are then split and the partial softmax states merged.
  // Ranges: long ones (split into 2..5 segments), one inside a single segment (the others see none of its keys)
  // and one empty; (heads, KV heads): all on one KV head, and grouped.
  for (const auto& [n_heads, n_kv] : {std::pair<size_t, size_t>{16, 1}, {4, 2}})
    for (size_t n_tok : {1, 5})
      CheckAttention(n_heads, n_kv, n_tok, 64, 1100, {0, 3, 600, 50, 0}, {1000, 1001, 700, 50, 1002}, {2, 3, 5});
}

TEST_CASE("attention: bad shapes and ranges throw") {
  ThreadPool pool(1);
  std::vector<float> buf(64);
  const int64_t b[1] = {5}, e[1] = {3};
  AttentionArgs a;
  a.q = buf.data();
  a.k = buf.data();
  a.v = buf.data();
  a.out = buf.data();
  a.n_tok = 1;
  a.n_heads = 3;
  a.n_kv_heads = 2;
  a.head_dim = 2;
  a.capacity = 4;
  a.key_begin = b;
  a.key_end = e;
  CHECK_THROWS_WITH_AS(Attention(a, pool), doctest::Contains("n_kv_heads"), Error);
  a.n_heads = 2;
  CHECK_THROWS_WITH_AS(Attention(a, pool), doctest::Contains("key range"), Error);
}

}  // namespace g4_test_kernels
