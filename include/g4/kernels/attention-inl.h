// Per-target grouped-query attention with online softmax: one pass over each query's key range in chunks of
// kKeyChunk keys (scores of a chunk, then one rescale of the running output), f32 softmax state; keys and values
// stored as F32, F16 (converted a chunk at a time), or ggml's Q8_0 / Q4_0 blocks read in place: keys as int8 dot
// products with the query quantized per block of 32 (vpmaddubsw on AVX2 and AVX3, vpdpbusd on AVX3_DL and better,
// widening Highway multiplies elsewhere), values dequantized in registers as they are accumulated. All query heads that share a KV head go together, so each key and value row is read from memory once per
// pass: on the 12B's full layers (16 query heads on one KV head) once per token, not 16 times; and up to
// kMaxQueries / group tokens share that pass (MTP verification, prefill). Parallel over (token block, KV head);
// when those are fewer than the threads (decoding on the full layers: one task), the keys are split between
// threads too and the partial softmax states merged (split-K, as in flash-decoding): one token on a 32K full layer
// takes about two thirds of the time of whole-cache passes (docs/performance.md). Toggle-guarded: g4/impl.hpp
// includes it once per target.
#if defined(G4_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_ATTENTION_INL_H_
#undef G4_KERNELS_ATTENTION_INL_H_
#else
#define G4_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include <hwy/highway.h>

#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/activations-inl.h"
#include "g4/kernels/ops.hpp"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2  // AVX2 and every better x86 target (Highway orders them)
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// y = y * scale over n values.
HWY_INLINE void Scale(float* y, float scale, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, y + i), hn::Set(d, scale)), d, y + i);
  for (; i < n; ++i) y[i] *= scale;
}

// Row `pos` of a K or V plane of one KV head, as f32: F32 rows in place, F16 rows converted into `buf`.
HWY_INLINE const float* KVRow(const AttentionArgs& a, const void* plane, Type type, size_t kv_head, int64_t pos, float* buf) {
  const size_t at = (kv_head * a.capacity + static_cast<size_t>(pos) % a.capacity) * a.head_dim;
  if (type == Type::F32) return static_cast<const float*>(plane) + at;
  const hwy::float16_t* src = static_cast<const hwy::float16_t*>(plane) + at;
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= a.head_dim; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, src + i)), df, buf + i);
  for (; i < a.head_dim; ++i) {
    f16 h;
    std::memcpy(&h, src + i, sizeof(h));
    buf[i] = F16ToF32(h);
  }
  return buf;
}

constexpr size_t kMaxQueries = 128;   // (token, head) queries sharing one pass over the keys
constexpr size_t kKeyChunk = 64;      // keys per online-softmax step
constexpr size_t kMinSplitKeys = 256;  // fewest keys worth a thread of their own (split-K)
constexpr size_t kQueryTile = 4;      // queries sharing each load of a key or value vector

// ---- quantized caches: rows of head_dim / 32 blocks of Q8_0 or Q4_0 ------------------------------------------

HWY_INLINE bool IsBlockKV(Type t) { return t == Type::Q8_0 || t == Type::Q4_0; }
constexpr size_t CacheBlockBytes(Type t) { return t == Type::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0); }

// Row `pos` of a quantized K or V plane of one KV head, in place.
HWY_INLINE const std::byte* BlockRow(const AttentionArgs& a, const void* plane, Type type, size_t kv_head, int64_t pos) {
  const size_t slot = kv_head * a.capacity + static_cast<size_t>(pos) % a.capacity;
  return static_cast<const std::byte*>(plane) + slot * (a.head_dim / 32) * CacheBlockBytes(type);
}

// A block's f16 scale (its first two bytes) as f32.
HWY_INLINE float CacheBlockScale(const std::byte* block) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  uint16_t h;
  std::memcpy(&h, block, 2);
  return _cvtsh_ss(h);
#else
  f16 h;
  std::memcpy(&h, block, 2);
  return F16ToF32(h);
#endif
}

