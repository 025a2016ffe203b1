// AVX3_DL, and AVX3 where the CPU has AVX-512 VNNI (Cascade Lake and Cooper Lake, which lack the rest of AVX3_DL):
// the integer matmul, fused, for few tokens (decode, MTP verification: 1..15) and, where there is
// no AMX, for prefill. Decode streams every weight once and is bound by memory bandwidth, so nothing is written
// back to memory and the work per weight byte must stay under what the memory delivers.
//
// 16 weight rows are processed together, one row per int32 lane: the rows' bytes are transposed in registers
// (Transpose16x4: 16 x 16 bytes -> 4 vectors, dword g of row j in lane j), unpacked to unsigned levels u, and
// each token meets them through vpdpbusd with its 4 activation quants broadcast from memory. So a block of 32
// weights x 16 rows costs 8 vpdpbusd + 1 convert + 2 scale ops per token, no horizontal sums, and its unpacking
// (~40 ops) is shared by up to 15 tokens (64 in prefill); 16 rows' outputs are one vector store. The accumulators start at
// -offset * (sum of the activation quants of each group of 16) (Int8Activations::group_biases), so each lane
// ends holding the exact sum of (u - offset) * qx; the f32 scale is d_w * dx; Q4_K's mins add
// -m * (dx * sum of the block's quants) per block.
// What bounds it: memory where the next group is prefetched in the order it will be read (RowGroupDot), then the
// unpacking (transposes, nibble masks, scales: ~60% of a block's compute for one token), then the vpdpbusd work
// per token. On AMD Zen 4 vpgatherdd is microcode, so the scales come from scalar loads (ScaleLoads), and every
// 512-bit op takes both halves of the vector pipes; there the row-group copy (TensorView::row_groups,
// core/row_groups.hpp: scales and pre-transposed levels, one contiguous stream) halves a block's cost. One token
// from row groups goes to the 256-bit vpmaddubsw kernel of matmul_maddubs-inl.h instead, and so do up to 2 / 4
// tokens of Q4_K / Q6_K (MaddubsOverVnniMaxTokens). Figures: docs/performance.md.
// Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_
#undef G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_
#else
#define G4_KERNELS_MATMUL_VNNI_DECODE_INL_H_
#endif

#include <algorithm>
#include <array>
#include <utility>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <hwy/highway.h>

