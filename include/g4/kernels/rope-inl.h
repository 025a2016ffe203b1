// Per-target NeoX RoPE. The angles pos * inv_freq[j] are formed in double (positions reach 1e5+, where an f32
// angle would lose ~1e-2 rad) and their cos/sin computed once per call for all heads; the rotation is SIMD.
// Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_ROPE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_ROPE_INL_H_
#undef G4_KERNELS_ROPE_INL_H_
#else
#define G4_KERNELS_ROPE_INL_H_
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void RopeNeoxHeads(float* x, size_t n_heads, size_t head_dim, const float* inv_freq, int64_t pos) {
  const size_t half = head_dim / 2;
  thread_local std::vector<float> cos_sin;  // [2, half]
  cos_sin.resize(2 * half);
  float* cs = cos_sin.data();
  float* sn = cs + half;
  for (size_t j = 0; j < half; ++j) {
    const double a = static_cast<double>(pos) * inv_freq[j];
    cs[j] = static_cast<float>(std::cos(a));
    sn[j] = static_cast<float>(std::sin(a));
  }
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  for (size_t h = 0; h < n_heads; ++h) {
    float* lo = x + h * head_dim;  // dims [0, half) pair with [half, head_dim)
    float* hi = lo + half;
    size_t j = 0;
    for (; j + N <= half; j += N) {
      const auto x0 = hn::LoadU(d, lo + j), x1 = hn::LoadU(d, hi + j);
      const auto c = hn::LoadU(d, cs + j), s = hn::LoadU(d, sn + j);
      hn::StoreU(hn::NegMulAdd(x1, s, hn::Mul(x0, c)), d, lo + j);
      hn::StoreU(hn::MulAdd(x0, s, hn::Mul(x1, c)), d, hi + j);
    }
    for (; j < half; ++j) {
      const float x0 = lo[j], x1 = hi[j];
      lo[j] = x0 * cs[j] - x1 * sn[j];
      hi[j] = x1 * cs[j] + x0 * sn[j];
    }
  }
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
