// The pieces of a Gemma 4 decoder layer shared by the target model and the MTP drafter (whose layers are the
// same minus K/V projections): small f32 vectors loaded once, the query path, and everything after attention
// (o_proj, post-attention norm, residual, feed-forward block, layer_scalar).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/model/config.hpp"
#include "g4/model/forward_profile.hpp"
#include "g4/model/kv_cache.hpp"
#include "g4/model/weights.hpp"

namespace g4 {

// A small tensor (norm weight, scalar) as f32, with its element count checked.
inline std::vector<float> SmallTensorToF32(const TensorView& t, size_t n) {
  Require(t.data != nullptr, t.name.empty() ? "weights" : t.name, "missing tensor");
  Require(static_cast<size_t>(t.shape.elements()) == n, t.name,
          "has " + std::to_string(t.shape.elements()) + " elements, expected " + std::to_string(n));
  std::vector<float> v(n);
  DequantizeRow(t.type, t.data, n, v.data());
  return v;
}

// Activation buffers of the layers, kept across layers and calls (a Sequence owns one). Allocated per layer, the
// feed-forward's [n, intermediate] buffers pass malloc's mmap threshold (128 KB) from 3 tokens on and are
// page-faulted in afresh every time: ~38 ms of a 5-token MTP verification step of the 12B (~10%).
struct LayerScratch {
  std::vector<float> q, attn, k, v, t, xn, gate, up;
  // b holding at least n values (grown, never shrunk; contents unspecified).
  static float* Sized(std::vector<float>& b, size_t n) {
    if (b.size() < n) b.resize(n);
    return b.data();
  }
};

struct LayerVectors {
  std::vector<float> attn_norm, post_attn_norm, ffn_norm, post_ffn_norm, q_norm, k_norm;  // k_norm empty if no K
  std::vector<float> inv_freq;  // [head_dim / 2]
  float layer_scalar = 1.0f;

  LayerVectors(const LayerConfig& lc, const LayerWeights& lw, size_t hidden) {
    const size_t hd = static_cast<size_t>(lc.head_dim);
    attn_norm = SmallTensorToF32(lw.attn_norm, hidden);
    post_attn_norm = SmallTensorToF32(lw.post_attn_norm, hidden);
    ffn_norm = SmallTensorToF32(lw.ffn_norm, hidden);
    post_ffn_norm = SmallTensorToF32(lw.post_ffn_norm, hidden);
    q_norm = SmallTensorToF32(lw.q_norm, hd);
    if (lw.k_norm.data) k_norm = SmallTensorToF32(lw.k_norm, hd);
    layer_scalar = SmallTensorToF32(lw.layer_scalar, 1)[0];
    inv_freq = lc.RopeInvFreq();
  }
};

// q [n, n_heads, head_dim] = RoPE(q_norm(x_normed Wq^T)) at positions pos[0..n).
inline void ProjectQueries(const LayerConfig& lc, const LayerWeights& lw, const LayerVectors& lv, float eps, size_t n_heads,
                           const float* x_normed, size_t n, const int64_t* pos, float* q, ThreadPool& pool,
                           ForwardProfile* prof = nullptr) {
  const size_t hd = static_cast<size_t>(lc.head_dim);
  ProfiledMatMul(prof, lw.q_proj, x_normed, n, q, pool);
  RMSNorm(q, lv.q_norm.data(), eps, n * n_heads, hd, q);
  for (size_t i = 0; i < n; ++i) RopeNeox(q + i * n_heads * hd, n_heads, hd, lv.inv_freq.data(), pos[i]);
}

// x [n, hidden] += post_attn_norm(attn Wo^T); then the feed-forward block; then x *= layer_scalar.
inline void FinishLayer(const Gemma4Config& cfg, const LayerWeights& lw, const LayerVectors& lv, const float* attn, size_t n,
                        float* x, LayerScratch& s, ThreadPool& pool, ForwardProfile* prof = nullptr) {
  const size_t H = static_cast<size_t>(cfg.hidden_size), F = static_cast<size_t>(cfg.intermediate_size);
  float* t = LayerScratch::Sized(s.t, n * H);      // [n, H]
  float* xn = LayerScratch::Sized(s.xn, n * H);    // [n, H]
  float* gate = LayerScratch::Sized(s.gate, n * F);  // [n, F]
  float* up = LayerScratch::Sized(s.up, n * F);      // [n, F]
  ProfiledMatMul(prof, lw.o_proj, attn, n, t, pool);
  RMSNorm(t, lv.post_attn_norm.data(), cfg.rms_eps, n, H, t);
  for (size_t i = 0; i < n * H; ++i) x[i] += t[i];
  RMSNorm(x, lv.ffn_norm.data(), cfg.rms_eps, n, H, xn);
  ProfiledMatMul(prof, lw.gate_proj, xn, n, gate, pool);
  ProfiledMatMul(prof, lw.up_proj, xn, n, up, pool);
  GeluTanhGate(gate, up, n * F, gate);
  ProfiledMatMul(prof, lw.down_proj, gate, n, t, pool);
  RMSNorm(t, lv.post_ffn_norm.data(), cfg.rms_eps, n, H, t);
  for (size_t i = 0; i < n * H; ++i) x[i] = (x[i] + t[i]) * lv.layer_scalar;
}

// Runs attention of q [n, n_heads, head_dim] over a layer's cache for the given key ranges.
inline void AttendCache(const float* q, size_t n, size_t n_heads, const LayerKV& kv, const int64_t* key_begin,
                        const int64_t* key_end, float* out, ThreadPool& pool) {
  for (size_t t = 0; t < n; ++t) kv.RequireHeld(key_begin[t], key_end[t], "attention");
  AttentionArgs args;
  args.q = q;
  args.n_tok = n;
  args.n_heads = n_heads;
  args.n_kv_heads = kv.n_kv_heads;
  args.head_dim = kv.head_dim;
  args.k_type = kv.k_type;
  args.v_type = kv.v_type;
  args.k = kv.k.data();
  args.v = kv.v.data();
  args.capacity = kv.capacity;
  args.key_begin = key_begin;
  args.key_end = key_end;
  args.scale = 1.0f;  // q_norm/k_norm carry the scale (spec 1.1)
  args.out = out;
  Attention(args, pool);
}

}  // namespace g4