#include "g4/core/row_groups.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/matmul_int8-inl.h"
#include "g4/kernels/cpu_tuning.hpp"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3  // AVX3 and every better x86 target
#include <cpuid.h>
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {

#define G4_VNNI __attribute__((target("avx512vnni")))
// For the lambdas given to ForEachBlock: GCC left the prefill kernel's body out of line (a call per block, the
// levels passed through the stack: 50% slower).
#define G4_VNNI_INLINE __attribute__((target("avx512vnni"), always_inline))

inline constexpr size_t kGroupRows = kRowGroupRows;  // one int32 lane of a 512-bit vector per weight row
inline constexpr size_t kChunk = 4;  // tokens whose vpdpbusd chains are interleaved (8 accumulators)

// 16 weight rows (a group's last rows repeat the tensor's last row when it has fewer; their lanes are not
// stored). `offset` holds each row's byte offset from `base`, for the gathers of per-row scales.
struct RowGroup {
  const std::byte* row[kGroupRows];
  const std::byte* base;
  __m512i offset;
  const std::byte* grouped;  // the group in TensorView::row_groups, or null
};

inline RowGroup MakeRowGroup(const TensorView& w, size_t r0, size_t n_rows) {
  RowGroup g;
  g.base = w.row(static_cast<int64_t>(r0));
  alignas(64) int32_t off[kGroupRows];
  for (size_t j = 0; j < kGroupRows; ++j) {
    const size_t r = std::min(j, n_rows - 1);
    g.row[j] = g.base + r * w.row_bytes();
    off[j] = static_cast<int32_t>(r * w.row_bytes());  // < 16 rows of at most a few MB: fits int32
  }
  g.offset = _mm512_load_si512(off);
  g.grouped = w.row_groups ? w.row_groups + r0 * w.row_bytes() : nullptr;  // r0 is a multiple of 16 there
  return g;
}

// v[k] lane j = dword k of the 16 bytes at row[j] + off.
HWY_INLINE void Transpose16x4(const RowGroup& g, size_t off, __m512i v[4]) {
  __m512i z[4];  // z[a], 128-bit lane l: row 4a + l
#pragma GCC unroll 4
  for (int a = 0; a < 4; ++a) {
    z[a] = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g.row[4 * a] + off)));
    z[a] = _mm512_inserti32x4(z[a], _mm_loadu_si128(reinterpret_cast<const __m128i*>(g.row[4 * a + 1] + off)), 1);
    z[a] = _mm512_inserti32x4(z[a], _mm_loadu_si128(reinterpret_cast<const __m128i*>(g.row[4 * a + 2] + off)), 2);
    z[a] = _mm512_inserti32x4(z[a], _mm_loadu_si128(reinterpret_cast<const __m128i*>(g.row[4 * a + 3] + off)), 3);
  }
  // Rows 0-7 (from z0, z1) and 8-15 (z2, z3): dwords 0 and 1 in the low and high halves, then 2 and 3.
  const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const __m512i a01 = _mm512_permutex2var_epi32(z[0], i01, z[1]), a23 = _mm512_permutex2var_epi32(z[0], i23, z[1]);
  const __m512i b01 = _mm512_permutex2var_epi32(z[2], i01, z[3]), b23 = _mm512_permutex2var_epi32(z[2], i23, z[3]);
  v[0] = _mm512_shuffle_i64x2(a01, b01, _MM_SHUFFLE(1, 0, 1, 0));
  v[1] = _mm512_shuffle_i64x2(a01, b01, _MM_SHUFFLE(3, 2, 3, 2));
  v[2] = _mm512_shuffle_i64x2(a23, b23, _MM_SHUFFLE(1, 0, 1, 0));
  v[3] = _mm512_shuffle_i64x2(a23, b23, _MM_SHUFFLE(3, 2, 3, 2));
}

// v[k] lane j = dword k of the 16 bytes at row j + off: transposed in registers, or (kGrouped) loaded from the
// row-group copy, which stores those 4 vectors at grouped + 16 * off (core/row_groups.hpp).
template <bool kGrouped>
HWY_INLINE void RowDwords(const RowGroup& g, size_t off, __m512i v[4]) {
  if constexpr (kGrouped) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) v[k] = _mm512_loadu_si512(g.grouped + kGroupRows * off + 64 * k);
  } else {
    Transpose16x4(g, off, v);
  }
}

// The f16 in the low (kHigh: high) half of the dword at each row's byte `off`, as f32: one vpgatherdd
// (kGather), or 16 scalar loads that GCC merges with vpinsrw (where gathers are microcode: see ScaleLoads).
template <bool kGather, bool kHigh = false>
HWY_INLINE __m512 LoadHalves(const RowGroup& g, size_t off) {
  if constexpr (kGather) {
    __m512i d = _mm512_i32gather_epi32(g.offset, g.base + off, 1);
    if constexpr (kHigh) d = _mm512_srli_epi32(d, 16);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
  } else {
    alignas(32) uint16_t d[kGroupRows];
#pragma GCC unroll 16
    for (size_t j = 0; j < kGroupRows; ++j) std::memcpy(&d[j], g.row[j] + off + (kHigh ? 2 : 0), 2);
    return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d)));
  }
}

// The 16 rows' f16 at byte `off` of their block, as f32, from the row-group copy (16 halves at grouped + 16 * off).
HWY_INLINE __m512 GroupedHalves(const RowGroup& g, size_t off) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.grouped + kGroupRows * off)));
}

