// Per-target matrix multiplication y[t, o] = sum_i w[o, i] x[t, i] for every weight type, f32 accumulation.
//
// Float weights (F32, BF16, F16) are widened to f32 in registers as they stream; activations stay f32.
// Block-quantized weights take the integer path of matmul_int8-inl.h (int8 activations, exact lane sums).
// The inner kernel is a register tile of 4 weight rows x up to 4 tokens: 8 loads feed 16 FMAs. Loop order
// keeps a block of weight rows (<= kRowBlockBytes, L2-sized) hot while every group of 4 tokens passes over it,
// so each weight byte comes from memory once per call; one token on AVX-512 reads row after row instead
// (MatMulFloatRows). Rows are split into one contiguous range per thread.
// Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_MATMUL_INL_H_
#undef G4_KERNELS_MATMUL_INL_H_
#else
#define G4_KERNELS_MATMUL_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include <hwy/highway.h>

#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/matmul_int8-inl.h"
#include "g4/kernels/matmul_vnni_decode-inl.h"
#include "g4/kernels/matmul_maddubs-inl.h"
#include "g4/kernels/matmul_amx-inl.h"

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// ---- float weight rows, widened to f32: Load gives Lanes(d) values from element i, At gives one -------------

struct F32Row {
  static constexpr size_t kBytes = sizeof(float);
  static HWY_INLINE VF Load(DF d, const std::byte* row, size_t i) {
    return hn::LoadU(d, reinterpret_cast<const float*>(row) + i);
  }
  static HWY_INLINE float At(const std::byte* row, size_t i) {
    float v;
    std::memcpy(&v, row + i * sizeof(float), sizeof v);
    return v;
  }
};

struct BF16Row {
  static constexpr size_t kBytes = sizeof(bf16);
  static HWY_INLINE VF Load(DF d, const std::byte* row, size_t i) {
    const hn::Rebind<hwy::bfloat16_t, DF> dh;
    return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(row) + i));
  }
  static HWY_INLINE float At(const std::byte* row, size_t i) {
    bf16 v;
    std::memcpy(&v, row + i * sizeof v, sizeof v);
    return BF16ToF32(v);
  }
};

struct F16Row {
  static constexpr size_t kBytes = sizeof(f16);
  static HWY_INLINE VF Load(DF d, const std::byte* row, size_t i) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(row) + i));
  }
  static HWY_INLINE float At(const std::byte* row, size_t i) {
    f16 v;
    std::memcpy(&v, row + i * sizeof v, sizeof v);
    return F16ToF32(v);
  }
};

// ---- the register tile -----------------------------------------------------------------------------------

inline constexpr size_t kTileRows = 4, kTileTokens = 4;

// One token reads rows one after another (MatMulFloatRows) on AVX-512 targets only: on AVX2 (Zen 4 forced to it,
// [15360 x 3840]) they streamed as the tile did at a ~36 GB/s probe (96-98% both) but BF16 / F16 76-77% against
// the tile's 91-94% at ~60.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
inline constexpr bool kOneTokenRowByRow = true;
#else
inline constexpr bool kOneTokenRowByRow = false;
#endif

