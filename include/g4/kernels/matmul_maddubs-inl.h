// The fused integer matmul of matmul_vnni_decode-inl.h for AVX2 and AVX3 without VNNI (AMD Zen 1-3, Intel
// Haswell to Raptor Lake clients, Skylake-SP and Cascade Lake servers, which Highway 1.0.3 runs as AVX3), with
// vpmaddubsw where that has vpdpbusd, in 256-bit vectors. AVX3_DL also takes it for one token, and for up to
// 2 / 4 tokens of Q4_K / Q6_K, where it streams at least as fast as the VNNI kernel (MaddubsOverVnniMaxTokens),
// with 256-bit vpdpbusd for Q4_0, Q4_K and Q6_K (DotLevels). It reads the row-group copy (TensorView::row_groups,
// core/row_groups.hpp) only: without one, matmul_int8-inl.h's unpacked-row kernel runs.
//
// A 16-row group is two halves of 8 rows, one int32 lane of a 256-bit vector per row; the row-group layout holds
// a half's dword of every row in 32 contiguous bytes, its f16 scales in 16. Each block's levels are unpacked once
// per half into registers and meet every token of the pass with its 4 activation quants broadcast from memory.
// vpmaddubsw adds each pair of u8 x s8 products into a saturating int16, so what is summed in int16 must stay
// below 32768 (activation quants are within +-127):
//   Q4_0, Q4_K (levels <= 15): a whole block, 8 vpmaddubsw (<= 8 * 2 * 15 * 127 = 30480), then one vpmaddwd
//     by ones widens the pairs into the row's int32 lane;
//   Q6_K (levels <= 63): two at a time (<= 32004), then vpmaddwd (DotLevels);
//   Q8_0 (levels up to 255 as q + 128): ggml's sign trick instead, |q| times sign(q) * x (<= 2 * 128 * 127 =
//     32512), vpmaddwd after each; no level offset, so no bias.
// What bounds it: the integer multiplies. Per token and 8-row block Q4_0 and Q4_K take 9 (8 vpmaddubsw + 1
// vpmaddwd), Q6_K 12, Q8_0 16, and prefill speed follows those ratios; one token streams about the memory's
// bandwidth (docs/performance.md), where the unpacked-row kernel reached a fraction of it.
// Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_MATMUL_MADDUBS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_MATMUL_MADDUBS_INL_H_
#undef G4_KERNELS_MATMUL_MADDUBS_INL_H_
#else
#define G4_KERNELS_MATMUL_MADDUBS_INL_H_
#endif

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include <hwy/highway.h>

#include "g4/core/row_groups.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/matmul_int8-inl.h"
#include "g4/kernels/matmul_vnni_decode-inl.h"  // DotBroadcast
#include "g4/kernels/cpu_tuning.hpp"  // OneTokenPrefetchInSoftware

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2  // AVX2 and every better x86 target (Highway orders them)
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {

// Half h (rows 8h..8h+7) of a 16-row group's super-block, in the row-group layout: a field's unit at byte o of
// the block lies at 16 * o + unit * row.
struct HalfGroup {
  const std::byte* p;  // the group's super-block
  size_t h;
  // Lane j: dword k of the 16 bytes at byte `off` of row 8h + j's block.
  HWY_INLINE __m256i Dwords(size_t off, size_t k) const {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kRowGroupRows * off + 64 * k + 32 * h));
  }
  // Lane j: the f16 at byte `off` of row 8h + j's block, as f32.
  HWY_INLINE __m256 Halves(size_t off) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kRowGroupRows * off + 16 * h)));
  }
};

HWY_INLINE __m256i Bytes256(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }

// The 4 activation quants at q, in every lane.
HWY_INLINE __m256i Broadcast4(const int8_t* q) {
  int32_t v;
  std::memcpy(&v, q, 4);
  return _mm256_set1_epi32(v);
}