// acc + per int32 lane the dot of u's 4 unsigned bytes with the 4 signed bytes at q: vpdpbusd with an embedded
// broadcast of q ({1to16} in 512 bits, {1to8} in 256; matmul_maddubs-inl.h takes the 256-bit one). Why asm: GCC 12 does
// not fold _mm512_set1_epi32(load) into that operand and emits a separate vpbroadcastd per vpdpbusd; and under Highway
// 1.0.3's AVX3_DL attributes, which enable AVX-VNNI rather than AVX512-VNNI, _mm256_dpbusd_epi32 is the VEX form, which
// Zen 4 lacks (SIGILL). The broadcast makes it EVEX. No target attribute: asm needs none, and the 256-bit callers lack
// avx512vnni (an always-inline callee may not have more target options than its caller).
template <class V>
HWY_INLINE V DotBroadcast(V acc, V u, const int8_t* q) {
  static_assert(sizeof(V) == 64 || sizeof(V) == 32);
  if constexpr (sizeof(V) == 64) {
    asm("vpdpbusd %[q]%{1to16%}, %[u], %[acc]" : [acc] "+v"(acc) : [u] "v"(u), [q] "m"(*reinterpret_cast<const int32_t*>(q)));
  } else {
    asm("vpdpbusd %[q]%{1to8%}, %[u], %[acc]" : [acc] "+v"(acc) : [u] "v"(u), [q] "m"(*reinterpret_cast<const int32_t*>(q)));
  }
  return acc;
}

HWY_INLINE __m512i Bytes(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }

// Decoders, each reading a super-block of kBlocks blocks of 32 values (at byte `off` of every row) in two
// stages, so that only kPartBlocks blocks' levels are live at once. Q4_K in parts of 2 blocks: unpacking its
// whole super-block first spilled 64 level vectors to the stack.
//   ReadHeader(g, off): what the blocks' scales (and Q4_K's mins) are computed from;
//   Levels(g, off, part, u): u[i][j] holds values 4j..4j+3 of each row of block Block(part, i), as unsigned
//     levels; parts run over [0, kBlocks / kPartBlocks);
//   Scale(h, k, half): block k's f32 scale (kScalePer16: that of its values 16 half..16 half + 15);
//   Min(h, k) (kHasMin): dmin * m of block k.

// Q8_0 and Q4_0: super-blocks of one block, whose f16 scale d every row holds at the same offset, or which the
// row-group copy (kGroupedLayout) stores as 16 scales: byte o of every row's block maps to grouped + 16 * o.
template <class BlockT, bool kGather, bool kGroupedLayout = false>
struct OneScaleBlock {
  static constexpr size_t kBlocks = 1, kPartBlocks = 1, kBytes = sizeof(BlockT);
  static constexpr bool kHasMin = false, kScalePer16 = false, kGrouped = kGroupedLayout;
  struct Header {
    __m512 d;
  };
  static HWY_INLINE Header ReadHeader(const RowGroup& g, size_t off) {
    if constexpr (kGroupedLayout) return {GroupedHalves(g, off + offsetof(BlockT, d))};
    else return {LoadHalves<kGather>(g, off + offsetof(BlockT, d))};
  }
  static constexpr size_t Block(size_t part, size_t /*i*/) { return part; }
  static HWY_INLINE __m512 Scale(const Header& h, size_t /*k*/, int /*half*/) { return h.d; }
  static HWY_INLINE __m512 Min(const Header&, size_t) { return _mm512_setzero_ps(); }
};

template <bool kGather, bool kGrouped = false>
struct DecodeQ8_0 : OneScaleBlock<BlockQ8_0, kGather, kGrouped> {
  using OneScaleBlock<BlockQ8_0, kGather, kGrouped>::kPartBlocks;
  static HWY_INLINE void Levels(const RowGroup& g, size_t off, size_t /*part*/, __m512i u[kPartBlocks][8]) {
    RowDwords<kGrouped>(g, off + offsetof(BlockQ8_0, qs), u[0]);
    RowDwords<kGrouped>(g, off + offsetof(BlockQ8_0, qs) + 16, u[0] + 4);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) u[0][k] = _mm512_xor_si512(u[0][k], Bytes(0x80));  // q + 128
  }
};