// A query as int8 blocks of 32 with one f32 scale each (d = largest magnitude / 127, levels rounded to nearest), as
// ggml quantizes activations: the dot products with a block's key levels are then exact in int32, and each query
// value is off by at most d / 2.
HWY_INLINE void QuantizeQuery(const float* x, size_t hd, int8_t* q, float* d) {
  for (size_t b = 0; b < hd / 32; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    d[b] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (size_t j = 0; j < 32; ++j)
      q[32 * b + j] = static_cast<int8_t>(std::clamp<long>(std::lrint(xb[j] * id), -127, 127));
  }
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
// The 32 signed levels of a key block: Q8_0's bytes; Q4_0's nibbles (low ones first, as ggml stores them) less 8.
template <Type kType>
HWY_INLINE __m256i CacheKeyLevels(const std::byte* block) {
  if constexpr (kType == Type::Q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
  } else {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
    const __m128i low = _mm_and_si128(bytes, _mm_set1_epi8(15));
    const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(15));
    return _mm256_sub_epi8(_mm256_set_m128i(high, low), _mm256_set1_epi8(8));
  }
}

// Per int32 lane, the sum of 4 products of signed levels k (within +-127) and q (+-127), exact: |k| times q with
// k's sign (ggml's trick for the unsigned x signed operands of vpmaddubsw, whose int16 pair sums stay within
// 2 * 127 * 127 < 32768, and of vpdpbusd). vpdpbusd is written as asm in its EVEX form, as matmul_vnni_decode-inl.h
// explains: Highway 1.0.3's AVX3_DL attributes would make the intrinsic the VEX form, which Zen 4 lacks.
HWY_INLINE __m256i CacheKeyDot(__m256i k, __m256i q) {
  const __m256i u = _mm256_abs_epi8(k), s = _mm256_sign_epi8(q, k);
#if HWY_TARGET <= HWY_AVX3_DL
  __m256i acc = _mm256_setzero_si256();
  asm("%{evex%} vpdpbusd %[s], %[u], %[acc]" : [acc] "+v"(acc) : [u] "v"(u), [s] "v"(s));
  return acc;
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

HWY_INLINE float SumOf8(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

// s[i][j] = scale q[i] . k[j] for kQ quantized queries and n keys of kType: per block the int32 lanes of the level
// products, converted and scaled once (key scale x query scale) into f32 lanes summed at the end.
template <Type kType, size_t kQ>
HWY_INLINE void BlockKeyScores(const int8_t* const* qq, const float* const* qd, const std::byte* const* k, size_t n,
                               size_t hd, float scale, float (*s)[kKeyChunk]) {
  for (size_t j = 0; j < n; ++j) {
    __m256 acc[kQ];
#pragma GCC unroll 4
    for (size_t i = 0; i < kQ; ++i) acc[i] = _mm256_setzero_ps();
    for (size_t b = 0; b < hd / 32; ++b) {
      const std::byte* block = k[j] + b * CacheBlockBytes(kType);
      const __m256i levels = CacheKeyLevels<kType>(block);
      const float dk = CacheBlockScale(block);
#pragma GCC unroll 4
      for (size_t i = 0; i < kQ; ++i) {
        const __m256i dot = CacheKeyDot(levels, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qq[i] + 32 * b)));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dk * qd[i][b]), acc[i]);
      }
    }
#pragma GCC unroll 4
    for (size_t i = 0; i < kQ; ++i) s[i][j] = SumOf8(acc[i]) * scale;
  }
}
#else
// The 32 signed levels of a key block into `levels` (Q8_0: its bytes; Q4_0: nibbles, low ones first, less 8).
template <Type kType>
HWY_INLINE const int8_t* CacheKeyLevels(const std::byte* block, int8_t* levels) {
  const auto* qs = reinterpret_cast<const uint8_t*>(block + 2);
  if constexpr (kType == Type::Q8_0) return reinterpret_cast<const int8_t*>(qs);
  for (size_t j = 0; j < 16; ++j) {
    levels[j] = static_cast<int8_t>((qs[j] & 15) - 8);
    levels[j + 16] = static_cast<int8_t>((qs[j] >> 4) - 8);
  }
  return levels;
}

