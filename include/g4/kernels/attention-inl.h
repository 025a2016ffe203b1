// Per-target grouped-query attention with online softmax: one pass over each query's key range in chunks of
// kKeyChunk keys (scores of a chunk, then one rescale of the running output), f32 throughout. Parallel over
// (query, head) pairs. Toggle-guarded: g4/impl.hpp includes it once per target.
#if defined(G4_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_ATTENTION_INL_H_
#undef G4_KERNELS_ATTENTION_INL_H_
#else
#define G4_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <hwy/highway.h>

#include "g4/core/thread_pool.hpp"
#include "g4/kernels/ops.hpp"

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

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

// y = y * scale + p * v over n values.
HWY_INLINE void ScaleAddScaled(float* y, float scale, float p, const float* v, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::MulAdd(hn::Set(d, p), hn::LoadU(d, v + i), hn::Mul(hn::LoadU(d, y + i), hn::Set(d, scale))), d, y + i);
  for (; i < n; ++i) y[i] = y[i] * scale + p * v[i];
}

// One query head over keys [begin, end): out = softmax(scale * q.K) V.
HWY_INLINE void AttendOneHead(const AttentionArgs& a, const float* q, const float* kb, const float* vb,
                              int64_t begin, int64_t end, float* out) {
  constexpr int64_t kKeyChunk = 64;
  const size_t hd = a.head_dim;
  float scores[kKeyChunk];
  std::fill(out, out + hd, 0.0f);
  float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
  for (int64_t p0 = begin; p0 < end; p0 += kKeyChunk) {
    const int64_t n = std::min(kKeyChunk, end - p0);
    float chunk_max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      const float* k = kb + static_cast<size_t>(p0 + j) % a.capacity * hd;
      scores[j] = DotF32(q, k, hd) * a.scale;
      chunk_max = std::max(chunk_max, scores[j]);
    }
    const float m_new = std::max(m, chunk_max);
    float correction = std::exp(m - m_new);  // 0 on the first chunk (m = -inf)
    l *= correction;
    for (int64_t j = 0; j < n; ++j) {
      const float* v = vb + static_cast<size_t>(p0 + j) % a.capacity * hd;
      const float p = std::exp(scores[j] - m_new);
      l += p;
      ScaleAddScaled(out, correction, p, v, hd);
      correction = 1.0f;
    }
    m = m_new;
  }
  if (l > 0.0f) ScaleAddScaled(out, 1.0f / l, 0.0f, out, hd);
}

void AttentionHeads(const AttentionArgs& a, ThreadPool& pool) {
  const size_t group = a.n_heads / a.n_kv_heads;
  pool.Run(a.n_tok * a.n_heads, [&](size_t task, size_t /*worker*/) {
    const size_t t = task / a.n_heads, h = task % a.n_heads;
    const size_t kv_head = h / group;
    AttendOneHead(a, a.q + (t * a.n_heads + h) * a.head_dim, a.k + kv_head * a.capacity * a.head_dim,
                  a.v + kv_head * a.capacity * a.head_dim, a.key_begin[t], a.key_end[t],
                  a.out + (t * a.n_heads + h) * a.head_dim);
  });
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