template <bool kGather, bool kGrouped = false>
struct DecodeQ4_0 : OneScaleBlock<BlockQ4_0, kGather, kGrouped> {
  using OneScaleBlock<BlockQ4_0, kGather, kGrouped>::kPartBlocks;
  static HWY_INLINE void Levels(const RowGroup& g, size_t off, size_t /*part*/, __m512i u[kPartBlocks][8]) {
    __m512i v[4];
    RowDwords<kGrouped>(g, off + offsetof(BlockQ4_0, qs), v);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {  // low nibbles: values 0..15, high nibbles: 16..31
      u[0][k] = _mm512_and_si512(v[k], Bytes(0x0F));
      u[0][4 + k] = _mm512_and_si512(_mm512_srli_epi32(v[k], 4), Bytes(0x0F));
    }
  }
};

// The f32 value of byte i of every lane of v.
HWY_INLINE __m512 ByteToFloat(__m512i v, size_t i) {
  return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xFF)));
}

template <bool kGroupedLayout = false>
struct DecodeQ4_K {
  static constexpr size_t kBlocks = 8, kPartBlocks = 2, kBytes = sizeof(BlockQ4_K);
  static constexpr bool kHasMin = true, kScalePer16 = false, kGrouped = kGroupedLayout;
  // 8 scale bytes (sc0, sc1) and 8 min bytes (m0, m1) per row, unpacked from the 12 bytes of 6-bit pairs.
  struct Header {
    __m512i sc0, sc1, m0, m1;
    __m512 d, dmin;
  };
  static HWY_INLINE Header ReadHeader(const RowGroup& g, size_t off) {
    static_assert(offsetof(BlockQ4_K, dmin) == 2 && offsetof(BlockQ4_K, scales) == 4 &&
                  offsetof(BlockQ4_K, qs) == 16);
    // The 16-byte header of every row: d | dmin, then the 12 bytes of (scale, min) pairs, unpacked with
    // ggml's kmask steps, 16 rows at once.
    __m512i v[4];
    RowDwords<kGrouped>(g, off, v);
    const __m512i kmask1 = _mm512_set1_epi32(0x3f3f3f3f), kmask2 = _mm512_set1_epi32(0x0f0f0f0f),
                  kmask3 = _mm512_set1_epi32(0x03030303);
    Header h;
    h.sc0 = _mm512_and_si512(v[1], kmask1);
    h.sc1 = _mm512_or_si512(_mm512_and_si512(v[3], kmask2),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(v[1], 6), kmask3), 4));
    h.m0 = _mm512_and_si512(v[2], kmask1);
    h.m1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v[3], 4), kmask2),
                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(v[2], 6), kmask3), 4));
    h.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v[0]));
    h.dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v[0], 16)));
    return h;
  }
  static constexpr size_t Block(size_t part, size_t i) { return 2 * part + i; }
  // 32 bytes of qs per part: low nibbles are block 2 part, high nibbles block 2 part + 1.
  static HWY_INLINE void Levels(const RowGroup& g, size_t off, size_t part, __m512i u[kPartBlocks][8]) {
    __m512i v[8];
    RowDwords<kGrouped>(g, off + offsetof(BlockQ4_K, qs) + 32 * part, v);
    RowDwords<kGrouped>(g, off + offsetof(BlockQ4_K, qs) + 32 * part + 16, v + 4);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      u[0][k] = _mm512_and_si512(v[k], Bytes(0x0F));
      u[1][k] = _mm512_and_si512(_mm512_srli_epi32(v[k], 4), Bytes(0x0F));
    }
  }
  static HWY_INLINE __m512 Scale(const Header& h, size_t k, int /*half*/) {
    return _mm512_mul_ps(ByteToFloat(k < 4 ? h.sc0 : h.sc1, k % 4), h.d);
  }
  static HWY_INLINE __m512 Min(const Header& h, size_t k) {
    return _mm512_mul_ps(ByteToFloat(k < 4 ? h.m0 : h.m1, k % 4), h.dmin);
  }
};

