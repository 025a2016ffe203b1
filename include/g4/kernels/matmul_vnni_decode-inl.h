// AVX3_DL only: the decode-time (1..4 tokens) integer matmul, fused. Decode streams every weight once and is
// bound by memory bandwidth, so nothing may be written back: each block of 32 weights is expanded to 32
// unsigned levels u in a register and meets the activations in one 256-bit vpdpbusd, whose accumulator
// starts at -offset * (sum of the 4 activation quants of the lane) (precomputed per token), so each lane ends
// holding the exact sum of (u - offset) * qx. The per-lane f32 scale is d_w * dx; Q4_K's mins add
// -m * (dx * sum of the block's quants) per block, 8 blocks per vector. Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_
#undef G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_
#else
#define G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <hwy/highway.h>

#include "g4/core/dequantize.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/matmul_int8-inl.h"

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {

#define G4_VNNI __attribute__((target("avx512vnni")))

inline __m256 BroadcastHalf(const std::byte* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(bits)));
}

// Levels of 32 values whose low nibbles are 16 bytes at p, high nibbles the next 16 values (Q4_0).
inline __m256i NibblesOf16(const std::byte* p) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

// Block decoders: for super-block sb of a row, the levels u, per-lane weight scales and (Q4_K) mins of each
// of its kBlocks blocks of 32. kOffset: u - kOffset is the signed level.
struct DecodeQ8_0 {
  static constexpr size_t kBlocks = 1, kBytes = sizeof(BlockQ8_0);
  static constexpr int kOffset = 128;
  static constexpr bool kHasMin = false;
  static void Decode(const std::byte* blk, __m256i* u, __m256* s, __m256*) {
    u[0] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(BlockQ8_0, qs))),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
    s[0] = BroadcastHalf(blk);
  }
};

struct DecodeQ4_0 {
  static constexpr size_t kBlocks = 1, kBytes = sizeof(BlockQ4_0);
  static constexpr int kOffset = 8;
  static constexpr bool kHasMin = false;
  static void Decode(const std::byte* blk, __m256i* u, __m256* s, __m256*) {
    u[0] = NibblesOf16(blk + offsetof(BlockQ4_0, qs));
    s[0] = BroadcastHalf(blk);
  }
};

struct DecodeQ4_K {
  static constexpr size_t kBlocks = 8, kBytes = sizeof(BlockQ4_K);
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  // m: the 8 mins as one vector (dmin * m_j), applied per super-block.
  static void Decode(const std::byte* blk, __m256i* u, __m256* s, __m256* m) {
    const float d = HalfAt(blk + offsetof(BlockQ4_K, d)), dmin = HalfAt(blk + offsetof(BlockQ4_K, dmin));
    // The 12 bytes of 6-bit (scale, min) pairs to 8 scale bytes then 8 min bytes (ggml's kmask unpacking;
    // the same values as Q4KScaleMin).
    uint32_t t[4];
    std::memcpy(t, blk + offsetof(BlockQ4_K, scales), 12);
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    t[3] = ((t[2] >> 4) & kmask2) | (((t[1] >> 6) & kmask3) << 4);
    const uint32_t mins_lo = t[1] & kmask1;
    t[1] = (t[2] & kmask2) | (((t[0] >> 6) & kmask3) << 4);
    t[2] = mins_lo;
    t[0] &= kmask1;
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t));
    const __m256 sc = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), _mm256_set1_ps(d));
    *m = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))), _mm256_set1_ps(dmin));
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    for (int pair = 0; pair < 4; ++pair) {  // 32 bytes: low nibbles are block 2p, high nibbles block 2p + 1
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(BlockQ4_K, qs) + 32 * pair));
      u[2 * pair] = _mm256_and_si256(q, lo4);
      u[2 * pair + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) s[j] = _mm256_permutevar8x32_ps(sc, _mm256_set1_epi32(j));
  }
};

struct DecodeQ6_K {
  static constexpr size_t kBlocks = 8, kBytes = sizeof(BlockQ6_K);
  static constexpr int kOffset = 32;
  static constexpr bool kHasMin = false;
  static void Decode(const std::byte* blk, __m256i* u, __m256* s, __m256*) {
    const float d = HalfAt(blk + offsetof(BlockQ6_K, d));
    int8_t sc[16];
    std::memcpy(sc, blk + offsetof(BlockQ6_K, scales), sizeof sc);
    const __m256i lo4 = _mm256_set1_epi8(0x0F), lo2 = _mm256_set1_epi8(0x03);
    for (int half = 0; half < 2; ++half) {  // blocks 4h..4h+3 from 64 bytes of low bits and 32 of high bits
      const std::byte* ql = blk + offsetof(BlockQ6_K, ql) + 64 * half;
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i h =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(BlockQ6_K, qh) + 32 * half));
      auto high = [&](int shift) {  // bits (shift, shift + 1) of qh moved to bits 4, 5
        const __m256i bits = _mm256_and_si256(_mm256_srli_epi16(h, shift), lo2);
        return _mm256_slli_epi16(bits, 4);
      };
      u[4 * half + 0] = _mm256_or_si256(_mm256_and_si256(l0, lo4), high(0));
      u[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(l1, lo4), high(2));
      u[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4), high(4));
      u[4 * half + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4), high(6));
    }
    // Two sub-blocks of 16 per block: lanes 0-3 take scale 2b, lanes 4-7 scale 2b + 1.
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc));
    const __m256 dv = _mm256_set1_ps(d);
    const __m256 lo = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8)), dv);
    const __m256 hi = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8))), dv);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m256i idx = _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1);
      s[k] = _mm256_permutevar8x32_ps(lo, idx);
      s[4 + k] = _mm256_permutevar8x32_ps(hi, idx);
    }
  }
};

