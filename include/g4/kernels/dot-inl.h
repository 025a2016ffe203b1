// Per-target f32 dot product (the integer matmul panels' offset corrections). Toggle-guarded:
// included once per target through g4/impl.hpp's foreach_target.
#if defined(G4_KERNELS_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_DOT_INL_H_
#undef G4_KERNELS_DOT_INL_H_
#else
#define G4_KERNELS_DOT_INL_H_
#endif

#include <cstddef>

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// sum_i a[i] * b[i] over n values: one vector accumulator, then the scalar tail.
HWY_INLINE float DotF32(const float* a, const float* b, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) acc = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc);
  float s = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