// As the x86 version: per block the exact int32 level products (int16 widening multiplies, Highway's
// ReorderWidenMulAccumulate), converted and scaled into f32 lanes.
template <Type kType, size_t kQ>
HWY_INLINE void BlockKeyScores(const int8_t* const* qq, const float* const* qd, const std::byte* const* k, size_t n,
                               size_t hd, float scale, float (*s)[kKeyChunk]) {
  const hn::CappedTag<int16_t, 16> d16;
  const hn::RepartitionToWide<decltype(d16)> d32;
  const hn::Rebind<float, decltype(d32)> df;
  const hn::Rebind<int8_t, decltype(d16)> d8;
  const size_t N = hn::Lanes(d16);
  int8_t unpacked[32];
  for (size_t j = 0; j < n; ++j) {
    hn::Vec<decltype(df)> acc[kQ];
    for (size_t i = 0; i < kQ; ++i) acc[i] = hn::Zero(df);
    for (size_t b = 0; b < hd / 32; ++b) {
      const std::byte* block = k[j] + b * CacheBlockBytes(kType);
      const int8_t* levels = CacheKeyLevels<kType>(block, unpacked);
      const float dk = CacheBlockScale(block);
      for (size_t i = 0; i < kQ; ++i) {
        hn::Vec<decltype(d32)> sum0 = hn::Zero(d32), sum1 = hn::Zero(d32);
        for (size_t c = 0; c < 32; c += N)
          sum0 = hn::ReorderWidenMulAccumulate(d32, hn::PromoteTo(d16, hn::LoadU(d8, levels + c)),
                                               hn::PromoteTo(d16, hn::LoadU(d8, qq[i] + 32 * b + c)), sum0, sum1);
        acc[i] = hn::MulAdd(hn::ConvertTo(df, hn::RearrangeToOddPlusEven(sum0, sum1)), hn::Set(df, dk * qd[i][b]), acc[i]);
      }
    }
    for (size_t i = 0; i < kQ; ++i) s[i][j] = hn::GetLane(hn::SumOfLanes(df, acc[i])) * scale;
  }
}
#endif

// Value rows as AccumulateValues reads them: Load(j, col) the f32 vector of row j at column col, At(j, col) one value.
struct FloatValueRows {
  const float* const* v;
  HWY_INLINE VF Load(size_t j, size_t col) const { return hn::LoadU(DF(), v[j] + col); }
  HWY_INLINE float At(size_t j, size_t col) const { return v[j][col]; }
};
// Quantized rows, dequantized in registers: a vector's lanes (at most 16, a divisor of 16) lie in one block and, for
// Q4_0, in one half of it (low or high nibbles).
template <Type kType>
struct BlockValueRows {
  const std::byte* const* v;
  HWY_INLINE VF Load(size_t j, size_t col) const {
    const DF df;
    const hn::Rebind<int32_t, DF> di;
    const std::byte* block = v[j] + col / 32 * CacheBlockBytes(kType);
    const size_t at = col % 32;
    const VF d = hn::Set(df, CacheBlockScale(block));
    if constexpr (kType == Type::Q8_0) {
      const hn::Rebind<int8_t, DF> d8;
      return hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, reinterpret_cast<const int8_t*>(block + 2) + at))), d);
    } else {
      const hn::Rebind<uint8_t, DF> du8;
      auto w = hn::PromoteTo(di, hn::LoadU(du8, reinterpret_cast<const uint8_t*>(block + 2) + at % 16));
      w = at < 16 ? hn::And(w, hn::Set(di, 15)) : hn::ShiftRight<4>(w);
      return hn::Mul(hn::ConvertTo(df, hn::Sub(w, hn::Set(di, 8))), d);
    }
  }
  HWY_INLINE float At(size_t j, size_t col) const {
    const std::byte* block = v[j] + col / 32 * CacheBlockBytes(kType);
    const size_t at = col % 32;
    const auto* qs = reinterpret_cast<const uint8_t*>(block + 2);
    const int level = kType == Type::Q8_0 ? static_cast<int8_t>(qs[at]) : (at < 16 ? (qs[at] & 15) : (qs[at - 16] >> 4)) - 8;
    return CacheBlockScale(block) * static_cast<float>(level);
  }
};


// s[i][j0 + j] = scale q[i] . k[j] for kQ queries x kK keys: kQ kK independent accumulators (one chain of
// multiply-adds would wait on each one's latency: 4 cycles), each load of a key feeds kQ multiply-adds and
// each load of a query kK.
template <size_t kQ, size_t kK>
HWY_INLINE void DotTile(const float* const* q, const float* const* k, size_t hd, float scale, float (*s)[kKeyChunk],
                        size_t j0) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[kQ][kK];  // constant indices only (every loop over them unrolled): GCC otherwise stored them every step
