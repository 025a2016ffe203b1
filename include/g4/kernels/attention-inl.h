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
#include <type_traits>
#include <vector>

#include <hwy/highway.h>

#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"
#include "g4/kernels/activations-inl.h"
#include "g4/kernels/ops.hpp"

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// y = y * scale over n values.
HWY_INLINE void Scale(float* y, float scale, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, y + i), hn::Set(d, scale)), d, y + i);
  for (; i < n; ++i) y[i] *= scale;
}

// Row `pos` of a K or V plane of one KV head, as f32: F32 rows in place, F16 rows converted into `buf`.
HWY_INLINE const float* KVRow(const AttentionArgs& a, const void* plane, size_t kv_head, int64_t pos, float* buf) {
  const size_t at = (kv_head * a.capacity + static_cast<size_t>(pos) % a.capacity) * a.head_dim;
  if (a.kv_type == Type::F32) return static_cast<const float*>(plane) + at;
  const hwy::float16_t* src = static_cast<const hwy::float16_t*>(plane) + at;
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
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
constexpr size_t kKeyChunk = 64;    // keys per online-softmax step
constexpr size_t kQueryTile = 4;    // queries sharing each load of a key or value vector

// s[i][j0 + j] = scale q[i] . k[j] for kQ queries x kK keys: kQ kK independent accumulators (one chain of
// multiply-adds would wait on each one's latency: 4 cycles), each load of a key feeds kQ multiply-adds and
// each load of a query kK.
template <size_t kQ, size_t kK>
HWY_INLINE void DotTile(const float* const* q, const float* const* k, size_t hd, float scale, float (*s)[kKeyChunk],
                        size_t j0) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[kQ][kK];
  for (size_t i = 0; i < kQ; ++i)
    for (size_t j = 0; j < kK; ++j) acc[i][j] = hn::Zero(d);
  size_t c = 0;
  for (; c + N <= hd; c += N) {
    VF kv[kK];
    for (size_t j = 0; j < kK; ++j) kv[j] = hn::LoadU(d, k[j] + c);
    for (size_t i = 0; i < kQ; ++i) {
      const VF qv = hn::LoadU(d, q[i] + c);
      for (size_t j = 0; j < kK; ++j) acc[i][j] = hn::MulAdd(qv, kv[j], acc[i][j]);
    }
  }
  for (size_t i = 0; i < kQ; ++i)
    for (size_t j = 0; j < kK; ++j) {
      float sum = hn::GetLane(hn::SumOfLanes(d, acc[i][j]));
      for (size_t r = c; r < hd; ++r) sum += q[i][r] * k[j][r];
      s[i][j0 + j] = sum * scale;
    }
}

// Scaled scores of kQ queries against n_keys keys (a multiple of kK).
template <size_t kQ, size_t kK>
HWY_INLINE void ScoreQueries(const float* const* q, const float* const* k, size_t n_keys, size_t hd, float scale,
                             float (*s)[kKeyChunk]) {
  for (size_t j = 0; j < n_keys; j += kK) DotTile<kQ, kK>(q, k + j, hd, scale, s, j);
}

// out[i][c0 .. c0 + kCols N) += sum_j p[i][j] v[j][...] for kQ queries: kQ x kCols accumulators stay in
// registers across the chunk's keys, and each load of a value vector feeds kQ multiply-adds.
template <size_t kQ, size_t kCols>
HWY_INLINE void AccumulateValues(float* const* out, const float (*const* p)[kKeyChunk], const float* const* v,
                                 size_t n, size_t c0) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[kQ][kCols];
  for (size_t i = 0; i < kQ; ++i)
    for (size_t c = 0; c < kCols; ++c) acc[i][c] = hn::LoadU(d, out[i] + c0 + c * N);
  for (size_t j = 0; j < n; ++j) {
    VF vv[kCols];
    for (size_t c = 0; c < kCols; ++c) vv[c] = hn::LoadU(d, v[j] + c0 + c * N);
    for (size_t i = 0; i < kQ; ++i) {
      const VF pij = hn::Set(d, (*p[i])[j]);
      for (size_t c = 0; c < kCols; ++c) acc[i][c] = hn::MulAdd(pij, vv[c], acc[i][c]);
    }
  }
  for (size_t i = 0; i < kQ; ++i)
    for (size_t c = 0; c < kCols; ++c) hn::StoreU(acc[i][c], d, out[i] + c0 + c * N);
}

// All head_dim columns of kQ queries: blocks of 4 vectors, then single vectors, then scalar columns.
// One query alone gets 8 column vectors, so that it too has 8 independent accumulator chains.
template <size_t kQ>
HWY_INLINE void AccumulateValueRows(float* const* out, const float (*const* p)[kKeyChunk], const float* const* v,
                                    size_t n, size_t hd) {
  constexpr size_t kBlock = kQ == 1 ? 8 : 4;
  const size_t N = hn::Lanes(DF());
  size_t c0 = 0;
  for (; c0 + kBlock * N <= hd; c0 += kBlock * N) AccumulateValues<kQ, kBlock>(out, p, v, n, c0);
  for (; c0 + N <= hd; c0 += N) AccumulateValues<kQ, 1>(out, p, v, n, c0);
  for (; c0 < hd; ++c0)
    for (size_t i = 0; i < kQ; ++i)
      for (size_t j = 0; j < n; ++j) out[i][c0] += (*p[i])[j] * v[j][c0];
}