// Per lane: sum over i < kN of u[i] . q[4 i .. 4 i + 3] for levels u <= kMaxLevel, exact in int32. vpmaddubsw
// adds its pairs of products in saturating int16, so kPerInt16 of them are summed in int16 before one vpmaddwd
// widens them (see the top of the file): 8 for 4-bit levels, 2 for Q6_K's 6-bit ones. On AVX3_DL, vpdpbusd sums
// in int32, in two chains: a third of the multiply work, which is what bounds one token where the memory is fast.
template <size_t kN, int kMaxLevel>
HWY_INLINE __m256i DotLevels(const __m256i* u, const int8_t* q) {
#if HWY_TARGET <= HWY_AVX3_DL
  __m256i even = DotBroadcast(_mm256_setzero_si256(), u[0], q), odd = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (size_t i = 1; i < kN; ++i) {
    if (i % 2) odd = DotBroadcast(odd, u[i], q + 4 * i);
    else even = DotBroadcast(even, u[i], q + 4 * i);
  }
  return kN == 1 ? even : _mm256_add_epi32(even, odd);
#else
  constexpr size_t kPerInt16 = 32767 / (2 * kMaxLevel * 127);
  static_assert(kPerInt16 >= 1);
  __m256i total = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (size_t i0 = 0; i0 < kN; i0 += kPerInt16) {
    __m256i s = _mm256_maddubs_epi16(u[i0], Broadcast4(q + 4 * i0));
#pragma GCC unroll 8
    for (size_t i = i0 + 1; i < std::min(kN, i0 + kPerInt16); ++i)
      s = _mm256_add_epi16(s, _mm256_maddubs_epi16(u[i], Broadcast4(q + 4 * i)));
    const __m256i wide = _mm256_madd_epi16(s, _mm256_set1_epi16(1));
    total = _mm256_add_epi32(total, wide);
  }
  return total;
#endif
}

// Decoders: one half of a group and one super-block of kBlocks blocks of 32 values at byte `off` of the block.
//   Header ReadHeader(g, off): what the blocks' scales come from;
//   Levels Load(g, off, k): block k's levels (lane j: row j), u[i] meeting activation quants 4i..4i+3;
//   Term(h, k, levels, q, bias): per row, the block's sum of w * q / dx (everything but the activation scale);
//   Min(h, k) (kHasMin): dmin * m of block k, per row;
//   kPrefetchAhead: whether the bytes kRowGroupPrefetchDistance ahead of the stream are prefetched into L2 while a
//     super-block is computed;
//   kHardwareFollows: whether one token may leave that to the hardware prefetcher (where not
//     OneTokenPrefetchInSoftware());
//   kRegisterTokens: up to how many tokens keep their accumulators in registers (see MaddubsRows).

// Q4_0 and Q8_0: super-blocks of one block, with one f16 scale d per row.
template <class BlockT>
struct MaddubsOneScale {
  static constexpr size_t kBlocks = 1, kBytes = sizeof(BlockT);
  static constexpr bool kHasMin = false, kPrefetchAhead = true, kHardwareFollows = true;
  static constexpr size_t kRegisterTokens = 1;
  struct Header {
    __m256 d;
  };
  static HWY_INLINE Header ReadHeader(const HalfGroup& g, size_t off) { return {g.Halves(off + offsetof(BlockT, d))}; }
  static HWY_INLINE __m256 Min(const Header&, size_t) { return _mm256_setzero_ps(); }
};

struct MaddubsQ4_0 : MaddubsOneScale<BlockQ4_0> {
  struct Levels {
    __m256i u[8];
  };
  static HWY_INLINE Levels Load(const HalfGroup& g, size_t off, size_t /*k*/) {
    Levels l;
#pragma GCC unroll 4
    for (size_t k = 0; k < 4; ++k) {  // low nibbles: values 0..15, high nibbles: 16..31
      const __m256i v = g.Dwords(off + offsetof(BlockQ4_0, qs), k);
      l.u[k] = _mm256_and_si256(v, Bytes256(0x0F));
      l.u[4 + k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), Bytes256(0x0F));
    }
    return l;
  }
  static HWY_INLINE __m256 Term(const Header& h, size_t, const Levels& l, const int8_t* q, const int32_t* bias) {
    const __m256i sum = _mm256_add_epi32(DotLevels<8, 15>(l.u, q), _mm256_set1_epi32(bias[0] + bias[1]));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(sum), h.d);
  }
};