template <bool kGather, bool kGroupedLayout = false>
struct DecodeQ6_K {
  static constexpr size_t kBlocks = 8, kPartBlocks = 8, kBytes = sizeof(BlockQ6_K);
  static constexpr bool kHasMin = false, kScalePer16 = true, kGrouped = kGroupedLayout;
  struct Header {
    __m512i sc[4];  // 16 signed scale bytes per row, one per 16 values
    __m512 d;
  };
  // Byte o of the block: in the row-group copy, where RowGroupOffset puts it.
  static constexpr size_t At(size_t o) { return kGrouped ? RowGroupOffset(Type::Q6_K, o) : o; }
  static HWY_INLINE Header ReadHeader(const RowGroup& g, size_t off) {
    static_assert(offsetof(BlockQ6_K, d) == 208);
    Header h;
    // d is the last field: gathered as the high half of the dword before it, so no lane reads past the block.
    if constexpr (kGrouped) h.d = GroupedHalves(g, off + At(offsetof(BlockQ6_K, d)));
    else h.d = LoadHalves<kGather, true>(g, off + offsetof(BlockQ6_K, d) - 2);
    RowDwords<kGrouped>(g, off + At(offsetof(BlockQ6_K, scales)), h.sc);
    return h;
  }
  // One part: the whole super-block. Each half h (blocks 4h..4h+3) is 64 bytes of low bits (ql) and 32 of
  // high bits (qh). Smaller parts measured slower: each would transpose qh again.
  static constexpr size_t Block(size_t /*part*/, size_t i) { return i; }
  static HWY_INLINE void Levels(const RowGroup& g, size_t off, size_t /*part*/, __m512i u[kPartBlocks][8]) {
    for (size_t half = 0; half < 2; ++half) {
      __m512i lo[8], hi[8], top[8];
      const size_t ql = off + At(offsetof(BlockQ6_K, ql) + 64 * half), qh = off + At(offsetof(BlockQ6_K, qh) + 32 * half);
      RowDwords<kGrouped>(g, ql, lo);
      RowDwords<kGrouped>(g, ql + 16, lo + 4);
      RowDwords<kGrouped>(g, ql + 32, hi);
      RowDwords<kGrouped>(g, ql + 48, hi + 4);
      RowDwords<kGrouped>(g, qh, top);
      RowDwords<kGrouped>(g, qh + 16, top + 4);
      const __m512i lo4 = Bytes(0x0F), bits45 = Bytes(0x30);
      auto join = [&](__m512i low4, __m512i high2) {  // 4 low bits, and 2 high bits already moved to bits 4, 5
        return _mm512_or_si512(_mm512_and_si512(low4, lo4), _mm512_and_si512(high2, bits45));
      };
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m512i t = top[k];
        u[4 * half + 0][k] = join(lo[k], _mm512_slli_epi32(t, 4));
        u[4 * half + 1][k] = join(hi[k], _mm512_slli_epi32(t, 2));
        u[4 * half + 2][k] = join(_mm512_srli_epi32(lo[k], 4), t);
        u[4 * half + 3][k] = join(_mm512_srli_epi32(hi[k], 4), _mm512_srli_epi32(t, 2));
      }
    }
  }
  static HWY_INLINE __m512 Scale(const Header& h, size_t k, int half) {
    const size_t i = 2 * k + static_cast<size_t>(half);
    const __m512i s = _mm512_srai_epi32(_mm512_slli_epi32(h.sc[i / 4], static_cast<int>(24 - 8 * (i % 4))), 24);
    return _mm512_mul_ps(_mm512_cvtepi32_ps(s), h.d);
  }
  static HWY_INLINE __m512 Min(const Header&, size_t) { return _mm512_setzero_ps(); }
};

// Block k's scales for the 16 rows (scale1: Q6_K's second half; min: Q4_K's dmin * m).
struct BlockScales {
  __m512 scale0, scale1, min;
};