inline constexpr size_t kPrefetchBytes = 4096;

// One row times kTok tokens: y[t * y_stride] for t < kTok.
template <class Dec, size_t kTok>
G4_VNNI HWY_NOINLINE void FusedRowDot(const std::byte* row, const Int8Activations& a, size_t t0, float* y,
                                      size_t y_stride) {
  __m256 acc[kTok], min_acc[kTok];
  #pragma GCC unroll 16
  for (size_t t = 0; t < kTok; ++t) {
    acc[t] = _mm256_setzero_ps();
    min_acc[t] = _mm256_setzero_ps();
  }
  const size_t n_super = a.n_in / (32 * Dec::kBlocks);
  for (size_t sb = 0; sb < n_super; ++sb) {
    __m256i u[Dec::kBlocks];
    __m256 s[Dec::kBlocks], m;
    // Ask for the bytes kPrefetchBytes ahead (the next rows): one stream per thread keeps too few misses in
    // flight to fill the memory pipe.
    _mm_prefetch(reinterpret_cast<const char*>(row + sb * Dec::kBytes + kPrefetchBytes), _MM_HINT_T0);
    Dec::Decode(row + sb * Dec::kBytes, u, s, &m);
    if constexpr (Dec::kHasMin) {
#pragma GCC unroll 16
      for (size_t t = 0; t < kTok; ++t)
        min_acc[t] = _mm256_fmadd_ps(m, _mm256_loadu_ps(a.block_sum(t0 + t) + sb * 8), min_acc[t]);
    }
    #pragma GCC unroll 16
    for (size_t k = 0; k < Dec::kBlocks; ++k) {
      const size_t b = sb * Dec::kBlocks + k;  // block of 32 within the row
      #pragma GCC unroll 16
      for (size_t t = 0; t < kTok; ++t) {
        const __m256i init = Dec::kOffset == 0 ? _mm256_setzero_si256()
                                               : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                                     a.lane_bias(t0 + t) + 8 * b));
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q_row(t0 + t) + 32 * b));
        const __m256 sum = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(init, u[k], q));
        acc[t] = _mm256_fmadd_ps(sum, _mm256_mul_ps(s[k], _mm256_set1_ps(a.block_scale(t0 + t)[b])), acc[t]);
      }
    }
  }
  #pragma GCC unroll 16
  for (size_t t = 0; t < kTok; ++t) {
    const __m256 v = _mm256_sub_ps(acc[t], min_acc[t]);
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    y[t * y_stride] = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }
}

template <class Dec>
void FusedRows(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin, size_t r_end) {
  const size_t n_out = static_cast<size_t>(w.rows());
  for (size_t r = r_begin; r < r_end; ++r) {
    const std::byte* row = w.row(static_cast<int64_t>(r));
    for (size_t t0 = 0; t0 < n_tok; t0 += 4) {
      float* yt = y + t0 * n_out + r;
      switch (std::min<size_t>(4, n_tok - t0)) {
        case 1: FusedRowDot<Dec, 1>(row, a, t0, yt, n_out); break;
        case 2: FusedRowDot<Dec, 2>(row, a, t0, yt, n_out); break;
        case 3: FusedRowDot<Dec, 3>(row, a, t0, yt, n_out); break;
        default: FusedRowDot<Dec, 4>(row, a, t0, yt, n_out); break;
      }
    }
  }
}

inline void MatMulFusedRows(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin,
                            size_t r_end) {
  switch (w.type) {
    case Type::Q8_0: FusedRows<DecodeQ8_0>(w, a, n_tok, y, r_begin, r_end); break;
    case Type::Q4_0: FusedRows<DecodeQ4_0>(w, a, n_tok, y, r_begin, r_end); break;
    case Type::Q4_K: FusedRows<DecodeQ4_K>(w, a, n_tok, y, r_begin, r_end); break;
    default: FusedRows<DecodeQ6_K>(w, a, n_tok, y, r_begin, r_end); break;
  }
}

#undef G4_VNNI

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // toggle guard