struct MaddubsQ8_0 : MaddubsOneScale<BlockQ8_0> {
  // Its 544-byte group blocks stream in order without software prefetches, which cost it on Zen 4 and gain
  // nothing on Zen 5 (the other types need them).
  static constexpr bool kPrefetchAhead = false;
  struct Levels {
    __m256i magnitude[8];  // |q|: -128 becomes 0x80, which vpmaddubsw reads as 128
    HalfGroup g;           // the signed q, read again per token (an operand from L1): no registers left for them
    size_t off;
  };
  static HWY_INLINE Levels Load(const HalfGroup& g, size_t off, size_t /*k*/) {
    Levels l{{}, g, off + offsetof(BlockQ8_0, qs)};
#pragma GCC unroll 8
    for (size_t i = 0; i < 8; ++i) l.magnitude[i] = _mm256_abs_epi8(g.Dwords(l.off + 16 * (i / 4), i % 4));
    return l;
  }
  static HWY_INLINE __m256 Term(const Header& h, size_t, const Levels& l, const int8_t* q, const int32_t*) {
    __m256i sum = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (size_t i = 0; i < 8; ++i) {
      const __m256i x = _mm256_sign_epi8(Broadcast4(q + 4 * i), l.g.Dwords(l.off + 16 * (i / 4), i % 4));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(l.magnitude[i], x), _mm256_set1_epi16(1)));
    }
    return _mm256_mul_ps(_mm256_cvtepi32_ps(sum), h.d);
  }
};

// The f32 value of byte i of every lane of v (kSigned: as int8).
template <bool kSigned = false>
HWY_INLINE __m256 LaneByte(__m256i v, size_t i) {
  const __m256i b = kSigned ? _mm256_srai_epi32(_mm256_slli_epi32(v, static_cast<int>(24 - 8 * i)), 24)
                            : _mm256_and_si256(_mm256_srli_epi32(v, static_cast<int>(8 * i)), _mm256_set1_epi32(0xFF));
  return _mm256_cvtepi32_ps(b);
}

struct MaddubsQ4_K {
  static constexpr size_t kBlocks = 8, kBytes = sizeof(BlockQ4_K);
  static constexpr bool kHasMin = true, kPrefetchAhead = true, kHardwareFollows = true;
  static constexpr size_t kRegisterTokens = 4;
  struct Header {
    __m256 scale[8], min[8];  // d * sc and dmin * m of each block
  };
  struct Levels {
    __m256i u[8];
  };
  static HWY_INLINE Header ReadHeader(const HalfGroup& g, size_t off) {
    static_assert(offsetof(BlockQ4_K, dmin) == 2 && offsetof(BlockQ4_K, scales) == 4 &&
                  offsetof(BlockQ4_K, qs) == 16);
    // d | dmin, then the 12 bytes of 6-bit (scale, min) pairs, unpacked with ggml's kmask steps, 8 rows at once.
    const __m256i v0 = g.Dwords(off, 0), v1 = g.Dwords(off, 1), v2 = g.Dwords(off, 2), v3 = g.Dwords(off, 3);
    const __m256i kmask1 = _mm256_set1_epi32(0x3f3f3f3f), kmask2 = _mm256_set1_epi32(0x0f0f0f0f),
                  kmask3 = _mm256_set1_epi32(0x03030303);
    const __m256i sc[2] = {
        _mm256_and_si256(v1, kmask1),
        _mm256_or_si256(_mm256_and_si256(v3, kmask2),
                        _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(v1, 6), kmask3), 4))};
    const __m256i m[2] = {
        _mm256_and_si256(v2, kmask1),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(v3, 4), kmask2),
                        _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(v2, 6), kmask3), 4))};
    // The low (d) and high (dmin) f16 of each lane, packed: d0..d3 dmin0..dmin3 | d4..d7 dmin4..dmin7, then in order.
    const __m256i halves = _mm256_permute4x64_epi64(
        _mm256_packus_epi32(_mm256_and_si256(v0, _mm256_set1_epi32(0xFFFF)), _mm256_srli_epi32(v0, 16)),
        _MM_SHUFFLE(3, 1, 2, 0));
    const __m256 d = _mm256_cvtph_ps(_mm256_castsi256_si128(halves));
    const __m256 dmin = _mm256_cvtph_ps(_mm256_extracti128_si256(halves, 1));
    Header h;