// acc[c] += block b (levels u, 16 rows) times the tile's token c0 + c, for c < n <= kN. The kN tokens' vpdpbusd are
// interleaved: one token's 4-deep chains alone stall on vpdpbusd's latency (5 cycles), 2 kChunk chains keep
// both vector ports busy.
template <class Dec, size_t kN>
G4_VNNI HWY_INLINE void AccumulateBlock(const __m512i* u, const BlockScales& s, const ActivationTile& a, size_t c0,
                                        size_t n, size_t b, __m512* acc) {
  const size_t k0 = b * a.tile + c0;  // the block's number for token c0
  __m512i lo[kN], hi[kN];  // two chains per token (values 0..15 and 16..31): Q6_K's scale per 16 values
#pragma GCC unroll 4
  for (size_t c = 0; c < kN && c < n; ++c) {
    const int32_t* bias = a.bias + 2 * (k0 + c);
    lo[c] = _mm512_set1_epi32(bias[0]);
    hi[c] = _mm512_set1_epi32(bias[1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
    for (size_t c = 0; c < kN && c < n; ++c) {
      const int8_t* q = a.q + 32 * (k0 + c);
      lo[c] = DotBroadcast(lo[c], u[i], q + 4 * i);
      hi[c] = DotBroadcast(hi[c], u[4 + i], q + 16 + 4 * i);
    }
#pragma GCC unroll 4
  for (size_t c = 0; c < kN && c < n; ++c) {
    const __m512 dx = _mm512_set1_ps(a.scale[k0 + c]);
    if constexpr (Dec::kScalePer16) {  // dx applied once to both halves: 3 mul/FMA instead of 4
      const __m512 sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[c]), s.scale0,
                                         _mm512_mul_ps(_mm512_cvtepi32_ps(hi[c]), s.scale1));
      acc[c] = _mm512_fmadd_ps(sum, dx, acc[c]);
    } else {
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo[c], hi[c])), _mm512_mul_ps(s.scale0, dx),
                               acc[c]);
    }
    if constexpr (Dec::kHasMin) acc[c] = _mm512_fnmadd_ps(s.min, _mm512_set1_ps(a.sum[k0 + c]), acc[c]);
  }
}

// body(u, scales, b) for every block b of g's 16 rows, in order, each block's levels u unpacked once.
// `next` is the group that follows (g itself for the last one). While g's super-block sb is computed, the same
// super-block of next's 16 rows is prefetched into L2: the prefetches run in the order the next group will be
// read, one group (~3 us) ahead. Prefetching the next group's bytes in address order instead (row after row)
// left its last rows' first blocks arriving just as they were needed. Redundant prefetches (16 per super-block
// where Q4_0 starts ~4.5 new
// lines) cost only load-port slots, which the kernel leaves idle. From row groups, one contiguous stream, the
// prefetches run kRowGroupPrefetchDistance ahead of it instead (`next` is then unused).
template <class Dec, class Body>
G4_VNNI HWY_INLINE void ForEachBlock(const RowGroup& g, const RowGroup& next, size_t n_in, const Body& body) {
  const size_t n_super = n_in / (32 * Dec::kBlocks);
  for (size_t sb = 0; sb < n_super; ++sb) {
    const size_t off = sb * Dec::kBytes;
    const typename Dec::Header h = Dec::ReadHeader(g, off);
#pragma GCC unroll 4
    for (size_t part = 0; part < Dec::kBlocks / Dec::kPartBlocks; ++part) {
      __m512i levels[Dec::kPartBlocks][8];
      Dec::Levels(g, off, part, levels);
#pragma GCC unroll 8
      for (size_t blk = 0; blk < Dec::kPartBlocks; ++blk) {
        const size_t k = Dec::Block(part, blk);
        // Lines off + 64 l of the next group's 16 rows cover every line holding part of [off, off + kBytes)
        // (steps of 64 miss none). Line l is prefetched with block l * kBlocks / kLines, spreading a K-quant
        // super-block's 48 or 64 prefetches over its 8 blocks: issued all at once, they stalled the loads of
        // the current group.
        // From the row-group copy, kRowGroupPrefetchDistance ahead of the stream (one super-block is 16 x kBytes
        // contiguous bytes) instead of the next group's super-block.
        // Block k's lines: those with line * kBlocks / kLines == k.
        constexpr size_t kLines = ((Dec::kGrouped ? kGroupRows : 1) * Dec::kBytes + 63) / 64;
        const size_t first = (k * kLines + Dec::kBlocks - 1) / Dec::kBlocks;
        const size_t last = ((k + 1) * kLines + Dec::kBlocks - 1) / Dec::kBlocks;
#pragma GCC unroll 16
        for (size_t line = first; line < last; ++line) {
          if constexpr (Dec::kGrouped) {
            _mm_prefetch(reinterpret_cast<const char*>(g.grouped + kRowGroupPrefetchDistance + kGroupRows * off + 64 * line),
                         _MM_HINT_T1);
          } else {
#pragma GCC unroll 16
            for (size_t j = 0; j < kGroupRows; ++j)
              _mm_prefetch(reinterpret_cast<const char*>(next.row[j] + off + 64 * line), _MM_HINT_T1);
          }
        }
        body(levels[blk], BlockScales{Dec::Scale(h, k, 0), Dec::Scale(h, k, 1), Dec::Min(h, k)},
             sb * Dec::kBlocks + k);
      }
    }
  }
}

