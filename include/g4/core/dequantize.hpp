// Scalar conversion of one row of any weight type to f32: the reference for every kernel and the slow path
// for tensors read once (norms, embeddings of a single token). Formulas follow ggml's dequantize_row_*.
#pragma once
#include <cstddef>
#include <cstdint>

#include "g4/core/tensor.hpp"
#include "g4/core/types.hpp"

namespace g4 {

// Q4_K packs eight 6-bit (scale, min) pairs in 12 bytes; sub-block j's pair, as ggml's get_scale_min_k4.
inline void Q4KScaleMin(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Converts n elements (a whole number of blocks) starting at `src` to f32.
inline void DequantizeRow(Type type, const std::byte* src, size_t n, float* dst) {
  switch (type) {
    case Type::F32: {
      const float* s = reinterpret_cast<const float*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = s[i];
      return;
    }
    case Type::F16: {
      const f16* s = reinterpret_cast<const f16*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    case Type::BF16: {
      const bf16* s = reinterpret_cast<const bf16*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = BF16ToF32(s[i]);
      return;
    }
    case Type::Q8_0: {
      const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(src);
      for (size_t i = 0; i < n / kQK8_0; ++i) {
        const float d = F16ToF32(b[i].d);
        for (size_t j = 0; j < kQK8_0; ++j) dst[i * kQK8_0 + j] = d * b[i].qs[j];
      }
      return;
    }
    case Type::Q4_0: {
      const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(src);
      for (size_t i = 0; i < n / kQK4_0; ++i) {
        const float d = F16ToF32(b[i].d);
        for (size_t j = 0; j < kQK4_0 / 2; ++j) {
          dst[i * kQK4_0 + j] = d * ((b[i].qs[j] & 0xF) - 8);
          dst[i * kQK4_0 + j + kQK4_0 / 2] = d * ((b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case Type::Q4_K: {
      const BlockQ4_K* b = reinterpret_cast<const BlockQ4_K*>(src);
      for (size_t i = 0; i < n / kQK_K; ++i) {
        const float d = F16ToF32(b[i].d), dmin = F16ToF32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        float* y = dst + i * kQK_K;
        for (int j = 0; j < 8; j += 2) {  // 64 values per 32 bytes: low nibbles, then high nibbles
          uint8_t sc, m;
          Q4KScaleMin(j, b[i].scales, &sc, &m);
          const float d1 = d * sc, m1 = dmin * m;
          Q4KScaleMin(j + 1, b[i].scales, &sc, &m);
          const float d2 = d * sc, m2 = dmin * m;
          for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
          q += 32;
        }
      }
      return;
    }
    case Type::Q6_K: {
      const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(src);
      for (size_t i = 0; i < n / kQK_K; ++i) {
        const float d = F16ToF32(b[i].d);
        const uint8_t* ql = b[i].ql;
        const uint8_t* qh = b[i].qh;
        const int8_t* sc = b[i].scales;
        float* y = dst + i * kQK_K;
        for (int half = 0; half < 2; ++half) {  // 128 values each
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = static_cast<int>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = static_cast<int>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
          }
          y += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
      return;
    }
    default:
      Fail("dequantize", "type " + std::string(TypeName(type)) + " is not a weight type");
  }
}

// Row r of a 2-D (or flattened) weight tensor, as f32.
inline void DequantizeTensorRow(const TensorView& t, int64_t r, float* dst) {
  DequantizeRow(t.type, t.row(r), static_cast<size_t>(t.cols()), dst);
}

}  // namespace g4