#pragma GCC unroll 8
    for (size_t k = 0; k < 8; ++k) {
      h.scale[k] = _mm256_mul_ps(LaneByte(sc[k / 4], k % 4), d);
      h.min[k] = _mm256_mul_ps(LaneByte(m[k / 4], k % 4), dmin);
    }
    return h;
  }
  // Blocks 2p and 2p + 1 are the low and high nibbles of the 32 bytes of qs at 16 + 32 p.
  static HWY_INLINE Levels Load(const HalfGroup& g, size_t off, size_t k) {
    Levels l;
    const size_t qs = off + offsetof(BlockQ4_K, qs) + 32 * (k / 2);
#pragma GCC unroll 8
    for (size_t i = 0; i < 8; ++i) {
      const __m256i v = g.Dwords(qs + 16 * (i / 4), i % 4);
      l.u[i] = _mm256_and_si256(k % 2 ? _mm256_srli_epi16(v, 4) : v, Bytes256(0x0F));
    }
    return l;
  }
  static HWY_INLINE __m256 Term(const Header& h, size_t k, const Levels& l, const int8_t* q, const int32_t*) {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(DotLevels<8, 15>(l.u, q)), h.scale[k]);
  }
  static HWY_INLINE __m256 Min(const Header& h, size_t k) { return h.min[k]; }
};

struct MaddubsQ6_K {
  static constexpr size_t kBlocks = 8, kBytes = sizeof(BlockQ6_K);
  // The hardware prefetcher does not follow Q6_K's groups, so it always prefetches in software (without:
  // a fraction of the bandwidth); its register accumulators help on Zen 5 and not on Zen 4.
  static constexpr bool kHasMin = false, kPrefetchAhead = true, kHardwareFollows = false;
  static constexpr size_t kRegisterTokens = 4;
  struct Header {
    __m256 scale[16];  // d * sc, one per 16 values
  };
  struct Levels {
    __m256i u[8];
  };
  static constexpr size_t At(size_t o) { return RowGroupOffset(Type::Q6_K, o); }
  static HWY_INLINE Header ReadHeader(const HalfGroup& g, size_t off) {
    const __m256 d = g.Halves(off + At(offsetof(BlockQ6_K, d)));
    Header h;
#pragma GCC unroll 4
    for (size_t k = 0; k < 4; ++k) {
      const __m256i sc = g.Dwords(off + At(offsetof(BlockQ6_K, scales)), k);
#pragma GCC unroll 4
      for (size_t i = 0; i < 4; ++i) h.scale[4 * k + i] = _mm256_mul_ps(LaneByte<true>(sc, i), d);
    }
    return h;
  }
  // Block k = 4 half + j: 4 low bits from the low (j < 2) or high nibbles of ql[64 half + 32 (j % 2) + l], 2 high
  // bits from qh[32 half + l] >> 2j.
  static HWY_INLINE Levels Load(const HalfGroup& g, size_t off, size_t k) {
    const size_t half = k / 4, j = k % 4;
    const size_t ql = off + At(offsetof(BlockQ6_K, ql) + 64 * half + 32 * (j % 2)),
                 qh = off + At(offsetof(BlockQ6_K, qh) + 32 * half);
    Levels l;
#pragma GCC unroll 8
    for (size_t i = 0; i < 8; ++i) {
      const __m256i low = g.Dwords(ql + 16 * (i / 4), i % 4), high = g.Dwords(qh + 16 * (i / 4), i % 4);
      const __m256i low4 = j < 2 ? low : _mm256_srli_epi16(low, 4);
      const __m256i high2 = j == 0 ? _mm256_slli_epi16(high, 4)
                            : j == 1 ? _mm256_slli_epi16(high, 2)
                            : j == 2 ? high
                                     : _mm256_srli_epi16(high, 2);  // bits 2j, 2j + 1 moved to 4, 5
      l.u[i] = _mm256_or_si256(_mm256_and_si256(low4, Bytes256(0x0F)), _mm256_and_si256(high2, Bytes256(0x30)));
    }
    return l;
  }
  static HWY_INLINE __m256 Term(const Header& h, size_t k, const Levels& l, const int8_t* q, const int32_t* bias) {
    __m256i sum[2];  // values 0..15 and 16..31, each with its scale and bias
#pragma GCC unroll 2
    for (size_t s = 0; s < 2; ++s)
      sum[s] = _mm256_add_epi32(DotLevels<4, 63>(l.u + 4 * s, q + 16 * s), _mm256_set1_epi32(bias[s]));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[0]), h.scale[2 * k],
                           _mm256_mul_ps(_mm256_cvtepi32_ps(sum[1]), h.scale[2 * k + 1]));
  }
  static HWY_INLINE __m256 Min(const Header&, size_t) { return _mm256_setzero_ps(); }
};

