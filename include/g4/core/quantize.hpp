// f32 -> any weight type, one row at a time, bit-compatible with ggml's reference quantizers
// (quantize_row_*_ref in ggml-quants.c): the blocks we write are the blocks llama.cpp writes for the same
// floats, so GGUF files we produce load anywhere. Scalar and exact, used offline (`g4 quantize`) and for the
// activations of tests; not on the hot path.
//
// Error bounds of one round trip x -> block -> DequantizeRow (d_h: the scale after rounding to f16):
//   F32   exact.   BF16, F16: round to nearest even (exact on representable values).
//   Q8_0  per block of 32: d = amax/127, |err| <= d/2 + 127 |d - d_h|  (<= amax/254 + amax 2^-11).
//   Q4_0  per block of 32: d = max/-8 (max: the value of largest magnitude, which maps to -8 exactly);
//         |err| <= |d|/2 + 8 |d - d_h|, except values of the opposite sign beyond 7.5 |d| that clamp to
//         q = 7: |err| <= |d| (x/d - 7) <= |d|.
//   Q4_K  per sub-block of 32: x ~ D q - M, q in 0..15, D = d_h * sc, M = dmin_h * m with 6-bit sc, m.
//         Every value lands on the nearest point of its sub-block's grid; where the grid covers the
//         sub-block's [min(min, 0), max] (it does unless the 6-bit scale rounding shrinks it, rare),
//         |err| <= D/2.
//   Q6_K  per sub-block of 16: x ~ D (q - 32), q in 0..63, D = d_h * sc with int8 sc; nearest grid point,
//         |err| <= D/2 where the grid covers [-32 D, 31 D].
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "g4/core/dequantize.hpp"
#include "g4/core/error.hpp"
#include "g4/core/types.hpp"

namespace g4 {

namespace quant_detail {

// ggml's nearest_int: round half to even via the 1.5 * 2^23 trick (|v| <= 2^22).
inline int NearestInt(float v) {
  const float biased = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &biased, sizeof i);
  return (i & 0x007FFFFF) - 0x00400000;
}

inline constexpr float kGroupMaxEps = 1e-15f;

template <typename Block>
void StoreBlock(const Block& b, std::byte* dst) {
  std::memcpy(dst, &b, sizeof b);
}

inline void QuantizeQ8_0(const float* x, std::byte* dst) {
  BlockQ8_0 b{};
  float amax = 0.0f;
  for (size_t j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = F32ToF16(d);
  for (size_t j = 0; j < kQK8_0; ++j) b.qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  StoreBlock(b, dst);
}

inline void QuantizeQ4_0(const float* x, std::byte* dst) {
  BlockQ4_0 b{};
  float amax = 0.0f, max = 0.0f;
  for (size_t j = 0; j < kQK4_0; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = F32ToF16(d);
  for (size_t j = 0; j < kQK4_0 / 2; ++j) {
    // x * id lies in [-8, 8]: + 8.5 and truncation round half up; 16 clamps to 15.
    const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
    const int q1 = std::min(15, static_cast<int>(x[j + kQK4_0 / 2] * id + 8.5f));
    b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
  StoreBlock(b, dst);
}

// ggml's make_qkx2_quants: scale and min (returned negated in *the_min) of n values for levels 0..nmax,
// minimising the weighted squared error over nstep + 1 candidate scales.
inline float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                            uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.0f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = NearestInt(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    const float diff = scale * L[i] + min - x[i];
    best_error += weights[i] * (diff * diff);  // ggml's association: w * diff^2
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, NearestInt(iscale * (x[i] - min))));
      Laux[i] = static_cast<uint8_t>(l);
      sum_l += weights[i] * l;
      sum_l2 += weights[i] * l * l;
      sum_xl += weights[i] * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * Laux[i] + this_min - x[i];
        error += weights[i] * (diff * diff);
      }
      if (error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

inline void QuantizeQ4_K(const float* x, std::byte* dst) {
  BlockQ4_K b{};
  uint8_t L[kQK_K], Laux[32];
  float weights[32], mins[kQK_K / 32], scales[kQK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = MakeQkx2Quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = static_cast<uint8_t>(std::min(63, NearestInt(inv_scale * scales[j])));
    const uint8_t lm = static_cast<uint8_t>(std::min(63, NearestInt(inv_min * mins[j])));
    if (j < 4) {
      b.scales[j] = ls;
      b.scales[j + 4] = lm;
    } else {
      b.scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      b.scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      b.scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  b.d = F32ToF16(max_scale / 63.0f);
  b.dmin = F32ToF16(max_min / 63.0f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    Q4KScaleMin(j, b.scales, &sc, &m);
    const float d = F16ToF32(b.d) * sc;
    if (d == 0.0f) continue;
    const float dm = F16ToF32(b.dmin) * m;
    for (int ii = 0; ii < 32; ++ii)
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(15, NearestInt((x[32 * j + ii] + dm) / d))));
  }
  uint8_t* q = b.qs;
  for (int j = 0; j < static_cast<int>(kQK_K); j += 64) {  // 64 values per 32 bytes: low, then high nibbles
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
  StoreBlock(b, dst);
}

// ggml's make_qx_quants with rmse_type 1 (weights x^2) and no importance weights: a signed scale for levels
// -nmax..nmax-1 chosen among 19 candidates; L receives level + nmax.
inline float MakeQxQuants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, NearestInt(iscale * x[i])));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = sumlx / suml2;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(-nmax, std::min(nmax - 1, NearestInt(iscale * x[i])));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, NearestInt(iscale * x[i]))));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

