// Scalar reference kernels: plain loops accumulating in double. They define what every optimised kernel must
// compute, and the kernel tests compare each Highway target against them. Not used on hot paths.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/kernels/ops.hpp"

namespace g4::ref {

inline void MatMul(const TensorView& w, const float* x, size_t n_tok, float* y) {
  const size_t n_out = static_cast<size_t>(w.rows()), n_in = static_cast<size_t>(w.cols());
  std::vector<float> row(n_in);
  for (size_t o = 0; o < n_out; ++o) {
    DequantizeTensorRow(w, static_cast<int64_t>(o), row.data());
    for (size_t t = 0; t < n_tok; ++t) {
      double acc = 0;
      for (size_t i = 0; i < n_in; ++i) acc += static_cast<double>(row[i]) * x[t * n_in + i];
      y[t * n_out + o] = static_cast<float>(acc);
    }
  }
}

inline void RMSNorm(const float* x, const float* w, float eps, size_t rows, size_t dim, float* y) {
  for (size_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (size_t i = 0; i < dim; ++i) ss += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
    for (size_t i = 0; i < dim; ++i) y[r * dim + i] = static_cast<float>(x[r * dim + i] * inv * (w ? w[i] : 1.0f));
  }
}

inline void LayerNorm(const float* x, const float* w, const float* b, float eps, size_t rows, size_t dim, float* y) {
  for (size_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < dim; ++i) mean += x[r * dim + i];
    mean /= static_cast<double>(dim);
    for (size_t i = 0; i < dim; ++i) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(dim) + eps);
    for (size_t i = 0; i < dim; ++i) y[r * dim + i] = static_cast<float>((x[r * dim + i] - mean) * inv * w[i] + b[i]);
  }
}

inline double GeluTanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

inline void GeluTanhGate(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(GeluTanh(gate[i]) * up[i]);
}

inline void Softmax(float* x, size_t n) {
  const float m = *std::max_element(x, x + n);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - m);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - m) / s);
}

inline void RopeNeox(float* x, size_t n_heads, size_t head_dim, const float* inv_freq, int64_t pos) {
  const size_t half = head_dim / 2;
  for (size_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (size_t j = 0; j < half; ++j) {
      const double a = static_cast<double>(pos) * inv_freq[j];
      const double c = std::cos(a), s = std::sin(a);
      const double x0 = v[j], x1 = v[j + half];
      v[j] = static_cast<float>(x0 * c - x1 * s);
      v[j + half] = static_cast<float>(x1 * c + x0 * s);
    }
  }
}

inline void Softcap(float* x, size_t n, float cap) {
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(cap * std::tanh(static_cast<double>(x[i]) / cap));
}

inline void Attention(const AttentionArgs& a) {
  const size_t group = a.n_heads / a.n_kv_heads;
  for (size_t t = 0; t < a.n_tok; ++t) {
    for (size_t h = 0; h < a.n_heads; ++h) {
      const float* q = a.q + (t * a.n_heads + h) * a.head_dim;
      const size_t kvh = h / group;
      // Row of K or V at position p, as f32.
      std::vector<float> row(a.head_dim);
      auto load = [&](const void* base, Type type, int64_t p) {
        const size_t slot = kvh * a.capacity + static_cast<size_t>(p) % a.capacity;
        const TypeInfo info = GetTypeInfo(type);
        const size_t row_bytes = a.head_dim / info.block_elems * info.block_bytes;
        DequantizeRow(type, static_cast<const std::byte*>(base) + slot * row_bytes, a.head_dim, row.data());
        return row.data();
      };
      std::vector<double> s;
      for (int64_t p = a.key_begin[t]; p < a.key_end[t]; ++p) {
        const float* k = load(a.k, a.k_type, p);
        double d = 0;
        for (size_t i = 0; i < a.head_dim; ++i) d += static_cast<double>(q[i]) * k[i];
        s.push_back(d * a.scale);
      }
      float* o = a.out + (t * a.n_heads + h) * a.head_dim;
      std::fill(o, o + a.head_dim, 0.0f);
      if (s.empty()) continue;
      const double m = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - m));
      std::vector<double> acc(a.head_dim, 0.0);
      for (int64_t p = a.key_begin[t]; p < a.key_end[t]; ++p) {
        const float* v = load(a.v, a.v_type, p);
        const double pr = s[static_cast<size_t>(p - a.key_begin[t])] / sum;
        for (size_t i = 0; i < a.head_dim; ++i) acc[i] += pr * v[i];
      }
      for (size_t i = 0; i < a.head_dim; ++i) o[i] = static_cast<float>(acc[i]);
    }
  }
}

}  // namespace g4::ref
