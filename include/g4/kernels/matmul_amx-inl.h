// AVX3_DL + AMX-INT8 (Sapphire Rapids and later), chosen at run time: the prefill (>= 16 tokens) integer
// matmul on tiles. The unpacked rows of matmul_int8-inl.h, turned into signed levels u - offset, are tile A,
// 16 rows x one scale block of K bytes (32; 16 for Q6_K, whose scales change every 16 values); 16 tokens of
// int8 activations, repacked once per call into AMX's 4-byte-interleaved layout, are tile B; from a zeroed
// tile, one tdpbssd gives the exact 16 x 16 block of sums of (u - offset) * qx (signed x signed, so no bias
// term: loading a bias row into C with stride 0 cost more than the multiply-adds). Each block's tile is then
// scaled in f32 into 16 row accumulators of 16 tokens: acc[r] += sums[r] * (s_r * dx), and Q4_K subtracts
// m_r * (dx * sum of quants). One AMX block of 8192 multiply-adds costs ~4 f32 ops per row, against 128 for
// VNNI. The process asks the kernel for the AMX state once (arch_prctl), each worker loads the tile
// configuration before its tiles and releases it after. Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_MATMUL_AMX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_MATMUL_AMX_INL_H_
#undef G4_KERNELS_MATMUL_AMX_INL_H_
#else
#define G4_KERNELS_MATMUL_AMX_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <hwy/highway.h>

