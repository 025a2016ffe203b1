// Per-target integer matmul for block-quantized weights (Q8_0, Q4_0, Q4_K, Q6_K), as ggml does it: the
// activations are quantized on the fly to int8 blocks of 32 (one f32 scale each), the weights are unpacked to
// unsigned 8-bit levels, and each 4-byte group becomes one int32 lane of u8 x s8 dot products, which is
// exact. Only the per-block scales are applied in f32.
//
// Every format decodes as w = s * u - k with an unsigned level u (0..255) per value, a scale s per 16 or 32
// values and an offset k per 16 values (Q8_0: u = q + 128, k = 128 d; Q4_0: u = nibble, k = 8 d; Q4_K:
// k = dmin * m; Q6_K: k = 32 s). With x ~ dx * qx:
//   sum_i w_i x_i = sum_lanes s dx (sum of 4 u * qx) - sum_groups k * (dx * sum of 16 qx)
// so the offsets cost one f32 dot over n_in / 16 values per output, and the levels stay unsigned, which is
// the operand order of VNNI's vpdpbusd. The lane sums here use widening Highway ops; AVX3_DL takes the fused
// kernels of matmul_vnni_decode-inl.h for any number of tokens instead (or AMX from 16 tokens).
//
// Error: the activation rounding adds at most sum_i |w_i| dx_i / 2 to the f32 error of the sums above.
// Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_MATMUL_INT8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_MATMUL_INT8_INL_H_
#undef G4_KERNELS_MATMUL_INT8_INL_H_
#else
#define G4_KERNELS_MATMUL_INT8_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <hwy/highway.h>

#include "g4/core/dequantize.hpp"
#include "g4/core/row_groups.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/dot-inl.h"

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- activations: int8 blocks of 32 ---------------------------------------------------------------------

// The unsigned level u of a weight is its signed level plus this offset (see the top of the file).
inline int LevelOffset(Type type) {
  switch (type) {
    case Type::Q8_0: return 128;
    case Type::Q4_0: return 8;
    case Type::Q6_K: return 32;
    default: return 0;  // Q4_K: levels 0..15 with a separate min
  }
}

// The int8 activations, with per-group sums for the unpacked-panel kernels' offsets and per-block scales, sums
// and biases for all kernels (the fused ones of matmul_vnni_decode-inl.h fold the biases into their lanes).
// Tokens are stored in tiles of `tile` tokens, each tile block-major: block b (32 values) of token t is block
// number Block(t, b) of every array. tile = 1 is row-major, which the portable kernel and the AMX packer read.
// The fused kernels take tiles of the tokens they process together (up to 15 in decode, 64 in a prefill pass), so
// that a block of all of them is one contiguous run: row-major, a 64-token pass read one block from each of 64
// rows in turn, 64 streams no prefetcher follows and, with rows of a power-of-two length, one L1 set.
// One tile's arrays (what the fused kernels take): block b of the tile's token c is number b * tile + c of each.
struct ActivationTile {
  const int8_t* q;
  const float *scale, *sum;
  const int32_t* bias;
  size_t tile;
};

struct Int8Activations {
  size_t n_in = 0, n_blocks = 0, tile = 1;
  std::vector<int8_t> q;              // 32 per block
  std::vector<float> group_sum;       // 2 per block: dx * (sum of the 16 quants of each half)
  std::vector<float> block_scales;    // 1 per block: dx
  std::vector<float> block_sums;      // 1 per block: dx * (sum of the 32 quants)
  std::vector<int32_t> group_biases;  // 2 per block: -offset * (sum of the 16 quants of each half)
  size_t Block(size_t t, size_t b) const { return (t / tile * n_blocks + b) * tile + t % tile; }
  // The tile that starts at token t0 (a multiple of tile).
  ActivationTile TileAt(size_t t0) const {
    const size_t k = Block(t0, 0);
    return {q.data() + 32 * k, block_scales.data() + k, block_sums.data() + k, group_biases.data() + 2 * k, tile};
  }
  // Row-major reads (tile 1): token t's whole row.
  const int8_t* q_row(size_t t) const { return q.data() + 32 * Block(t, 0); }
  const float* sums(size_t t) const { return group_sum.data() + 2 * Block(t, 0); }
  const float* block_scale(size_t t) const { return block_scales.data() + Block(t, 0); }
};

