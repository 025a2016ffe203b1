// Per-target matrix multiplication y[t, o] = sum_i w[o, i] x[t, i] for every weight type, f32 accumulation.
//
// Float weights (F32, BF16, F16) are widened to f32 in registers as they stream; activations stay f32.
// Block-quantized weights take the integer path of matmul_int8-inl.h (int8 activations, exact lane sums).
// The inner kernel is a register tile of 4 weight rows x up to 4 tokens: 8 loads feed 16 FMAs, and its rows are
// 4 sequential streams through the weights (MatMulRowBlock); one token on AVX-512 reads rows of up to 4096 columns
// one after another instead (kOneTokenRowByRow). Loop order keeps a block of weight rows
// (<= kRowBlockBytes, L2-sized) hot while every group of 4 tokens passes over it, so each weight byte comes from
// memory once per call. Rows are split into one contiguous range per thread.
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
#include "g4/kernels/cpu_tuning.hpp"
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

// A tile's rows: kTileRows pointers (past the n real ones they repeat the first, whose results are not stored), and
// each real row's index in y.
struct TileRows {
  const std::byte* row[kTileRows];
  size_t out[kTileRows];
  size_t n;
};

// How far ahead in its own row the tile prefetches (into L2) while several tokens read it; one token prefetches
// nothing, the hardware prefetcher follows its streams better.
inline constexpr size_t kTilePrefetchBytes = 1024;

// y[t * y_stride + tile.out[r]] = dot(tile.row[r], x[t]) for the tile's real rows r and t < kTok. x: [kTok, n_in].
template <class Row, size_t kTok>
HWY_INLINE void DotTile(const TileRows& tile, const float* x, size_t n_in, float* y, size_t y_stride) {
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
      if constexpr (kTok > 1) __builtin_prefetch(tile.row[r] + i * Row::kBytes + kTilePrefetchBytes, 0, 2);
      const VF wv = Row::Load(d, tile.row[r], i);
      #pragma GCC unroll 16
      for (size_t t = 0; t < kTok; ++t) acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
    }
  }
  float sums[kTileRows][kTok];  // constant indices only, so acc stays in registers
  #pragma GCC unroll 16
  for (size_t r = 0; r < kTileRows; ++r)
    #pragma GCC unroll 16
    for (size_t t = 0; t < kTok; ++t) sums[r][t] = hn::GetLane(hn::SumOfLanes(d, acc[r][t]));
  for (size_t r = 0; r < tile.n; ++r) {
    for (size_t t = 0; t < kTok; ++t) {
      float s = sums[r][t];
      for (size_t j = i; j < n_in; ++j) s += Row::At(tile.row[r], j) * x[t * n_in + j];
      y[t * y_stride + tile.out[r]] = s;
    }
  }
}

// Rows [0, n_rows) spaced row_stride bytes from `base`, times all n_tok tokens; y: [n_tok, y_stride] at the
// block's first row. The rows are cut into kTileRows runs of `len` consecutive rows, and tile j holds row j of
// every run: each of the tile's rows continues where the same row of the previous tile ended, so the memory sees
// kTileRows long sequential streams. Tiles of 4 adjacent rows made each stream jump 4 rows at every row's end,
// past bytes the hardware prefetcher had already fetched, and restart cold (up to 15 points of the bandwidth bound).
template <class Row>
HWY_INLINE void MatMulRowBlock(const std::byte* base, size_t row_stride, size_t n_rows, const float* x,
                               size_t n_tok, size_t n_in, float* y, size_t y_stride) {
  const size_t len = (n_rows + kTileRows - 1) / kTileRows;
  for (size_t t0 = 0; t0 < n_tok; t0 += kTileTokens) {
    const size_t nt = std::min(kTileTokens, n_tok - t0);
    const float* xt = x + t0 * n_in;
    float* yt = y + t0 * y_stride;
    for (size_t j = 0; j < len; ++j) {
      TileRows tile;
      tile.n = 0;
      #pragma GCC unroll 16
      for (size_t k = 0; k < kTileRows; ++k) {
        const size_t r = k * len + j;  // the real rows come first: r grows with k
        if (r < n_rows) tile.out[tile.n++] = r;
        tile.row[k] = base + (r < n_rows ? r : j) * row_stride;
      }
      switch (nt) {
        case 1: DotTile<Row, 1>(tile, xt, n_in, yt, y_stride); break;
        case 2: DotTile<Row, 2>(tile, xt, n_in, yt, y_stride); break;
        case 3: DotTile<Row, 3>(tile, xt, n_in, yt, y_stride); break;
        default: DotTile<Row, 4>(tile, xt, n_in, yt, y_stride); break;
      }
    }
  }
}

inline constexpr size_t kRowBlockBytes = 512 * 1024;

// One token on AVX-512 reads rows of at most kOneRowMaxCols columns (16 KiB of activations, which stay in L1) one
// after another, each thread's range as one sequential stream without software prefetches; wider rows, more tokens
// and other targets take the tile's 4 streams. On the 12B shape, where such rows are most of the bytes, that is
// faster at the model level where the memory is fast; wider rows would read their activations from L2 for every row.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
inline constexpr bool kOneTokenRowByRow = true;
#else
inline constexpr bool kOneTokenRowByRow = false;
#endif
inline constexpr size_t kOneRowMaxCols = 4096;

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

// Rows [r_begin, r_end) times all n_tok tokens. Up to kTileTokens tokens take one pass over the rows, as one block;
// more pass over blocks of rows of at most kRowBlockBytes (L2-sized, a multiple of the tile, at least one tile),
// each kept hot while every group of kTileTokens tokens meets it.
template <class Row>
void MatMulFloatRows(const TensorView& w, const float* x, size_t n_tok, float* y, size_t r_begin, size_t r_end) {
  const size_t n_in = static_cast<size_t>(w.cols()), n_out = static_cast<size_t>(w.rows());
  if (kOneTokenRowByRow && n_tok == 1 && n_in <= kOneRowMaxCols) {
    const std::byte* row = w.row(static_cast<int64_t>(r_begin));
    for (size_t r = r_begin; r < r_end; ++r, row += w.row_bytes()) y[r] = DotRow<Row>(row, x, n_in);
    return;
  }
  const size_t block = n_tok <= kTileTokens
                           ? r_end - r_begin
                           : std::max(kTileRows, kRowBlockBytes / w.row_bytes() / kTileRows * kTileRows);
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
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL
  const bool amx = !is_float && n_tok > kFusedMaxTokens && AmxUsable();
  const bool fused = !is_float && !amx;
#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  const bool fused = !is_float && w.row_groups != nullptr;
#else
  const bool fused = false;
#endif
  if (!is_float) QuantizeActivations(x, n_tok, n_in, LevelOffset(w.type), fused ? FusedPassTokens(n_tok) : 1, acts, pool);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL
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
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
        // One token from row groups takes the 8-row 256-bit kernel below, which streams at least as fast (measured
        // on Zen 4 only), and so do a few more tokens of Q4_K and Q6_K (MaddubsOverVnniMaxTokens).
        if (fused && VnniKernelsUsable() &&
            (w.row_groups == nullptr || n_tok > MaddubsOverVnniMaxTokens(w.type))) {
          MatMulFusedRows(w, acts, n_tok, y, r_begin, r_end);
          break;
        }
#endif
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
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
