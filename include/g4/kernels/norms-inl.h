// Per-target row normalisations: RMSNorm and LayerNorm, reductions in f32 vector lanes (dim <= ~16k values,
// so the f32 sum's relative error stays near 1e-6). Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_NORMS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_NORMS_INL_H_
#undef G4_KERNELS_NORMS_INL_H_
#else
#define G4_KERNELS_NORMS_INL_H_
#endif

#include <cmath>
#include <cstddef>

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// sum_i (x[i] - c)^2 over n values.
HWY_INLINE float SumSquaresAround(const float* x, size_t n, float c) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::Sub(hn::LoadU(d, x + i), hn::Set(d, c));
    acc = hn::MulAdd(v, v, acc);
  }
  float s = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) s += (x[i] - c) * (x[i] - c);
  return s;
}

HWY_INLINE float Sum(const float* x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) acc = hn::Add(acc, hn::LoadU(d, x + i));
  float s = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) s += x[i];
  return s;
}

// y = (x - shift) * scale * w + b, with w and b optional (null: 1 and 0).
HWY_INLINE void ShiftScale(const float* x, float shift, float scale, const float* w, const float* b, size_t n,
                           float* y) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    auto v = hn::Mul(hn::Sub(hn::LoadU(d, x + i), hn::Set(d, shift)), hn::Set(d, scale));
    if (w) v = hn::Mul(v, hn::LoadU(d, w + i));
    if (b) v = hn::Add(v, hn::LoadU(d, b + i));
    hn::StoreU(v, d, y + i);
  }
  for (; i < n; ++i) y[i] = (x[i] - shift) * scale * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
}

void RMSNormRows(const float* x, const float* w, float eps, size_t rows, size_t dim, float* y) {
  for (size_t r = 0; r < rows; ++r) {
    const float ms = SumSquaresAround(x + r * dim, dim, 0.0f) / static_cast<float>(dim);
    ShiftScale(x + r * dim, 0.0f, 1.0f / std::sqrt(ms + eps), w, nullptr, dim, y + r * dim);
  }
}

void LayerNormRows(const float* x, const float* w, const float* b, float eps, size_t rows, size_t dim, float* y) {
  for (size_t r = 0; r < rows; ++r) {
    const float mean = Sum(x + r * dim, dim) / static_cast<float>(dim);
    const float var = SumSquaresAround(x + r * dim, dim, mean) / static_cast<float>(dim);
    ShiftScale(x + r * dim, mean, 1.0f / std::sqrt(var + eps), w, b, dim, y + r * dim);
  }
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