// x: [n_tok, n_in], n_in a multiple of 32. dx = amax / 127, q = round-half-even(x / dx). `offset`: the level
// offset of the weight type (LevelOffset), folded into group_biases. `tile`: see Int8Activations.
inline void QuantizeActivations(const float* x, size_t n_tok, size_t n_in, int offset, size_t tile,
                                Int8Activations& a, ThreadPool& pool) {
  a.n_in = n_in;
  a.n_blocks = n_in / 32;
  a.tile = tile;
  const size_t n_blocks = a.n_blocks * (n_tok + tile - 1) / tile * tile;  // the last tile's unused tokens included
  a.q.resize(32 * n_blocks);
  a.group_sum.resize(2 * n_blocks);
  a.block_scales.resize(n_blocks);
  a.block_sums.resize(n_blocks);
  a.group_biases.resize(2 * n_blocks);
  const hn::CappedTag<float, 16> df;  // at most one group of 16 per vector
  const hn::Rebind<int32_t, decltype(df)> di;
  const size_t N = hn::Lanes(df);
  // The arrays through local pointers: the int8 stores may alias anything, so pointers read through `a` would
  // be reloaded after each of them.
  int8_t* const q = a.q.data();
  float* const group_sum = a.group_sum.data();
  float *const block_scales = a.block_scales.data(), *const block_sums = a.block_sums.data();
  int32_t* const group_biases = a.group_biases.data();
  pool.ParallelFor(n_tok, 16, [&](size_t t_begin, size_t t_end, size_t) {
    for (size_t t = t_begin; t < t_end; ++t) {
      const size_t block0 = a.Block(t, 0);  // block b of token t is block0 + b * tile
      for (size_t b = 0; b < n_in / 32; ++b) {
        const float* xb = x + t * n_in + b * 32;
        auto vmax = hn::Zero(df);
        for (size_t j = 0; j < 32; j += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + j)));
        const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
        const float dx = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        // |x * inv| <= 127 (+ rounding), so the nearest integers fit int8 and DemoteTo never saturates.
        // The sums of each 16 quants come from the vectors themselves (SumOfLanes), not from scalar code over
        // stored int32 (a fifth of a small matmul's time).
        const size_t block = block0 + b * tile;
        int8_t* qb = q + 32 * block;
        int32_t sum16[2] = {0, 0};
        for (size_t j = 0; j < 32; j += N) {
          const auto vi = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + j), hn::Set(df, inv)));
          hn::StoreU(hn::DemoteTo(hn::Rebind<int8_t, decltype(di)>(), vi), hn::Rebind<int8_t, decltype(di)>(), qb + j);
          sum16[j / 16] += hn::GetLane(hn::SumOfLanes(di, vi));  // N <= 16 lanes never straddle two groups
        }
        for (int h = 0; h < 2; ++h) {
          group_sum[2 * block + h] = dx * static_cast<float>(sum16[h]);
          group_biases[2 * block + h] = -offset * sum16[h];
        }
        block_scales[block] = dx;
        block_sums[block] = dx * static_cast<float>(sum16[0] + sum16[1]);
      }
    }
  });
}

// ---- the fused kernels' passes (matmul_vnni_decode-inl.h, matmul_maddubs-inl.h) --------------------------

// Those kernels read weights in 16-row groups and meet every token of a pass with each block while it is in
// registers. Up to kFusedMaxTokens tokens (decode, MTP verification) are one pass; more (prefill) go in passes of
// kPrefillTokens, each streaming the rows again: for the 12B's [15360 x 3840] Q4_0 that is 33 MB per 64 tokens.
// 15: the VNNI kernels' accumulators of 15 tokens + a block's 8 level vectors fill the 32 registers.
inline constexpr size_t kFusedMaxTokens = 15;
inline constexpr size_t kPrefillTokens = 64;  // their activations (240 KB for the 12B's 3840) stay in L2

// The tokens of one pass: the tile the Int8Activations of a fused kernel must have.
inline size_t FusedPassTokens(size_t n_tok) { return n_tok <= kFusedMaxTokens ? n_tok : kPrefillTokens; }