// One group of 16 rows times the nt tokens of a pass (nt <= kPrefillTokens; kTok: nt fixed at compile time, 0
// where it is not); y[t * y_stride + j] for rows j < n_rows. The accumulators of a pass live in L1 (their loads and
// stores take ports the vector ALUs leave idle), those of one token in registers. While a super-block of a pass is
// computed, a super-block's bytes kRowGroupPrefetchDistance further on in the row groups (which store group after
// group contiguously) are prefetched into L2 (kPrefetch), spread over its blocks (see ForEachBlock in
// matmul_vnni_decode-inl.h).
template <class Dec, size_t kTok, bool kPrefetch>
HWY_NOINLINE void MaddubsGroupDot(const std::byte* group, const ActivationTile& a, size_t n_in, size_t n_tok, float* y,
                                  size_t y_stride, size_t n_rows) {
  const size_t nt = kTok ? kTok : n_tok;
  __m256 acc[2][kTok ? kTok : kPrefillTokens];
  for (size_t h = 0; h < 2; ++h)
    for (size_t t = 0; t < nt; ++t) acc[h][t] = _mm256_setzero_ps();
  constexpr size_t kGroupBytes = kRowGroupRows * Dec::kBytes, kLines = (kGroupBytes + 63) / 64, kSteps = 2 * Dec::kBlocks;
  for (size_t sb = 0; sb < n_in / (32 * Dec::kBlocks); ++sb) {
    const size_t off = sb * Dec::kBytes;
    for (size_t h = 0; h < 2; ++h) {
      const HalfGroup g{group, h};
      const typename Dec::Header header = Dec::ReadHeader(g, off);
      // The activation quants' base, opaque to GCC once per half: otherwise it hoists the 64 addresses of a
      // super-block's vpdpbusd operands (DotBroadcast's asm) out of this loop and spills them, a stack load per
      // vpdpbusd.
      const int8_t* q = a.q;
      asm("" : "+r"(q));
      // Block k of the super-block, k a constant: with k a loop variable, GCC branched on it per level vector.
      auto block = [&](auto k) HWY_ATTR {
        const size_t step = h * Dec::kBlocks + k;
        if constexpr (kPrefetch) {
          const size_t first = (step * kLines + kSteps - 1) / kSteps, last = ((step + 1) * kLines + kSteps - 1) / kSteps;
          for (size_t line = first; line < last; ++line)
            _mm_prefetch(reinterpret_cast<const char*>(group + kRowGroupPrefetchDistance + kGroupBytes * sb + 64 * line),
                         _MM_HINT_T1);
        }
        const typename Dec::Levels levels = Dec::Load(g, off, k);
        const size_t b = sb * Dec::kBlocks + k;
        for (size_t t = 0; t < nt; ++t) {
          const size_t kb = b * a.tile + t;  // the block's number for token t
          const __m256 term = Dec::Term(header, k, levels, q + 32 * kb, a.bias + 2 * kb);
          acc[h][t] = _mm256_fmadd_ps(term, _mm256_set1_ps(a.scale[kb]), acc[h][t]);
          if constexpr (Dec::kHasMin) acc[h][t] = _mm256_fnmadd_ps(Dec::Min(header, k), _mm256_set1_ps(a.sum[kb]), acc[h][t]);
        }
      };
      [&]<size_t... kK>(std::index_sequence<kK...>) HWY_ATTR {
        (block(std::integral_constant<size_t, kK>()), ...);
      }(std::make_index_sequence<Dec::kBlocks>());
    }
  }
  for (size_t h = 0; h < 2 && 8 * h < n_rows; ++h) {
    const __m256i store = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n_rows - 8 * h)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (size_t t = 0; t < nt; ++t) _mm256_maskstore_ps(y + t * y_stride + 8 * h, store, acc[h][t]);
  }
}