// y[t * y_stride + r] = dot(row r, x[t]) for r < n_rows (rows[] always holds kTileRows valid pointers; the
// extra ones repeat a real row and are not stored), t < kTok. x: [kTok, n_in].
// next[]: the rows of the tile that follows (rows itself for the last one). Column i of each next row is
// prefetched into L2 as column i of rows is read: one tile ahead, in the order the next tile will read them.
// That gives BF16 decode 27.7 -> 29.8 and F16 28.5 -> 29.8 GB/s (2 threads, huge pages; a fixed 2 KB ahead in
// each row before); F32 rows stream as fast either way. Not for one token on AVX-512, where the tile only reads
// BF16 and F16 rows wider than kOneRowMaxCols: there the hardware prefetcher follows its 4 streams better (Zen 5,
// 2 threads, [3840 x 15360] / [3840 x 8192], alternated call by call, medians of ~55: BF16 1.16x / 1.08x, F16
// 1.17x / 1.12x the prefetching tile's GB/s).
template <class Row, size_t kTok>
HWY_INLINE void DotTile(const std::byte* const* rows, const std::byte* const* next, size_t n_rows, const float* x,
                        size_t n_in, float* y, size_t y_stride) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[kTileRows][kTok];
  #pragma GCC unroll 16
  for (size_t r = 0; r < kTileRows; ++r)
    #pragma GCC unroll 16
    for (size_t t = 0; t < kTok; ++t) acc[r][t] = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n_in; i += N) {
    VF xv[kTok];
    #pragma GCC unroll 16
    for (size_t t = 0; t < kTok; ++t) xv[t] = hn::LoadU(d, x + t * n_in + i);
    #pragma GCC unroll 16
    for (size_t r = 0; r < kTileRows; ++r) {
      if constexpr (!kOneTokenRowByRow || kTok > 1) __builtin_prefetch(next[r] + i * Row::kBytes, 0, 2);
      const VF wv = Row::Load(d, rows[r], i);
      #pragma GCC unroll 16
      for (size_t t = 0; t < kTok; ++t) acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
    }
  }
  float sums[kTileRows][kTok];  // constant indices only, so acc stays in registers
  #pragma GCC unroll 16
  for (size_t r = 0; r < kTileRows; ++r)
    #pragma GCC unroll 16
    for (size_t t = 0; t < kTok; ++t) sums[r][t] = hn::GetLane(hn::SumOfLanes(d, acc[r][t]));
  for (size_t r = 0; r < n_rows; ++r) {
    for (size_t t = 0; t < kTok; ++t) {
      float s = sums[r][t];
      for (size_t j = i; j < n_in; ++j) s += Row::At(rows[r], j) * x[t * n_in + j];
      y[t * y_stride + r] = s;
    }
  }
}

// Rows [0, n_rows) spaced row_stride bytes from `base`, times all n_tok tokens; y: [n_tok, y_stride] at the
// block's first row.
template <class Row>
HWY_INLINE void MatMulRowBlock(const std::byte* base, size_t row_stride, size_t n_rows, const float* x,
                               size_t n_tok, size_t n_in, float* y, size_t y_stride) {
  // rows[kTileRows] of the tile at r0, kTileRows valid pointers (the extra ones repeat its last row).
  auto tile_rows = [&](size_t r0, const std::byte** rows) {
    const size_t nr = std::min(kTileRows, n_rows - r0);
    #pragma GCC unroll 16
    for (size_t k = 0; k < kTileRows; ++k) rows[k] = base + (r0 + std::min(k, nr - 1)) * row_stride;
  };
  for (size_t t0 = 0; t0 < n_tok; t0 += kTileTokens) {
    const size_t nt = std::min(kTileTokens, n_tok - t0);
    const float* xt = x + t0 * n_in;
    float* yt = y + t0 * y_stride;
    const std::byte *rows[kTileRows], *next[kTileRows];
    tile_rows(0, rows);
    for (size_t r0 = 0; r0 < n_rows; r0 += kTileRows) {
      const size_t nr = std::min(kTileRows, n_rows - r0);
      tile_rows(r0 + kTileRows < n_rows ? r0 + kTileRows : r0, next);
      switch (nt) {
        case 1: DotTile<Row, 1>(rows, next, nr, xt, n_in, yt + r0, y_stride); break;
        case 2: DotTile<Row, 2>(rows, next, nr, xt, n_in, yt + r0, y_stride); break;
        case 3: DotTile<Row, 3>(rows, next, nr, xt, n_in, yt + r0, y_stride); break;
        default: DotTile<Row, 4>(rows, next, nr, xt, n_in, yt + r0, y_stride); break;
      }
      std::copy(next, next + kTileRows, rows);  // the next tile's rows, computed once
    }
  }
}

inline constexpr size_t kRowBlockBytes = 512 * 1024;

// Rows per block: as many as fit kRowBlockBytes, a multiple of the tile, at least one tile.
inline size_t RowsPerBlock(size_t row_bytes) {
  return std::max(kTileRows, kRowBlockBytes / row_bytes / kTileRows * kTileRows);
}