#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/matmul_int8-inl.h"
#include "g4/kernels/ops.hpp"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL  // AVX3_DL and better (AVX3_ZEN4, AVX3_SPR, ...)
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {

#define G4_AMX __attribute__((target("amx-tile,amx-int8,avx512vnni")))

inline constexpr size_t kAmxTile = 16;  // rows of A and C, tokens of B and C

// Activations of 16-token tiles in tile-B layout, per scale block of `step` values (32, or 16 for Q6_K).
struct AmxActivations {
  size_t step = 32, n_steps = 0, n_tiles = 0;
  std::vector<int8_t> b;        // [n_tiles, n_steps, step / 4, 64]: b[kk][4n + j] = q[token n][4kk + j]
  std::vector<float> dx;        // [n_tiles, n_steps, 16]: the activation scale per token
  std::vector<float> sum;       // [n_tiles, n_steps, 16]: dx * (sum of the step's quants) (Q4_K's mins)
  size_t at(size_t tile, size_t s) const { return tile * n_steps + s; }
};

inline void PackAmxActivations(const Int8Activations& a, size_t n_tok, size_t step, AmxActivations& p,
                               ThreadPool& pool) {
  const size_t n_in = a.n_in;
  p.step = step;
  p.n_steps = n_in / step;
  p.n_tiles = (n_tok + kAmxTile - 1) / kAmxTile;
  p.b.assign(p.n_tiles * n_in * kAmxTile, 0);
  p.dx.assign(p.n_tiles * p.n_steps * kAmxTile, 0.0f);
  p.sum.assign(p.n_tiles * p.n_steps * kAmxTile, 0.0f);
  pool.ParallelFor(p.n_tiles, 1, [&](size_t tile_begin, size_t tile_end, size_t) {
    for (size_t tile = tile_begin; tile < tile_end; ++tile) {
      for (size_t n = 0; n < kAmxTile && tile * kAmxTile + n < n_tok; ++n) {
        const size_t t = tile * kAmxTile + n;
        const int8_t* q = a.q_row(t);
        for (size_t s = 0; s < p.n_steps; ++s) {
          int8_t* dst = p.b.data() + p.at(tile, s) * step * kAmxTile;
          int total = 0;
          for (size_t kk = 0; kk < step / 4; ++kk)
            for (size_t j = 0; j < 4; ++j) {
              const int8_t v = q[s * step + 4 * kk + j];
              dst[kk * 64 + 4 * n + j] = v;
              total += v;
            }
          const float dx = a.block_scale(t)[s * step / 32];
          p.dx[p.at(tile, s) * kAmxTile + n] = dx;
          p.sum[p.at(tile, s) * kAmxTile + n] = dx * static_cast<float>(total);
        }
      }
    }
  });
}

struct alignas(64) AmxTileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Two sets of tiles, so that one scale block's tile work overlaps the f32 work of the previous one:
// tiles 0 and 3: C (16 x 16 int32); 1 and 4: A (16 rows x step bytes); 2 and 5: B (step/4 rows x 64 bytes).
inline AmxTileConfig MakeTileConfig(size_t step) {
  AmxTileConfig c;
  for (int set = 0; set < 2; ++set) {
    c.rows[3 * set] = 16;
    c.colsb[3 * set] = 64;
    c.rows[3 * set + 1] = 16;
    c.colsb[3 * set + 1] = static_cast<uint16_t>(step);
    c.rows[3 * set + 2] = static_cast<uint8_t>(step / 4);
    c.colsb[3 * set + 2] = 64;
  }
  return c;
}

// 16 rows unpacked by MatMulAmxRows: signed levels [16, n_in]; the scale s_r of every scale block and, for
// Q4_K, its min m_r, [16, n_steps] each (compact: the unpacked rows' per-lane scales repeat each one 8 times).
struct AmxRows {
  const uint8_t* u;
  const float* scale;
  const float* min;
};

// The exact 16 x 16 sums of scale block s into c, through tile set kSet. (GCC's tile intrinsics are macros
// that paste the tile number into the instruction, so each set is spelled out.)
template <int kSet>
G4_AMX HWY_INLINE void AmxBlockSums(const AmxRows& rows, const AmxActivations& p, size_t tile, size_t s,
                                    size_t n_in, int32_t (&c)[kAmxTile][kAmxTile]) {
  const uint8_t* a = rows.u + s * p.step;
  const int8_t* b = p.b.data() + p.at(tile, s) * p.step * kAmxTile;
  if constexpr (kSet == 0) {
    _tile_zero(0);
    _tile_loadd(1, a, static_cast<long>(n_in));
    _tile_loadd(2, b, 64);
    _tile_dpbssd(0, 1, 2);
    _tile_stored(0, &c[0][0], 64);
  } else {
    _tile_zero(3);
    _tile_loadd(4, a, static_cast<long>(n_in));
    _tile_loadd(5, b, 64);
    _tile_dpbssd(3, 4, 5);
    _tile_stored(3, &c[0][0], 64);
  }
  asm volatile("" : "+m"(c));  // the tile store wrote c behind the compiler's back (and only c)
}

// acc[r] += c[r] * (s_r * dx) (- m_r * dx * sum of quants, Q4_K) for scale block s.
template <bool kHasMin>
G4_AMX HWY_INLINE void AmxScaleBlock(const AmxRows& rows, const AmxActivations& p, size_t tile, size_t s,
                                     const int32_t (&c)[kAmxTile][kAmxTile], __m512 (&acc)[kAmxTile]) {
  const size_t at = p.at(tile, s);
  const __m512 dx = _mm512_loadu_ps(p.dx.data() + at * kAmxTile);
  const __m512 sum = _mm512_loadu_ps(p.sum.data() + at * kAmxTile);
#pragma GCC unroll 16
  for (size_t r = 0; r < kAmxTile; ++r) {
    const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(rows.scale[r * p.n_steps + s]), dx);
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[r])), scale, acc[r]);
    // Q4_K: the min of the row's sub-block times dx * (sum of the quants).
    if constexpr (kHasMin) acc[r] = _mm512_fnmadd_ps(_mm512_set1_ps(rows.min[r * p.n_steps + s]), sum, acc[r]);
  }
}

// 16 unpacked rows x one 16-token tile: y[n * y_stride + r] for r < n_rows, n < n_valid.
template <bool kHasMin>
G4_AMX HWY_NOINLINE void AmxTile16x16(const AmxRows& rows, size_t n_rows, const AmxActivations& p, size_t tile,
                                      size_t n_in, float* y, size_t y_stride, size_t n_valid) {
  alignas(64) int32_t c0[kAmxTile][kAmxTile], c1[kAmxTile][kAmxTile];
  __m512 acc[kAmxTile];
#pragma GCC unroll 16
  for (size_t r = 0; r < kAmxTile; ++r) acc[r] = _mm512_setzero_ps();
  size_t s = 0;
  for (; s + 2 <= p.n_steps; s += 2) {
    AmxBlockSums<0>(rows, p, tile, s, n_in, c0);
    AmxBlockSums<1>(rows, p, tile, s + 1, n_in, c1);
    AmxScaleBlock<kHasMin>(rows, p, tile, s, c0, acc);
    AmxScaleBlock<kHasMin>(rows, p, tile, s + 1, c1, acc);
  }
  if (s < p.n_steps) {
    AmxBlockSums<0>(rows, p, tile, s, n_in, c0);
    AmxScaleBlock<kHasMin>(rows, p, tile, s, c0, acc);
  }
  // Constant indices only, so acc stays in registers; then the valid part of the tile.
  alignas(64) float out[kAmxTile][kAmxTile];
#pragma GCC unroll 16
  for (size_t r = 0; r < kAmxTile; ++r) _mm512_store_ps(out[r], acc[r]);
  for (size_t r = 0; r < n_rows; ++r)
    for (size_t n = 0; n < n_valid; ++n) y[n * y_stride + r] = out[r][n];
}