inline void QuantizeQ6_K(const float* x, std::byte* dst) {
  BlockQ6_K b{};
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {  // all (near) zero: an all-zero block
    StoreBlock(b, dst);
    return;
  }
  const float iscale = -128.0f / max_scale;
  b.d = F32ToF16(1 / iscale);
  for (int ib = 0; ib < 16; ++ib) b.scales[ib] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[ib])));
  for (int j = 0; j < 16; ++j) {
    const float d = F16ToF32(b.d) * b.scales[j];
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<int8_t>(std::max(-32, std::min(31, NearestInt(x[16 * j + ii] / d))) + 32);
  }
  uint8_t* ql = b.ql;
  uint8_t* qh = b.qh;
  for (int j = 0; j < static_cast<int>(kQK_K); j += 128) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
      ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
  StoreBlock(b, dst);
}

}  // namespace quant_detail

// Encodes n floats (a whole number of blocks of `type`) into dst (TensorBytes(type, {n}) bytes, any
// alignment). Quantized types require finite input: a NaN or infinity has no block encoding.
inline void QuantizeRow(Type type, const float* src, size_t n, std::byte* dst) {
  const TypeInfo info = GetTypeInfo(type);
  // Conditions before messages: this runs per row (per cached key and value), so no string is built unless it fails.
  if (!info.is_float_weight) Fail("quantize", "type " + std::string(info.name) + " is not a weight type");
  if (n % info.block_elems != 0)
    Fail("quantize", std::to_string(n) + " values are not a whole number of " + std::string(info.name) + " blocks of " +
                         std::to_string(info.block_elems));
  if (info.block_elems > 1) {
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(src[i]))
        Fail("quantize", "value " + std::to_string(i) + " is not finite; " + std::string(info.name) + " cannot encode it");
  }
  switch (type) {
    case Type::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case Type::F16:
      for (size_t i = 0; i < n; ++i) {
        const f16 h = F32ToF16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case Type::BF16:
      for (size_t i = 0; i < n; ++i) {
        const bf16 h = F32ToBF16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    default:
      break;
  }
  for (size_t b = 0; b < n / info.block_elems; ++b) {
    const float* x = src + b * info.block_elems;
    std::byte* out = dst + b * info.block_bytes;
    switch (type) {
      case Type::Q8_0: quant_detail::QuantizeQ8_0(x, out); break;
      case Type::Q4_0: quant_detail::QuantizeQ4_0(x, out); break;
      case Type::Q4_K: quant_detail::QuantizeQ4_K(x, out); break;
      case Type::Q6_K: quant_detail::QuantizeQ6_K(x, out); break;
      default: Fail("quantize", "no quantizer for " + std::string(info.name));
    }
  }
}

}  // namespace g4