template <class Dec, size_t... kTok>
constexpr auto MaddubsRegisterDots(std::index_sequence<kTok...>) {
  return std::array{&MaddubsGroupDot<Dec, kTok + 1, Dec::kPrefetchAhead>...};
}

// Rows [r_begin, r_end) of w (which has row groups; r_begin a multiple of 16 or the matrix's start) times all
// n_tok tokens of a (quantized in tiles of FusedPassTokens(n_tok)); y: [n_tok, n_out].
template <class Dec>
void MaddubsRows(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin, size_t r_end) {
  const size_t n_out = static_cast<size_t>(w.rows());
  const bool one_token_prefetch = OneTokenPrefetchInSoftware();
  ForEachGroupPass(a, n_tok, r_begin, r_end, [&](const ActivationTile& tile, size_t t0, size_t nt, size_t r0,
                                                 size_t n_rows, size_t /*r_next*/) {
    // Up to Dec::kRegisterTokens tokens (decode, and MTP verification of Q4_K and Q6_K) keep their accumulators in
    // registers: in memory, each block's FMA waited on the store of the one before (Q4_0 and Q8_0 lose at 2-4
    // tokens, so they keep theirs in memory there). One token prefetches in software only where the hardware
    // prefetcher does not keep up (OneTokenPrefetch).
    static constexpr auto kInRegisters = MaddubsRegisterDots<Dec>(std::make_index_sequence<Dec::kRegisterTokens>());
    const bool hardware_prefetch = nt == 1 && !one_token_prefetch && Dec::kHardwareFollows;
    const auto dot = nt > Dec::kRegisterTokens ? &MaddubsGroupDot<Dec, 0, Dec::kPrefetchAhead>
                     : hardware_prefetch       ? &MaddubsGroupDot<Dec, 1, false>
                                               : kInRegisters[nt - 1];
    dot(w.row_groups + r0 * w.row_bytes(), tile, a.n_in, nt, y + t0 * n_out + r0, n_out, n_rows);
  });
}

// Up to how many tokens AVX3_DL, and AVX3 where the CPU has VNNI, read row groups with this kernel rather than the
// 16-row 512-bit one of matmul_vnni_decode-inl.h: one token of every type (see MatMulWeights), 2 of Q4_K and up to 4
// of Q6_K, where the 512-bit kernel falls behind (Q6_K to about half the memory's bandwidth: its super-block of
// levels takes 64 vector registers); measured per type and token count on Zen 5 (docs/performance.md).
inline size_t MaddubsOverVnniMaxTokens(Type type) {
  return type == Type::Q4_K ? 2 : type == Type::Q6_K ? 4 : 1;
}

// The entry point for MatMulWeights: MaddubsRows of w's type (Q8_0, Q4_0, Q4_K or Q6_K).
inline void MatMulMaddubsRows(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin,
                              size_t r_end) {
  switch (w.type) {
    case Type::Q8_0: MaddubsRows<MaddubsQ8_0>(w, a, n_tok, y, r_begin, r_end); break;
    case Type::Q4_0: MaddubsRows<MaddubsQ4_0>(w, a, n_tok, y, r_begin, r_end); break;
    case Type::Q4_K: MaddubsRows<MaddubsQ4_K>(w, a, n_tok, y, r_begin, r_end); break;
    default: MaddubsRows<MaddubsQ6_K>(w, a, n_tok, y, r_begin, r_end); break;
  }
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#endif  // toggle guard