// body(tile, t0, nt, r0, n_rows, r_next) for each pass (tokens [t0, t0 + nt) of a, quantized in tiles of
// FusedPassTokens(n_tok)) and each group of 16 rows [r0, r0 + n_rows) in [r_begin, r_end) (r_begin a multiple of
// 16 or the matrix's start); r_next is the group after it (whose bytes the kernel prefetches), r0 for the last.
template <class Body>
HWY_INLINE void ForEachGroupPass(const Int8Activations& a, size_t n_tok, size_t r_begin, size_t r_end,
                                 const Body& body) {
  for (size_t t0 = 0; t0 < n_tok; t0 += a.tile) {
    const ActivationTile tile = a.TileAt(t0);
    for (size_t r0 = r_begin; r0 < r_end; r0 += kRowGroupRows) {
      const size_t r_next = r0 + kRowGroupRows < r_end ? r0 + kRowGroupRows : r0;
      body(tile, t0, std::min(a.tile, n_tok - t0), r0, std::min(kRowGroupRows, r_end - r0), r_next);
    }
  }
}

// ---- weights: unpacked rows ----------------------------------------------------------------------------

// One unpacked weight row: levels, per-lane scale, per-group offset (see the top of the file).
struct Int8RowView {
  uint8_t* u;            // [n_in]
  float* lane_scale;     // [n_in / 4]
  float* group_offset;   // [n_in / 16]
};

inline float HalfAt(const std::byte* p) {
  f16 h;
  std::memcpy(&h, p, sizeof h);
  return F16ToF32(h);
}

using D8 = hn::CappedTag<uint8_t, 16>;

// dst[i] = src[i] & 15 and dst[i + n] = src[i] >> 4 for i < n (n a multiple of 16): ggml's nibble order.
HWY_INLINE void SplitNibbles(const uint8_t* src, size_t n, uint8_t* dst) {
  const D8 d;
  for (size_t i = 0; i < n; i += hn::Lanes(d)) {
    const auto v = hn::LoadU(d, src + i);
    hn::StoreU(hn::And(v, hn::Set(d, 0x0F)), d, dst + i);
    hn::StoreU(hn::ShiftRight<4>(v), d, dst + n + i);
  }
}

inline void UnpackQ8_0(const std::byte* row, size_t n_in, const Int8RowView& out) {
  const D8 d;
  for (size_t b = 0; b < n_in / kQK8_0; ++b) {
    const std::byte* blk = row + b * sizeof(BlockQ8_0);
    const float scale = HalfAt(blk);
    const uint8_t* qs = reinterpret_cast<const uint8_t*>(blk + offsetof(BlockQ8_0, qs));
    for (size_t i = 0; i < kQK8_0; i += hn::Lanes(d))
      hn::StoreU(hn::Xor(hn::LoadU(d, qs + i), hn::Set(d, 0x80)), d, out.u + b * 32 + i);  // q + 128
    std::fill_n(out.lane_scale + b * 8, 8, scale);
    std::fill_n(out.group_offset + b * 2, 2, 128.0f * scale);
  }
}

inline void UnpackQ4_0(const std::byte* row, size_t n_in, const Int8RowView& out) {
  for (size_t b = 0; b < n_in / kQK4_0; ++b) {
    const std::byte* blk = row + b * sizeof(BlockQ4_0);
    const float scale = HalfAt(blk);
    SplitNibbles(reinterpret_cast<const uint8_t*>(blk + offsetof(BlockQ4_0, qs)), 16, out.u + b * 32);
    std::fill_n(out.lane_scale + b * 8, 8, scale);
    std::fill_n(out.group_offset + b * 2, 2, 8.0f * scale);
  }
}

inline void UnpackQ4_K(const std::byte* row, size_t n_in, const Int8RowView& out) {
  for (size_t b = 0; b < n_in / kQK_K; ++b) {
    const std::byte* blk = row + b * sizeof(BlockQ4_K);
    const float d = HalfAt(blk + offsetof(BlockQ4_K, d)), dmin = HalfAt(blk + offsetof(BlockQ4_K, dmin));
    uint8_t scales[12];
    std::memcpy(scales, blk + offsetof(BlockQ4_K, scales), sizeof scales);
    const uint8_t* qs = reinterpret_cast<const uint8_t*>(blk + offsetof(BlockQ4_K, qs));
    for (int pair = 0; pair < 4; ++pair) SplitNibbles(qs + 32 * pair, 32, out.u + b * kQK_K + 64 * pair);
    for (int j = 0; j < 8; ++j) {  // sub-blocks of 32
      uint8_t sc, m;
      Q4KScaleMin(j, scales, &sc, &m);
      std::fill_n(out.lane_scale + b * 64 + 8 * j, 8, d * sc);
      std::fill_n(out.group_offset + b * 16 + 2 * j, 2, dmin * m);
    }
  }
}

