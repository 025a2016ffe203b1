// Per-target grouped-query attention with online softmax: one pass over each query's key range in chunks of
// kKeyChunk keys (scores of a chunk, then one rescale of the running output), f32 arithmetic; K/V stored as F32 or
// F16. The query heads that share a KV head go together (up to kMaxGroup at a time), so each key and value row is
// read from memory once per group: on the 12B's full layers (16 query heads on one KV head) that is 2 reads of a
// long context's cache per token instead of 16. Parallel over (query, KV head, head group). Toggle-guarded:
// g4/impl.hpp includes it once per target.
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
#include <cstring>
#include <limits>
#include <vector>

#include <hwy/highway.h>

#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/dot-inl.h"
#include "g4/kernels/ops.hpp"

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// y = y * scale + p * v over n values.
HWY_INLINE void ScaleAddScaled(float* y, float scale, float p, const float* v, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::MulAdd(hn::Set(d, p), hn::LoadU(d, v + i), hn::Mul(hn::LoadU(d, y + i), hn::Set(d, scale))), d, y + i);
  for (; i < n; ++i) y[i] = y[i] * scale + p * v[i];
}

// Row `pos` of a K or V plane of one KV head, as f32: F32 rows in place, F16 rows converted into `buf`.
HWY_INLINE const float* KVRow(const AttentionArgs& a, const void* plane, size_t kv_head, int64_t pos, float* buf) {
  const size_t at = (kv_head * a.capacity + static_cast<size_t>(pos) % a.capacity) * a.head_dim;
  if (a.kv_type == Type::F32) return static_cast<const float*>(plane) + at;
  const hwy::float16_t* src = static_cast<const hwy::float16_t*>(plane) + at;
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= a.head_dim; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, src + i)), df, buf + i);
  for (; i < a.head_dim; ++i) {
    f16 h;
    std::memcpy(&h, src + i, sizeof(h));
    buf[i] = F16ToF32(h);
  }
  return buf;
}

constexpr size_t kMaxGroup = 8;

// Query heads [h0, h0 + gs) of token t, all on KV head kv_head, over that token's key range:
// out_h = softmax(scale * q_h.K) V.
HWY_INLINE void AttendHeadGroup(const AttentionArgs& a, size_t t, size_t kv_head, size_t h0, size_t gs,
                                float* kbuf, float* vbuf) {
  constexpr int64_t kKeyChunk = 64;
  const size_t hd = a.head_dim;
  const float* q[kMaxGroup];
  float* out[kMaxGroup];
  float scores[kMaxGroup][kKeyChunk], m[kMaxGroup], l[kMaxGroup], correction[kMaxGroup];
  for (size_t h = 0; h < gs; ++h) {
    q[h] = a.q + (t * a.n_heads + h0 + h) * hd;
    out[h] = a.out + (t * a.n_heads + h0 + h) * hd;
    std::fill(out[h], out[h] + hd, 0.0f);
    m[h] = -std::numeric_limits<float>::infinity();
    l[h] = 0.0f;
  }
  const int64_t begin = a.key_begin[t], end = a.key_end[t];
  for (int64_t p0 = begin; p0 < end; p0 += kKeyChunk) {
    const int64_t n = std::min(kKeyChunk, end - p0);
    for (int64_t j = 0; j < n; ++j) {
      const float* k = KVRow(a, a.k, kv_head, p0 + j, kbuf);
      for (size_t h = 0; h < gs; ++h) scores[h][j] = DotF32(q[h], k, hd) * a.scale;
    }
    for (size_t h = 0; h < gs; ++h) {
      const float chunk_max = *std::max_element(scores[h], scores[h] + n);
      const float m_new = std::max(m[h], chunk_max);
      correction[h] = std::exp(m[h] - m_new);  // 0 on the first chunk (m = -inf)
      l[h] *= correction[h];
      m[h] = m_new;
    }
    for (int64_t j = 0; j < n; ++j) {
      const float* v = KVRow(a, a.v, kv_head, p0 + j, vbuf);
      for (size_t h = 0; h < gs; ++h) {
        const float p = std::exp(scores[h][j] - m[h]);
        l[h] += p;
        ScaleAddScaled(out[h], correction[h], p, v, hd);
        correction[h] = 1.0f;
      }
    }
  }
  for (size_t h = 0; h < gs; ++h)
    if (l[h] > 0.0f) ScaleAddScaled(out[h], 1.0f / l[h], 0.0f, out[h], hd);
}

void AttentionHeads(const AttentionArgs& a, ThreadPool& pool) {
  const size_t group = a.n_heads / a.n_kv_heads;
  const size_t n_sub = (group + kMaxGroup - 1) / kMaxGroup;  // head groups per KV head
  const size_t per_sub = (group + n_sub - 1) / n_sub;
  // Per-worker rows for F16 conversion.
  std::vector<float> scratch(pool.size() * 2 * a.head_dim);
  pool.Run(a.n_tok * a.n_kv_heads * n_sub, [&](size_t task, size_t worker) {
    const size_t t = task / (a.n_kv_heads * n_sub), rest = task % (a.n_kv_heads * n_sub);
    const size_t kv_head = rest / n_sub, sub = rest % n_sub;
    const size_t h0 = kv_head * group + sub * per_sub;
    const size_t gs = std::min(per_sub, group - sub * per_sub);
    float* buf = scratch.data() + worker * 2 * a.head_dim;
    AttendHeadGroup(a, t, kv_head, h0, gs, buf, buf + a.head_dim);
  });
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