// dot(row, x) for one token: 4 accumulators, so the FMA latency does not bound it.
template <class Row>
HWY_INLINE float DotRow(const std::byte* row, const float* x, size_t n_in) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 * N <= n_in; i += 4 * N) {
    a0 = hn::MulAdd(Row::Load(d, row, i), hn::LoadU(d, x + i), a0);
    a1 = hn::MulAdd(Row::Load(d, row, i + N), hn::LoadU(d, x + i + N), a1);
    a2 = hn::MulAdd(Row::Load(d, row, i + 2 * N), hn::LoadU(d, x + i + 2 * N), a2);
    a3 = hn::MulAdd(Row::Load(d, row, i + 3 * N), hn::LoadU(d, x + i + 3 * N), a3);
  }
  for (; i + N <= n_in; i += N) a0 = hn::MulAdd(Row::Load(d, row, i), hn::LoadU(d, x + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n_in; ++i) s += Row::At(row, i) * x[i];
  return s;
}

// One token (decode) on AVX-512 reads the rows one after another, each thread's range as one sequential stream
// without software prefetches, where the activations fit L1 (kOneRowMaxCols); otherwise, and for more tokens, the
// register tile runs. The tile's interleaved row streams lose to one stream (Zen 4, 2 threads, BF16 [15360 x 3840]): a
// prototype streamed 82% of the probe's bandwidth against the tile's 63% in minutes when the probe read ~60 GB/s,
// 100% against 90% when it read ~35 (medians of ~65 alternations; with prefetches 0.5-4 KB ahead, 51-54% and
// 81-82%). This build, alternated call by call with the tile in 12 runs: BF16's best call 32.4-34.2 -> 35.0-37.8
// GB/s, and 38.5 -> 45.3 in a fast minute; F32 and F16 within 3%.
// What still bounds it near 60 GB/s is the activations, re-read for every row (4 bytes per weight): their L1
// misses cost the weights' stream (F32: 85-86% of a plain sum over the same bytes; 98% with their footprint cut
// to 512 bytes; a copy with 16 rows interleaved per 16 columns reached 94-96%, but a copy is the model's size
// again, and its tiles for 4 tokens streamed 40-75%, so float weights stay in place). Wider rows than
// kOneRowMaxCols (16 KiB of activations) read them from L2 for every row, 2 bytes per byte of BF16 weights, which
// cost more than the tile's streams: [3840 x 15360] and [3840 x 8192], BF16 and F16, 63-67% against 91-97%. F32
// weights, one byte of activations per byte, read row after row at any width (Zen 5, 2 threads, [3840 x 15360] and
// [3840 x 8192], alternated call by call, medians of ~60: 1.28x and 1.30x the tile's GB/s; BF16 there 0.82x and
// 1.01x).
inline constexpr size_t kOneRowMaxCols = 4096;

template <class Row>
void MatMulFloatRows(const TensorView& w, const float* x, size_t n_tok, float* y, size_t r_begin, size_t r_end) {
  const size_t n_in = static_cast<size_t>(w.cols()), n_out = static_cast<size_t>(w.rows());
  if constexpr (kOneTokenRowByRow) {  // DotRow is not even instantiated elsewhere
    if (n_tok == 1 && (n_in <= kOneRowMaxCols || Row::kBytes == sizeof(float))) {
      const size_t row_bytes = w.row_bytes();
      const std::byte* row = w.row(static_cast<int64_t>(r_begin));
      for (size_t r = r_begin; r < r_end; ++r, row += row_bytes) y[r] = DotRow<Row>(row, x, n_in);
      return;
    }
  }
  const size_t block = RowsPerBlock(w.row_bytes());
  for (size_t rb = r_begin; rb < r_end; rb += block) {
    const size_t n = std::min(block, r_end - rb);
    MatMulRowBlock<Row>(w.row(static_cast<int64_t>(rb)), w.row_bytes(), n, x, n_tok, n_in, y + rb, n_out);
  }
}

