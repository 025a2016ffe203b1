// Per-target elementwise kernels: GELU(tanh)-gated product, softmax, softcap. All arithmetic in f32 with
// Highway's polynomial Tanh/Exp (at most 4 ULP), no lookup tables: the model must track HF within 1e-3.
// Toggle-guarded: g4/impl.hpp includes this once per SIMD target.
#if defined(G4_KERNELS_ACTIVATIONS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_ACTIVATIONS_INL_H_
#undef G4_KERNELS_ACTIVATIONS_INL_H_
#else
#define G4_KERNELS_ACTIVATIONS_INL_H_
#endif

#include <cmath>
#include <cstddef>

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// gelu_tanh(g) * u = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * u, for one vector.
template <class D, class V>
HWY_INLINE V GeluTanhTimes(D d, V g, V u) {
  const V inner = hn::Mul(hn::Set(d, 0.7978845608028654f), hn::MulAdd(hn::Mul(hn::Set(d, 0.044715f), g), hn::Mul(g, g), g));
  const V half_g = hn::Mul(hn::Set(d, 0.5f), g);
  return hn::Mul(hn::MulAdd(half_g, hn::Tanh(d, inner), half_g), u);
}

void GeluTanhGateValues(const float* gate, const float* up, size_t n, float* out) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(GeluTanhTimes(d, hn::LoadU(d, gate + i), hn::LoadU(d, up + i)), d, out + i);
  const hn::CappedTag<float, 1> d1;  // tail, one lane at a time through the same formula
  for (; i < n; ++i) hn::StoreU(GeluTanhTimes(d1, hn::LoadU(d1, gate + i), hn::LoadU(d1, up + i)), d1, out + i);
}

// max of x[0..n), n >= 1.
HWY_INLINE float MaxOfValues(const float* x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  float m = x[0];
  size_t i = 0;
  if (n >= N) {
    auto vmax = hn::LoadU(d, x);
    for (i = N; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
    m = hn::GetLane(hn::MaxOfLanes(d, vmax));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// x[i] = exp(x[i] - m) in place over n values; returns their sum (accumulated in f32 lanes).
HWY_INLINE float ExpShiftedSum(float* x, size_t n, float m) {
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 1> d1;  // tail, one lane at a time through the same Exp
  const size_t N = hn::Lanes(d);
  auto vsum = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), hn::Set(d, m)));
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, d, x + i);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, vsum));
  for (; i < n; ++i) {
    const auto e = hn::Exp(d1, hn::Sub(hn::LoadU(d1, x + i), hn::Set(d1, m)));
    sum += hn::GetLane(e);
    hn::StoreU(e, d1, x + i);
  }
  return sum;
}

void SoftmaxValues(float* x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const float inv = 1.0f / ExpShiftedSum(x, n, MaxOfValues(x, n));
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), hn::Set(d, inv)), d, x + i);
  for (; i < n; ++i) x[i] *= inv;
}

void SoftcapValues(float* x, size_t n, float cap) {
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 1> d1;
  const size_t N = hn::Lanes(d);
  const float inv_cap = 1.0f / cap;
  size_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Mul(hn::Set(d, cap), hn::Tanh(d, hn::Mul(hn::LoadU(d, x + i), hn::Set(d, inv_cap)))), d, x + i);
  for (; i < n; ++i)
    hn::StoreU(hn::Mul(hn::Set(d1, cap), hn::Tanh(d1, hn::Mul(hn::LoadU(d1, x + i), hn::Set(d1, inv_cap)))), d1, x + i);
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