// 16 rows times the kTok tokens of `a` from tok0, accumulated in registers: y[t * y_stride + j] for the rows j
// set in `store`.
template <class Dec, size_t kTok>
G4_VNNI HWY_NOINLINE void RowGroupDot(const RowGroup& g, const RowGroup& next, const ActivationTile& a, size_t n_in,
                                      float* y, size_t y_stride, __mmask16 store) {
  __m512 acc[kTok];
#pragma GCC unroll 16
  for (size_t t = 0; t < kTok; ++t) acc[t] = _mm512_setzero_ps();
  ForEachBlock<Dec>(g, next, n_in, [&](const __m512i* u, const BlockScales& s, size_t b) G4_VNNI_INLINE {
    constexpr size_t kN = std::min(kTok, kChunk);  // no registers for tokens that are not there
#pragma GCC unroll 16
    for (size_t c0 = 0; c0 < kTok; c0 += kChunk) AccumulateBlock<Dec, kN>(u, s, a, c0, kTok - c0, b, acc + c0);
  });
#pragma GCC unroll 16
  for (size_t t = 0; t < kTok; ++t) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
}

template <class Dec, size_t... kTok>
constexpr auto RowGroupDots(std::index_sequence<kTok...>) {
  return std::array{&RowGroupDot<Dec, kTok + 1>...};
}

// The same for n_tok <= kPrefillTokens tokens (prefill without AMX), accumulated in memory (L1): each block's
// unpacking (~40 vector ops) is then shared by all of them instead of 15, and the accumulators' load and store
// take load/store ports, which the vpdpbusd leave idle (passes of 32 tokens measured slower).
// The rest is the vector pipes: 8 vpdpbusd and 3 f32 ops per token and block, each a cycle for 512 bits.

template <class Dec>
G4_VNNI HWY_NOINLINE void RowGroupDotPrefill(const RowGroup& g, const RowGroup& next, const ActivationTile& a,
                                             size_t n_in, size_t n_tok, float* y, size_t y_stride, __mmask16 store) {
  __m512 acc[kPrefillTokens];
  for (size_t t = 0; t < n_tok; ++t) acc[t] = _mm512_setzero_ps();
  ForEachBlock<Dec>(g, next, n_in, [&](const __m512i* u, const BlockScales& s, size_t b) G4_VNNI_INLINE {
    size_t t = 0;
    for (; t + kChunk <= n_tok; t += kChunk) AccumulateBlock<Dec, kChunk>(u, s, a, t, kChunk, b, acc + t);
    static_assert(kChunk == 4);
    switch (n_tok - t) {
      case 3: AccumulateBlock<Dec, 3>(u, s, a, t, 3, b, acc + t); break;
      case 2: AccumulateBlock<Dec, 2>(u, s, a, t, 2, b, acc + t); break;
      case 1: AccumulateBlock<Dec, 1>(u, s, a, t, 1, b, acc + t); break;
      default: break;
    }
  });
  for (size_t t = 0; t < n_tok; ++t) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
}