inline constexpr size_t kAmxBlockBytes = 1 << 20;  // unpacked rows kept hot while all token tiles pass

// Rows [r_begin, r_end) of w times the packed tokens; y: [n_tok, n_out].
G4_AMX inline void MatMulAmxRows(const TensorView& w, const AmxActivations& p, size_t n_in, size_t n_tok, float* y,
                                 size_t r_begin, size_t r_end) {
  const size_t n_out = static_cast<size_t>(w.rows());
  const size_t row_floats = n_in / 4 + n_in / 16, n_steps = p.n_steps;
  const size_t block = std::max(kAmxTile, kAmxBlockBytes / (n_in + 8 * n_steps) / kAmxTile * kAmxTile);
  thread_local std::vector<uint8_t> u_buf;   // [block, n_in]
  thread_local std::vector<float> s_buf;     // [block, n_steps]
  thread_local std::vector<float> m_buf;     // [block, n_steps], Q4_K only
  thread_local std::vector<float> row_buf;   // [row_floats]: one row's per-lane scales and per-16 offsets
  u_buf.resize(block * n_in);
  s_buf.resize(block * n_steps);
  m_buf.resize(block * n_steps);
  row_buf.resize(row_floats);
  const int offset = LevelOffset(w.type);
  const bool has_min = w.type == Type::Q4_K;
  const AmxTileConfig config = MakeTileConfig(p.step);
  _tile_loadconfig(&config);
  for (size_t rb = r_begin; rb < r_end; rb += block) {
    const size_t n_rows = std::min(block, r_end - rb);
    const size_t padded = (n_rows + kAmxTile - 1) / kAmxTile * kAmxTile;
    for (size_t k = 0; k < padded; ++k) {  // rows past the end repeat the last one (not stored)
      uint8_t* u = u_buf.data() + k * n_in;
      const Int8RowView row{u, row_buf.data(), row_buf.data() + n_in / 4};
      UnpackRow(w.type, w.row(static_cast<int64_t>(rb + std::min(k, n_rows - 1))), n_in, row);
      // Signed levels for tdpbssd: u - offset, all within int8 (Q8_0: -128..127, Q4_0 -8..7, Q6_K -32..31).
      if (offset != 0)
        for (size_t i = 0; i < n_in; ++i) u[i] = static_cast<uint8_t>(u[i] - offset);
      for (size_t s = 0; s < n_steps; ++s) s_buf[k * n_steps + s] = row.lane_scale[s * p.step / 4];
      if (has_min)
        for (size_t s = 0; s < n_steps; ++s) m_buf[k * n_steps + s] = row.group_offset[s * p.step / 16];
    }
    for (size_t tile = 0; tile < p.n_tiles; ++tile) {
      const size_t n_valid = std::min(kAmxTile, n_tok - tile * kAmxTile);
      for (size_t r0 = 0; r0 < n_rows; r0 += kAmxTile) {
        const AmxRows rows{u_buf.data() + r0 * n_in, s_buf.data() + r0 * n_steps, m_buf.data() + r0 * n_steps};
        float* yt = y + tile * kAmxTile * n_out + rb + r0;
        const size_t nr = std::min(kAmxTile, n_rows - r0);
        if (has_min)
          AmxTile16x16<true>(rows, nr, p, tile, n_in, yt, n_out, n_valid);
        else
          AmxTile16x16<false>(rows, nr, p, tile, n_in, yt, n_out, n_valid);
      }
    }
  }
  _tile_release();
}

#undef G4_AMX

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL
#endif  // toggle guard