inline void UnpackQ6_K(const std::byte* row, size_t n_in, const Int8RowView& out) {
  const D8 d;
  for (size_t b = 0; b < n_in / kQK_K; ++b) {
    const std::byte* blk = row + b * sizeof(BlockQ6_K);
    const float scale = HalfAt(blk + offsetof(BlockQ6_K, d));
    for (int half = 0; half < 2; ++half) {  // 128 values from 64 bytes of low bits and 32 of high bits
      const uint8_t* ql = reinterpret_cast<const uint8_t*>(blk + offsetof(BlockQ6_K, ql)) + 64 * half;
      const uint8_t* qh = reinterpret_cast<const uint8_t*>(blk + offsetof(BlockQ6_K, qh)) + 32 * half;
      uint8_t* u = out.u + b * kQK_K + 128 * half;
      const auto lo4 = hn::Set(d, 0x0F), lo2 = hn::Set(d, 0x03);
      for (size_t l = 0; l < 32; l += hn::Lanes(d)) {
        const auto l0 = hn::LoadU(d, ql + l), l1 = hn::LoadU(d, ql + 32 + l), h = hn::LoadU(d, qh + l);
        hn::StoreU(hn::Or(hn::And(l0, lo4), hn::ShiftLeft<4>(hn::And(h, lo2))), d, u + l);
        hn::StoreU(hn::Or(hn::And(l1, lo4), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(h), lo2))), d, u + 32 + l);
        hn::StoreU(hn::Or(hn::ShiftRight<4>(l0), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(h), lo2))), d, u + 64 + l);
        hn::StoreU(hn::Or(hn::ShiftRight<4>(l1), hn::ShiftLeft<4>(hn::ShiftRight<6>(h))), d, u + 96 + l);
      }
    }
    int8_t sc[16];
    std::memcpy(sc, blk + offsetof(BlockQ6_K, scales), sizeof sc);
    for (int g = 0; g < 16; ++g) {  // sub-blocks of 16, in value order
      std::fill_n(out.lane_scale + b * 64 + 4 * g, 4, scale * sc[g]);
      out.group_offset[b * 16 + g] = 32.0f * scale * sc[g];
    }
  }
}

inline void UnpackRow(Type type, const std::byte* row, size_t n_in, const Int8RowView& out) {
  switch (type) {
    case Type::Q8_0: UnpackQ8_0(row, n_in, out); break;
    case Type::Q4_0: UnpackQ4_0(row, n_in, out); break;
    case Type::Q4_K: UnpackQ4_K(row, n_in, out); break;
    default: UnpackQ6_K(row, n_in, out); break;
  }
}

// ---- the dot tile: kInt8Rows unpacked rows x kTok tokens ------------------------------------------------

inline constexpr size_t kInt8Rows = 4;