// Rows [r_begin, r_end) (r_begin a multiple of 16 or the tensor's start) times all n_tok tokens; y: [n_tok,
// n_out]. Up to kFusedMaxTokens tokens in registers, one pass over the rows; more in passes of kPrefillTokens
// (ForEachGroupPass). Per token and block this costs 8 vpdpbusd and 3-4 f32 ops, where the unpacked-panel kernel
// spent 3 f32 ops per vpdpbusd (prefill 2.6x faster).
template <class Dec>
void FusedRows(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin, size_t r_end) {
  static constexpr auto kDot = RowGroupDots<Dec>(std::make_index_sequence<kFusedMaxTokens>());
  const size_t n_out = static_cast<size_t>(w.rows());
  RowGroup g, next;
  size_t next_r0 = r_end;  // the group `next` holds (none yet): a group's successor becomes the next call's group
  ForEachGroupPass(a, n_tok, r_begin, r_end, [&](const ActivationTile& tile, size_t t0, size_t nt, size_t r0,
                                                 size_t n_rows, size_t r_next) {
    g = r0 == next_r0 ? next : MakeRowGroup(w, r0, n_rows);
    next = r_next == r0 ? g : MakeRowGroup(w, r_next, std::min(kGroupRows, r_end - r_next));
    next_r0 = r_next;
    const auto store = static_cast<__mmask16>((1u << n_rows) - 1);
    float* const yg = y + t0 * n_out + r0;
    if (n_tok <= kFusedMaxTokens) {
      kDot[nt - 1](g, next, tile, a.n_in, yg, n_out, store);
    } else {
      RowGroupDotPrefill<Dec>(g, next, tile, a.n_in, nt, yg, n_out, store);
    }
  });
}

// kGrouped: w.row_groups is set (the scales then come with the levels, so kGather is moot).
template <bool kGather, bool kGrouped>
void MatMulFusedRowsWith(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin,
                         size_t r_end) {
  switch (w.type) {
    case Type::Q8_0: FusedRows<DecodeQ8_0<kGather, kGrouped>>(w, a, n_tok, y, r_begin, r_end); break;
    case Type::Q4_0: FusedRows<DecodeQ4_0<kGather, kGrouped>>(w, a, n_tok, y, r_begin, r_end); break;
    case Type::Q4_K: FusedRows<DecodeQ4_K<kGrouped>>(w, a, n_tok, y, r_begin, r_end); break;
    default: FusedRows<DecodeQ6_K<kGather, kGrouped>>(w, a, n_tok, y, r_begin, r_end); break;
  }
}

// Whether these kernels can run: always on AVX3_DL; on AVX3 where CPUID has AVX512_VNNI (leaf 7, ECX bit 11).
inline bool VnniKernelsUsable() {
#if HWY_TARGET <= HWY_AVX3_DL
  return true;
#else
  static const bool vnni = [] {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && ((ecx >> 11) & 1);
  }();
  return vnni;
#endif
}

inline void MatMulFusedRows(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin,
                            size_t r_end) {
#if HWY_TARGET == HWY_AVX3  // reads row groups only (see MatMulWeights): nothing else is compiled for it
  MatMulFusedRowsWith<false, true>(w, a, n_tok, y, r_begin, r_end);
#else
  const ScaleLoads how = detail::scale_loads.load(std::memory_order_relaxed);
  if (w.row_groups) {
    MatMulFusedRowsWith<false, true>(w, a, n_tok, y, r_begin, r_end);
  } else if (how == ScaleLoads::kGather || (how == ScaleLoads::kAuto && AmdCpuFamily() == 0)) {
    MatMulFusedRowsWith<true, false>(w, a, n_tok, y, r_begin, r_end);
  } else {
    MatMulFusedRowsWith<false, false>(w, a, n_tok, y, r_begin, r_end);
  }
#endif
}

#undef G4_VNNI
#undef G4_VNNI_INLINE

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#endif  // toggle guard