// Entry point (dispatched): shapes were validated by the caller. Quantized weights on AVX3_DL: up to
// kFusedMaxTokens tokens decode the weights in registers, 16 rows at a time (memory-bound decode and MTP
// verification); more, AMX tiles where the CPU has them, else the same 16-row kernels in passes of
// kPrefillTokens with the accumulators in L1 (compute-bound prefill). AVX3 and AVX2 run 16-row kernels on row groups:
// the same where the CPU has VNNI (Cascade Lake: AVX3), vpmaddubsw ones otherwise. Elsewhere rows are unpacked once
// into L2 scratch and reused for every token.
void MatMulWeights(const TensorView& w, const float* x, size_t n_tok, float* y, ThreadPool& pool) {
  const size_t n_in = static_cast<size_t>(w.cols()), n_out = static_cast<size_t>(w.rows());
  const bool is_float = w.type == Type::F32 || w.type == Type::BF16 || w.type == Type::F16;
  // The calling thread's buffer. Named through a reference: inside the lambda `acts` itself would name each
  // worker's own (empty) thread_local instance.
  thread_local Int8Activations acts_storage;
  Int8Activations& acts = acts_storage;
  // Quantized weights: the fused 16-row kernels, which read tiles of the tokens of one pass: on AVX3_DL the VNNI ones
  // from the matrix or its row groups, except for AMX tiles from 16 tokens where the CPU has them (its packer reads
  // rows); on AVX3 and AVX2 from row groups only, the VNNI ones where the CPU has VNNI (AVX3), else vpmaddubsw.
  // Otherwise the unpacked-row kernel, which reads rows.
#if HWY_TARGET == HWY_AVX3_DL
  const bool amx = !is_float && n_tok > kFusedMaxTokens && AmxUsable();
  const bool fused = !is_float && !amx;
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
  const bool fused = !is_float && w.row_groups != nullptr;
#else
  const bool fused = false;
#endif
  if (!is_float) QuantizeActivations(x, n_tok, n_in, LevelOffset(w.type), fused ? FusedPassTokens(n_tok) : 1, acts, pool);
#if HWY_TARGET == HWY_AVX3_DL
  if (amx) {
    thread_local AmxActivations packed_storage;
    AmxActivations& packed = packed_storage;
    PackAmxActivations(acts, n_tok, w.type == Type::Q6_K ? 16 : 32, packed, pool);
    pool.ParallelFor((n_out + kAmxTile - 1) / kAmxTile, 1, [&](size_t tb, size_t te, size_t /*worker*/) {
      MatMulAmxRows(w, packed, n_in, n_tok, y, tb * kAmxTile, std::min(n_out, te * kAmxTile));
    });
    return;
  }
#endif
  const size_t unit = fused ? kRowGroupRows : kTileRows;  // rows are split between threads in multiples of this
  // Below ~64k multiply-adds per thread the fork costs more than it saves.
  const size_t n_units = (n_out + unit - 1) / unit;
  const size_t grain = 1 + (1 << 16) / (unit * n_in * n_tok);
  pool.ParallelFor(n_units, grain, [&](size_t ub, size_t ue, size_t /*worker*/) {
    const size_t r_begin = ub * unit, r_end = std::min(n_out, ue * unit);
    switch (w.type) {
      case Type::F32: MatMulFloatRows<F32Row>(w, x, n_tok, y, r_begin, r_end); break;
      case Type::BF16: MatMulFloatRows<BF16Row>(w, x, n_tok, y, r_begin, r_end); break;
      case Type::F16: MatMulFloatRows<F16Row>(w, x, n_tok, y, r_begin, r_end); break;
      default:
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3
        // One token from row groups takes the 8-row 256-bit kernel below, which streams at least as fast
        // (Zen 4, 2 threads, [15360 x 3840], 5 alternations, GB/s with the host's bandwidth at ~33 / ~55 GB/s:
        // Q4_K 32.6-33.9 / 41.2-41.9 -> 32.8-34.7 / 43.5-43.7, Q6_K 30.2-32.0 / 46.6-49.3 -> 33.5-33.8 /
        // 50.6-51.5, Q8_0 32.6-34.1 / 40.2-41.0 -> 30.8-32.3 / 54.4-56.2; measured with vpmaddubsw, before its
        // 256-bit vpdpbusd and register accumulators made it faster still). Not measured on Intel.
        if (fused && VnniKernelsUsable() && (n_tok > 1 || w.row_groups == nullptr)) {
          MatMulFusedRows(w, acts, n_tok, y, r_begin, r_end);
          break;
        }
#endif
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
        if (fused) {
          MatMulMaddubsRows(w, acts, n_tok, y, r_begin, r_end);
          break;
        }
#endif
        MatMulInt8Rows(w, acts, n_tok, y, r_begin, r_end);
        break;
    }
  });
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
