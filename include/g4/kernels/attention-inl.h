// Per-target grouped-query attention with online softmax: one pass over each query's key range in chunks of
// kKeyChunk keys (scores of a chunk, then one rescale of the running output), f32 arithmetic; K/V stored as F32 or
// F16. The query heads that share a KV head go together (up to kMaxGroup at a time), so each key and value row is
// read from memory once per group: on the 12B's full layers (16 query heads on one KV head) that is 2 reads of a
// long context's cache per token instead of 16; and up to kMaxQueries / group tokens share those reads (MTP
// verification, prefill). Parallel over (token block, KV head, head group). Toggle-guarded:
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

constexpr size_t kMaxGroup = 8;     // query heads of one KV head taken together
constexpr size_t kMaxQueries = 64;  // (token, head) queries sharing one pass over the keys

// Tokens [t0, t0 + nt) x query heads [h0, h0 + gs), all on KV head kv_head, in one pass over the union of
// their key ranges (each query skips the keys outside its own range): out = softmax(scale * q.K) V.
// Verifying k drafts (k + 1 tokens) or a prefill chunk thus reads the cache once, not once per token.
HWY_INLINE void AttendQueryBlock(const AttentionArgs& a, size_t t0, size_t nt, size_t kv_head, size_t h0, size_t gs,
                                 float* kbuf, float* vbuf) {
  constexpr int64_t kKeyChunk = 64;
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  const size_t hd = a.head_dim, nq = nt * gs;
  const float* q[kMaxQueries];
  float* out[kMaxQueries];
  int64_t begin[kMaxQueries], end[kMaxQueries];
  float scores[kMaxQueries][kKeyChunk], m[kMaxQueries], l[kMaxQueries], correction[kMaxQueries];
  int64_t all_begin = std::numeric_limits<int64_t>::max(), all_end = std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < nq; ++i) {
    const size_t t = t0 + i / gs, h = h0 + i % gs;
    q[i] = a.q + (t * a.n_heads + h) * hd;
    out[i] = a.out + (t * a.n_heads + h) * hd;
    std::fill(out[i], out[i] + hd, 0.0f);
    m[i] = kNone;
    l[i] = 0.0f;
    begin[i] = a.key_begin[t];
    end[i] = a.key_end[t];
    if (begin[i] < end[i]) all_begin = std::min(all_begin, begin[i]), all_end = std::max(all_end, end[i]);
  }
  for (int64_t p0 = all_begin; p0 < all_end; p0 += kKeyChunk) {
    const int64_t n = std::min(kKeyChunk, all_end - p0);
    for (int64_t j = 0; j < n; ++j) {
      const float* k = KVRow(a, a.k, kv_head, p0 + j, kbuf);
      for (size_t i = 0; i < nq; ++i)
        scores[i][j] = p0 + j >= begin[i] && p0 + j < end[i] ? DotF32(q[i], k, hd) * a.scale : kNone;
    }
    for (size_t i = 0; i < nq; ++i) {
      const float m_new = std::max(m[i], *std::max_element(scores[i], scores[i] + n));
      // Nothing accumulated while m is -inf; a chunk without keys for this query leaves m, so correction is 1.
      correction[i] = m_new == kNone ? 1.0f : std::exp(m[i] - m_new);
      l[i] *= correction[i];
      m[i] = m_new;
    }
    for (int64_t j = 0; j < n; ++j) {
      const float* v = KVRow(a, a.v, kv_head, p0 + j, vbuf);
      for (size_t i = 0; i < nq; ++i) {
        if (scores[i][j] == kNone) continue;
        const float p = std::exp(scores[i][j] - m[i]);
        l[i] += p;
        ScaleAddScaled(out[i], correction[i], p, v, hd);
        correction[i] = 1.0f;
      }
    }
  }
  for (size_t i = 0; i < nq; ++i)
    if (l[i] > 0.0f) ScaleAddScaled(out[i], 1.0f / l[i], 0.0f, out[i], hd);
}

void AttentionHeads(const AttentionArgs& a, ThreadPool& pool) {
  const size_t group = a.n_heads / a.n_kv_heads;
  const size_t n_sub = (group + kMaxGroup - 1) / kMaxGroup;  // head groups per KV head
  const size_t per_sub = (group + n_sub - 1) / n_sub;
  const size_t tok_block = kMaxQueries / per_sub;             // tokens per pass over the keys
  const size_t n_blocks = (a.n_tok + tok_block - 1) / tok_block;
  // Per-worker rows for F16 conversion.
  std::vector<float> scratch(pool.size() * 2 * a.head_dim);
  pool.Run(n_blocks * a.n_kv_heads * n_sub, [&](size_t task, size_t worker) {
    const size_t block = task / (a.n_kv_heads * n_sub), rest = task % (a.n_kv_heads * n_sub);
    const size_t kv_head = rest / n_sub, sub = rest % n_sub;
    const size_t h0 = kv_head * group + sub * per_sub;
    const size_t gs = std::min(per_sub, group - sub * per_sub);
    const size_t t0 = block * tok_block, nt = std::min(tok_block, a.n_tok - t0);
    float* buf = scratch.data() + worker * 2 * a.head_dim;
    AttendQueryBlock(a, t0, nt, kv_head, h0, gs, buf, buf + a.head_dim);
  });
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