#pragma GCC unroll 4
  for (size_t i = 0; i < kQ; ++i)
#pragma GCC unroll 4
    for (size_t j = 0; j < kK; ++j) acc[i][j] = hn::Zero(d);
  size_t c = 0;
  for (; c + N <= hd; c += N) {
    VF kv[kK];
#pragma GCC unroll 4
    for (size_t j = 0; j < kK; ++j) kv[j] = hn::LoadU(d, k[j] + c);
#pragma GCC unroll 4
    for (size_t i = 0; i < kQ; ++i) {
      const VF qv = hn::LoadU(d, q[i] + c);
#pragma GCC unroll 4
      for (size_t j = 0; j < kK; ++j) acc[i][j] = hn::MulAdd(qv, kv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (size_t i = 0; i < kQ; ++i)
#pragma GCC unroll 4
    for (size_t j = 0; j < kK; ++j) {
      float sum = hn::GetLane(hn::SumOfLanes(d, acc[i][j]));
      for (size_t r = c; r < hd; ++r) sum += q[i][r] * k[j][r];
      s[i][j0 + j] = sum * scale;
    }
}

// Scaled scores of kQ queries against n_keys keys (a multiple of kK).
template <size_t kQ, size_t kK>
HWY_INLINE void ScoreQueries(const float* const* q, const float* const* k, size_t n_keys, size_t hd, float scale,
                             float (*s)[kKeyChunk]) {
  for (size_t j = 0; j < n_keys; j += kK) DotTile<kQ, kK>(q, k + j, hd, scale, s, j);
}

// out[i][c0 .. c0 + kCols N) += sum_j p[i][j] v[j][...] for kQ queries: kQ x kCols accumulators stay in
// registers across the chunk's keys, and each load of a value vector feeds kQ multiply-adds.
template <size_t kQ, size_t kCols, class Rows>
HWY_INLINE void AccumulateValues(float* const* out, const float (*const* p)[kKeyChunk], const Rows& v, size_t n,
                                 size_t c0) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[kQ][kCols];  // constant indices only, so acc stays in registers
#pragma GCC unroll 8
  for (size_t i = 0; i < kQ; ++i)
#pragma GCC unroll 8
    for (size_t c = 0; c < kCols; ++c) acc[i][c] = hn::LoadU(d, out[i] + c0 + c * N);
  for (size_t j = 0; j < n; ++j) {
    VF vv[kCols];
#pragma GCC unroll 8
    for (size_t c = 0; c < kCols; ++c) vv[c] = v.Load(j, c0 + c * N);
#pragma GCC unroll 8
    for (size_t i = 0; i < kQ; ++i) {
      const VF pij = hn::Set(d, (*p[i])[j]);
#pragma GCC unroll 8
      for (size_t c = 0; c < kCols; ++c) acc[i][c] = hn::MulAdd(pij, vv[c], acc[i][c]);
    }
  }
#pragma GCC unroll 8
  for (size_t i = 0; i < kQ; ++i)
#pragma GCC unroll 8
    for (size_t c = 0; c < kCols; ++c) hn::StoreU(acc[i][c], d, out[i] + c0 + c * N);
}

// All head_dim columns of kQ queries: blocks of 4 vectors, then single vectors, then scalar columns.
// One query alone gets 8 column vectors, so that it too has 8 independent accumulator chains.
template <size_t kQ, class Rows>
HWY_INLINE void AccumulateValueRows(float* const* out, const float (*const* p)[kKeyChunk], const Rows& v, size_t n,
                                    size_t hd) {
  constexpr size_t kBlock = kQ == 1 ? 8 : 4;
  const size_t N = hn::Lanes(DF());
  size_t c0 = 0;
  for (; c0 + kBlock * N <= hd; c0 += kBlock * N) AccumulateValues<kQ, kBlock>(out, p, v, n, c0);
  for (; c0 + N <= hd; c0 += N) AccumulateValues<kQ, 1>(out, p, v, n, c0);
  for (; c0 < hd; ++c0)
    for (size_t i = 0; i < kQ; ++i)
      for (size_t j = 0; j < n; ++j) out[i][c0] += (*p[i])[j] * v.At(j, c0);
}

// f(std::integral_constant<size_t, kQ>, i) for the queries [i, i + kQ) of nq: tiles of kQueryTile, then one
// tile of the 1..3 left.
template <class F>
HWY_INLINE void ForQueryTiles(size_t nq, F&& f) {
  size_t i = 0;
  for (; i + kQueryTile <= nq; i += kQueryTile) f(std::integral_constant<size_t, kQueryTile>(), i);
  switch (nq - i) {
    case 3: f(std::integral_constant<size_t, 3>(), i); break;
    case 2: f(std::integral_constant<size_t, 2>(), i); break;
    case 1: f(std::integral_constant<size_t, 1>(), i); break;
    default: break;
  }
}

// Queries [0, nq) (query i: token t0 + i / gs, head h0 + i % gs, all on KV head kv_head) against the keys of
// [kb, ke) in their ranges, in one pass: verifying k drafts (k + 1 tokens) or a prefill chunk reads the cache
// once, not once per token. Leaves the online softmax's state: m[i] the largest score, l[i] = sum_j exp(s_ij -
// m[i]) and out[i] = sum_j exp(s_ij - m[i]) v_j (unnormalised); m = -inf, l = 0, out = 0 where no key is in range.
// kbuf, vbuf: kKeyChunk x head_dim floats each, for F16 caches converted a chunk at a time; qbuf, qscale:
// nt * gs x head_dim int8 and x head_dim / 32 floats, for the queries quantized against block keys.
HWY_INLINE void AttendQueryBlock(const AttentionArgs& a, size_t t0, size_t nt, size_t kv_head, size_t h0, size_t gs,
                                 int64_t kb, int64_t ke, float* const* out, float* m, float* l, float* kbuf,
                                 float* vbuf, int8_t* qbuf, float* qscale) {
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  const size_t hd = a.head_dim, nq = nt * gs;
  const float* q[kMaxQueries];
  int64_t begin[kMaxQueries], end[kMaxQueries];
  float scores[kMaxQueries][kKeyChunk];
  for (size_t i = 0; i < nq; ++i) {
    const size_t t = t0 + i / gs, h = h0 + i % gs;
    q[i] = a.q + (t * a.n_heads + h) * hd;
    std::fill(out[i], out[i] + hd, 0.0f);
    m[i] = kNone;
    l[i] = 0.0f;
    begin[i] = std::max(a.key_begin[t], kb);
    end[i] = std::min(a.key_end[t], ke);
  }
  const bool block_k = IsBlockKV(a.k_type), block_v = IsBlockKV(a.v_type);
  const int8_t* qq[kMaxQueries];
  const float* qd[kMaxQueries];
  if (block_k)
    for (size_t i = 0; i < nq; ++i) {
      QuantizeQuery(q[i], hd, qbuf + i * hd, qscale + i * (hd / 32));
      qq[i] = qbuf + i * hd;
      qd[i] = qscale + i * (hd / 32);
    }
  const float* k[kKeyChunk];
  const float* v[kKeyChunk];
  const std::byte* kq[kKeyChunk];
  const std::byte* vq[kKeyChunk];
  for (int64_t p0 = kb; p0 < ke; p0 += static_cast<int64_t>(kKeyChunk)) {
    const size_t n = static_cast<size_t>(std::min(static_cast<int64_t>(kKeyChunk), ke - p0));
    for (size_t j = 0; j < n; ++j) {
      const int64_t pos = p0 + static_cast<int64_t>(j);
      if (block_k) kq[j] = BlockRow(a, a.k, a.k_type, kv_head, pos);
      else k[j] = KVRow(a, a.k, a.k_type, kv_head, pos, a.k_type == Type::F32 ? nullptr : kbuf + j * hd);
      if (block_v) vq[j] = BlockRow(a, a.v, a.v_type, kv_head, pos);
      else v[j] = KVRow(a, a.v, a.v_type, kv_head, pos, a.v_type == Type::F32 ? nullptr : vbuf + j * hd);
    }
    if (block_k) {
      ForQueryTiles(nq, [&](auto tile_queries, size_t i) {
        constexpr size_t kQ = decltype(tile_queries)::value;
        if (a.k_type == Type::Q8_0) BlockKeyScores<Type::Q8_0, kQ>(qq + i, qd + i, kq, n, hd, a.scale, scores + i);
        else BlockKeyScores<Type::Q4_0, kQ>(qq + i, qd + i, kq, n, hd, a.scale, scores + i);
      });
    } else {
      // Scores in tiles of 4 queries x 4 keys: 4 + 4 loads feed 16 multiply-adds (4 x 2 tiles waited on L2); the
      // keys are padded to a multiple of 4 with the chunk's last (those scores are computed and never read).
      const size_t n4 = (n + 3) / 4 * 4;
      for (size_t j = n; j < n4; ++j) k[j] = k[n - 1];
      ForQueryTiles(nq, [&](auto tile_queries, size_t i) {
        constexpr size_t kQ = decltype(tile_queries)::value;
        ScoreQueries<kQ, 4>(q + i, k, n4, hd, a.scale, scores + i);
      });
    }
    // The online-softmax step: a query's keys in this chunk are one range [jb, je), the others weigh 0; the
    // running output is rescaled once per chunk.
    for (size_t i = 0; i < nq; ++i) {
      float* s = scores[i];
      const size_t jb = static_cast<size_t>(std::clamp<int64_t>(begin[i] - p0, 0, static_cast<int64_t>(n)));
      const size_t je = static_cast<size_t>(std::clamp<int64_t>(end[i] - p0, static_cast<int64_t>(jb), static_cast<int64_t>(n)));
      if (jb < je) {
        const float m_new = std::max(m[i], MaxOfValues(s + jb, je - jb));
        if (m_new != m[i]) {
          const float correction = std::exp(m[i] - m_new);  // 0 on the first keys (m = -inf)
          l[i] *= correction;
          if (l[i] > 0.0f) Scale(out[i], correction, hd);
          m[i] = m_new;
        }
        l[i] += ExpShiftedSum(s + jb, je - jb, m[i]);
      }
      std::fill(s, s + jb, 0.0f);
      std::fill(s + je, s + n, 0.0f);
    }
    const float(*p[kMaxQueries])[kKeyChunk];
    for (size_t i = 0; i < nq; ++i) p[i] = &scores[i];
    ForQueryTiles(nq, [&](auto tile_queries, size_t i) {
      constexpr size_t kQ = decltype(tile_queries)::value;
      if (a.v_type == Type::Q8_0) AccumulateValueRows<kQ>(out + i, p + i, BlockValueRows<Type::Q8_0>{vq}, n, hd);
      else if (a.v_type == Type::Q4_0) AccumulateValueRows<kQ>(out + i, p + i, BlockValueRows<Type::Q4_0>{vq}, n, hd);
      else AccumulateValueRows<kQ>(out + i, p + i, FloatValueRows{v}, n, hd);
    });
  }
}

void AttentionHeads(const AttentionArgs& a, ThreadPool& pool) {
  const size_t hd = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const size_t n_sub = (group + kMaxQueries - 1) / kMaxQueries;  // head groups per KV head: 1 unless group > 128
  const size_t per_sub = (group + n_sub - 1) / n_sub;
  const size_t tok_block = kMaxQueries / per_sub;  // tokens per pass over the keys
  const size_t n_blocks = (a.n_tok + tok_block - 1) / tok_block;
  const size_t n_passes = n_blocks * a.n_kv_heads * n_sub;
  // Key segments per pass: enough for every thread to have work, none shorter than kMinSplitKeys.
  int64_t longest = 0;
  for (size_t t = 0; t < a.n_tok; ++t) longest = std::max(longest, a.key_end[t] - a.key_begin[t]);
  const size_t n_split = std::max<size_t>(1, std::min((pool.size() + n_passes - 1) / n_passes,
                                                      static_cast<size_t>(longest) / kMinSplitKeys));
  // Per-worker chunks of K and V rows for F16 conversion, and one pass's queries quantized against block keys. Each
  // row is written before it is read, so none is zeroed (a vector zeroed 128-512 KiB per layer and token).
  const size_t chunk_floats = a.k_type == Type::F16 || a.v_type == Type::F16 ? kKeyChunk * hd : 0;
  const auto scratch = std::make_unique_for_overwrite<float[]>(pool.size() * 2 * chunk_floats);
  const size_t query_levels = IsBlockKV(a.k_type) ? std::min(a.n_tok, tok_block) * per_sub * hd : 0;
  const auto qbuf = std::make_unique_for_overwrite<int8_t[]>(pool.size() * query_levels);
  const auto qscale = std::make_unique_for_overwrite<float[]>(pool.size() * query_levels / 32);
  // Split passes leave their softmax states here, [split][token][head] (x head_dim for out), to be merged.
  const size_t n_queries = a.n_tok * a.n_heads;
  const size_t n_parts = n_split > 1 ? n_split * n_queries : 0;
  std::vector<float> part_out(n_parts * hd), part_m(n_parts), part_l(n_parts);
  pool.Run(n_passes * n_split, [&](size_t task, size_t worker) {
    const size_t split = task % n_split, pass = task / n_split;
    const size_t block = pass / (a.n_kv_heads * n_sub), rest = pass % (a.n_kv_heads * n_sub);
    const size_t kv_head = rest / n_sub, sub = rest % n_sub;
    const size_t h0 = kv_head * group + sub * per_sub, gs = std::min(per_sub, group - sub * per_sub);
    const size_t t0 = block * tok_block, nt = std::min(tok_block, a.n_tok - t0);
    int64_t kb = std::numeric_limits<int64_t>::max(), ke = std::numeric_limits<int64_t>::min();
    for (size_t t = t0; t < t0 + nt; ++t)
      if (a.key_begin[t] < a.key_end[t]) kb = std::min(kb, a.key_begin[t]), ke = std::max(ke, a.key_end[t]);
    if (kb >= ke) kb = ke = 0;
    // This split's share of [kb, ke), in whole chunks.
    const int64_t chunks = (ke - kb + static_cast<int64_t>(kKeyChunk) - 1) / static_cast<int64_t>(kKeyChunk);
    const int64_t per_split = (chunks + static_cast<int64_t>(n_split) - 1) / static_cast<int64_t>(n_split);
    const int64_t sb = std::min(ke, kb + static_cast<int64_t>(split) * per_split * static_cast<int64_t>(kKeyChunk));
    const int64_t se = std::min(ke, sb + per_split * static_cast<int64_t>(kKeyChunk));
    // Query i is (token t0 + i / gs, head h0 + i % gs): index qi = token * n_heads + head in the outputs.
    float* out[kMaxQueries];
    float m[kMaxQueries], l[kMaxQueries];
    const size_t nq = nt * gs, q0 = split * n_queries;
    auto index = [&](size_t i) { return (t0 + i / gs) * a.n_heads + h0 + i % gs; };
    for (size_t i = 0; i < nq; ++i) out[i] = (n_split > 1 ? part_out.data() + q0 * hd : a.out) + index(i) * hd;
    float* buf = scratch.get() + worker * 2 * chunk_floats;
    AttendQueryBlock(a, t0, nt, kv_head, h0, gs, sb, se, out, m, l, buf, buf + chunk_floats,
                     qbuf.get() + worker * query_levels, qscale.get() + worker * query_levels / 32);
    for (size_t i = 0; i < nq; ++i) {
      if (n_split > 1) {
        part_m[q0 + index(i)] = m[i];
        part_l[q0 + index(i)] = l[i];
      } else if (l[i] > 0.0f) {
        Scale(out[i], 1.0f / l[i], hd);
      }
    }
  });
  if (n_split == 1) return;
  // Merge: out = sum_s exp(m_s - M) out_s / sum_s exp(m_s - M) l_s, M the largest m_s.
  for (size_t qi = 0; qi < n_queries; ++qi) {
    float big = -std::numeric_limits<float>::infinity();
    for (size_t s = 0; s < n_split; ++s) big = std::max(big, part_m[s * n_queries + qi]);
    float* o = a.out + qi * hd;
    std::fill(o, o + hd, 0.0f);
    if (big == -std::numeric_limits<float>::infinity()) continue;  // no key in range: zeros, as unsplit
    float total = 0.0f;
    for (size_t s = 0; s < n_split; ++s) {
      const float w = std::exp(part_m[s * n_queries + qi] - big);  // 0 for a split without keys
      total += w * part_l[s * n_queries + qi];
      const float* po = part_out.data() + (s * n_queries + qi) * hd;
      for (size_t c = 0; c < hd; ++c) o[c] += w * po[c];
    }
    Scale(o, 1.0f / total, hd);
  }
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