// Portable lane sums: per group of 16 values, u8 and i8 widened to i16 and multiplied into i32 lane pairs
// (ReorderWidenMulAccumulate: vpmaddwd on x86), then converted and scaled into f32 lanes that are summed once per
// row and token; widening to i32 and summing every group's lanes took 1.3x to 2.8x as long.
template <size_t kTok>
HWY_INLINE void Int8Tile(const Int8RowView* rows, size_t n_rows, const Int8Activations& a, size_t t0, float* y,
                         size_t y_stride) {
  const hn::CappedTag<int16_t, 16> d16;  // at most one group of 16 per vector
  const hn::RepartitionToWide<decltype(d16)> d32;
  const hn::Rebind<float, decltype(d32)> df;
  const hn::Rebind<uint8_t, decltype(d16)> du8;
  const hn::Rebind<int8_t, decltype(d16)> di8;
  const size_t N = hn::Lanes(d16);
  const int8_t* q[kTok];
  const float* dx[kTok];  // one per block of 32: groups 2j and 2j + 1
  #pragma GCC unroll 16
  for (size_t t = 0; t < kTok; ++t) {
    q[t] = a.q_row(t0 + t);
    dx[t] = a.block_scale(t0 + t);
  }
  for (size_t r = 0; r < n_rows; ++r) {
    hn::Vec<decltype(df)> acc[kTok];
    #pragma GCC unroll 16
    for (size_t t = 0; t < kTok; ++t) acc[t] = hn::Zero(df);
    for (size_t g = 0; g < a.n_in / 16; ++g) {
      hn::Vec<decltype(d32)> sum0[kTok], sum1[kTok];
      #pragma GCC unroll 16
      for (size_t t = 0; t < kTok; ++t) sum0[t] = sum1[t] = hn::Zero(d32);
      for (size_t i = 16 * g; i < 16 * g + 16; i += N) {
        const auto u = hn::PromoteTo(d16, hn::LoadU(du8, rows[r].u + i));
        #pragma GCC unroll 16
        for (size_t t = 0; t < kTok; ++t)
          sum0[t] = hn::ReorderWidenMulAccumulate(d32, u, hn::PromoteTo(d16, hn::LoadU(di8, q[t] + i)), sum0[t], sum1[t]);
      }
      const float scale = rows[r].lane_scale[4 * g];
      #pragma GCC unroll 16
      for (size_t t = 0; t < kTok; ++t)
        acc[t] = hn::MulAdd(hn::ConvertTo(df, hn::RearrangeToOddPlusEven(sum0[t], sum1[t])),
                            hn::Set(df, scale * dx[t][g / 2]), acc[t]);
    }
    #pragma GCC unroll 16
    for (size_t t = 0; t < kTok; ++t)
      y[t * y_stride + r] = hn::GetLane(hn::SumOfLanes(df, acc[t])) - DotF32(rows[r].group_offset, a.sums(t0 + t), a.n_in / 16);
  }
}

// ---- driver ---------------------------------------------------------------------------------------------

inline constexpr size_t kInt8Tokens = 4;
inline constexpr size_t kInt8BlockBytes = 1 << 20;  // unpacked rows kept hot (L2) while all tokens pass

// Rows [r_begin, r_end) of w times all tokens of `a`, y: [n_tok, n_out]. A block of rows is unpacked into
// per-thread scratch, then every group of kInt8Tokens tokens passes over it kInt8Rows rows at a time.
inline void MatMulInt8Rows(const TensorView& w, const Int8Activations& a, size_t n_tok, float* y, size_t r_begin,
                           size_t r_end) {
  const size_t n_in = a.n_in, n_out = static_cast<size_t>(w.rows());
  const size_t row_floats = n_in / 4 + n_in / 16;  // lane scales, then group offsets
  const size_t block = std::max(kInt8Rows, kInt8BlockBytes / (n_in + 4 * row_floats) / kInt8Rows * kInt8Rows);
  thread_local std::vector<uint8_t> u_buf;  // [block, n_in]
  thread_local std::vector<float> f_buf;    // [block, row_floats]
  u_buf.resize(block * n_in);
  f_buf.resize(block * row_floats);
  auto row_view = [&](size_t k) {
    return Int8RowView{u_buf.data() + k * n_in, f_buf.data() + k * row_floats, f_buf.data() + k * row_floats + n_in / 4};
  };
  for (size_t rb = r_begin; rb < r_end; rb += block) {
    const size_t n_rows = std::min(block, r_end - rb);
    for (size_t k = 0; k < n_rows; ++k) UnpackRow(w.type, w.row(static_cast<int64_t>(rb + k)), n_in, row_view(k));
    for (size_t t0 = 0; t0 < n_tok; t0 += kInt8Tokens) {
      for (size_t r0 = 0; r0 < n_rows; r0 += kInt8Rows) {
        const size_t nr = std::min(kInt8Rows, n_rows - r0);
        Int8RowView rows[kInt8Rows];
        #pragma GCC unroll 16
        for (size_t k = 0; k < kInt8Rows; ++k) rows[k] = row_view(r0 + std::min(k, nr - 1));
        float* yt = y + t0 * n_out + rb + r0;
        switch (std::min(kInt8Tokens, n_tok - t0)) {
          case 1: Int8Tile<1>(rows, nr, a, t0, yt, n_out); break;
          case 2: Int8Tile<2>(rows, nr, a, t0, yt, n_out); break;
          case 3: Int8Tile<3>(rows, nr, a, t0, yt, n_out); break;
          default: Int8Tile<4>(rows, nr, a, t0, yt, n_out); break;
        }
      }
    }
  }
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