// f(std::integral_constant<size_t, kQ>, i) for the queries [i, i + kQ) of nq: tiles of kQueryTile, then one
// tile of the 1..3 left.
template <class F>
HWY_INLINE void ForQueryTiles(size_t nq, F&& f) {
  size_t i = 0;
  for (; i + kQueryTile <= nq; i += kQueryTile) f(std::integral_constant<size_t, kQueryTile>(), i);
  switch (nq - i) {
    case 3: f(std::integral_constant<size_t, 3>(), i); break;
    case 2: f(std::integral_constant<size_t, 2>(), i); break;
    case 1: f(std::integral_constant<size_t, 1>(), i); break;
    default: break;
  }
}

// Tokens [t0, t0 + nt) x query heads [h0, h0 + gs), all on KV head kv_head, in one pass over the union of
// their key ranges (each query skips the keys outside its own range): out = softmax(scale * q.K) V.
// Verifying k drafts (k + 1 tokens) or a prefill chunk thus reads the cache once, not once per token.
// kbuf, vbuf: kKeyChunk x head_dim floats each, for F16 caches converted a chunk at a time.
HWY_INLINE void AttendQueryBlock(const AttentionArgs& a, size_t t0, size_t nt, size_t kv_head, size_t h0, size_t gs,
                                 float* kbuf, float* vbuf) {
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  const size_t hd = a.head_dim, nq = nt * gs;
  const float* q[kMaxQueries];
  float* out[kMaxQueries];
  int64_t begin[kMaxQueries], end[kMaxQueries];
  float scores[kMaxQueries][kKeyChunk], m[kMaxQueries], l[kMaxQueries];
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
  const float* k[kKeyChunk];
  const float* v[kKeyChunk];
  for (int64_t p0 = all_begin; p0 < all_end; p0 += static_cast<int64_t>(kKeyChunk)) {
    const size_t n = static_cast<size_t>(std::min(static_cast<int64_t>(kKeyChunk), all_end - p0));
    const bool convert = a.kv_type != Type::F32;
    for (size_t j = 0; j < n; ++j) {
      k[j] = KVRow(a, a.k, kv_head, p0 + static_cast<int64_t>(j), convert ? kbuf + j * hd : nullptr);
      v[j] = KVRow(a, a.v, kv_head, p0 + static_cast<int64_t>(j), convert ? vbuf + j * hd : nullptr);
    }
    // Scores in tiles of 4 queries x 2 keys, the 1-3 queries left in tiles of 4 keys; the keys are padded to a
    // multiple of 4 with the chunk's last (those scores are computed and never read).
    const size_t n4 = (n + 3) / 4 * 4;
    for (size_t j = n; j < n4; ++j) k[j] = k[n - 1];
    ForQueryTiles(nq, [&](auto tile_queries, size_t i) {
      constexpr size_t kQ = decltype(tile_queries)::value;
      ScoreQueries<kQ, kQ == kQueryTile ? 2 : 4>(q + i, k, n4, hd, a.scale, scores + i);
    });
    // The online-softmax step: a query's keys in this chunk are one range [jb, je), the others weigh 0; the
    // running output is rescaled once per chunk.
    for (size_t i = 0; i < nq; ++i) {
      float* s = scores[i];
      const size_t jb = static_cast<size_t>(std::clamp<int64_t>(begin[i] - p0, 0, static_cast<int64_t>(n)));
      const size_t je = static_cast<size_t>(std::clamp<int64_t>(end[i] - p0, static_cast<int64_t>(jb), static_cast<int64_t>(n)));
      if (jb < je) {
        const float m_new = std::max(m[i], MaxOfValues(s + jb, je - jb));
        if (m_new != m[i]) {
          const float correction = std::exp(m[i] - m_new);  // 0 on the first keys (m = -inf)
          l[i] *= correction;
          if (l[i] > 0.0f) Scale(out[i], correction, hd);
          m[i] = m_new;
        }
        l[i] += ExpShiftedSum(s + jb, je - jb, m[i]);
      }
      std::fill(s, s + jb, 0.0f);
      std::fill(s + je, s + n, 0.0f);
    }
    const float(*p[kMaxQueries])[kKeyChunk];
    for (size_t i = 0; i < nq; ++i) p[i] = &scores[i];
    ForQueryTiles(nq, [&](auto tile_queries, size_t i) {
      AccumulateValueRows<decltype(tile_queries)::value>(out + i, p + i, v, n, hd);
    });
  }
  for (size_t i = 0; i < nq; ++i)
    if (l[i] > 0.0f) Scale(out[i], 1.0f / l[i], hd);
}

void AttentionHeads(const AttentionArgs& a, ThreadPool& pool) {
  const size_t group = a.n_heads / a.n_kv_heads;
  const size_t n_sub = (group + kMaxGroup - 1) / kMaxGroup;  // head groups per KV head
  const size_t per_sub = (group + n_sub - 1) / n_sub;
  const size_t tok_block = kMaxQueries / per_sub;             // tokens per pass over the keys
  const size_t n_blocks = (a.n_tok + tok_block - 1) / tok_block;
  // Per-worker chunks of K and V rows for F16 conversion.
  const size_t chunk_floats = a.kv_type == Type::F32 ? 0 : kKeyChunk * a.head_dim;
  std::vector<float> scratch(pool.size() * 2 * chunk_floats);
  pool.Run(n_blocks * a.n_kv_heads * n_sub, [&](size_t task, size_t worker) {
    const size_t block = task / (a.n_kv_heads * n_sub), rest = task % (a.n_kv_heads * n_sub);
    const size_t kv_head = rest / n_sub, sub = rest % n_sub;
    const size_t h0 = kv_head * group + sub * per_sub;
    const size_t gs = std::min(per_sub, group - sub * per_sub);
    const size_t t0 = block * tok_block, nt = std::min(tok_block, a.n_tok - t0);
    float* buf = scratch.data() + worker * 2 * chunk_floats;
    AttendQueryBlock(a, t0, nt, kv_head, h0, gs, buf, buf + chunk_floats);
  });
}

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
