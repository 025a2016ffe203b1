// The MTP drafter (spec section 4): a small Gemma 4 decoder whose layers have queries only and attend to the
// TARGET's KV cache (sliding layers read the target's last sliding layer, the full layer its last full layer).
// One draft step:
//   x = pre_projection(cat(target_embed(tok) * sqrt(H_target), h))    // h: [H_target]
//   y = final_norm(layers(x, position P))                               // P fixed for a whole drafting round
//   logits = y E_d^T (or the centroid-masked head), h_next = post_projection(y)
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdint>
#include <numeric>
#include <vector>

#include "g4/model/decoder_layer.hpp"
#include "g4/model/gemma4.hpp"

namespace g4 {

class Drafter {
 public:
  Drafter(Gemma4Config cfg, TextWeights w, AssistantWeights aw, const Gemma4& target)
      : cfg_(std::move(cfg)), w_(std::move(w)), aw_(std::move(aw)), target_(target) {
    cfg_.Validate("drafter config");
    Require(cfg_.assistant.has_value(), "drafter", "the checkpoint is not an MTP assistant");
    const Gemma4Config& tc = target.config();
    Require(cfg_.assistant->backbone_hidden == tc.hidden_size, "drafter",
            "backbone_hidden_size " + std::to_string(cfg_.assistant->backbone_hidden) + " differs from the target's hidden size " +
                std::to_string(tc.hidden_size));
    Require(cfg_.vocab_size == tc.vocab_size, "drafter", "vocabulary size differs from the target's");
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    final_norm_ = SmallTensorToF32(w_.final_norm, H);
    for (int i = 0; i < cfg_.n_layers; ++i) {
      const LayerConfig& lc = cfg_.layers[static_cast<size_t>(i)];
      const int src = tc.LastLayerOf(lc.kind);
      Require(src >= 0, "drafter", "the target has no layer of the kind drafter layer " + std::to_string(i) + " reads");
      const LayerConfig& tl = tc.layers[static_cast<size_t>(src)];
      Require(tl.head_dim == lc.head_dim && tl.n_kv_heads == lc.n_kv_heads, "drafter",
              "layer " + std::to_string(i) + " expects KV of " + std::to_string(lc.n_kv_heads) + "x" + std::to_string(lc.head_dim) +
                  " but the target's layer " + std::to_string(src) + " has " + std::to_string(tl.n_kv_heads) + "x" +
                  std::to_string(tl.head_dim));
      source_layer_.push_back(src);
      vec_.emplace_back(lc, w_.layers[static_cast<size_t>(i)], H);
    }
    if (cfg_.assistant->use_ordered_embeddings) {
      const AssistantConfig& a = *cfg_.assistant;
      Require(a.num_centroids > 0 && cfg_.vocab_size % a.num_centroids == 0, "drafter",
              std::to_string(a.num_centroids) + " centroids do not divide the vocabulary of " + std::to_string(cfg_.vocab_size));
      Require(a.centroid_top_k > 0 && a.centroid_top_k <= a.num_centroids, "drafter",
              "centroid_top_k " + std::to_string(a.centroid_top_k) + " is not in [1, " + std::to_string(a.num_centroids) +
                  "] (GGUF files do not record it: pass it explicitly)");
      Require(aw_.token_ordering.data != nullptr && aw_.centroids.data != nullptr, "drafter",
              "use_ordered_embeddings is set but the checkpoint has no centroid head (llama.cpp's converter drops it)");
      ordering_ = TokenIds(aw_.token_ordering, static_cast<size_t>(cfg_.vocab_size));
    }
    // Row-group copies where the target has them. The drafter multiplies one token at a time, which no kernel
    // reads from the originals, so their pages are released wherever they are a file's. The centroid head reads
    // rows of the embedding instead of multiplying it: that one stays as it is.
    if (target.packs_row_groups()) {
      for (TensorView* v : {&aw_.pre_projection, &aw_.post_projection, &aw_.centroids})
        row_groups_.Pack(*v, true, target.pool());
      if (!cfg_.assistant->use_ordered_embeddings) row_groups_.Pack(w_.embed, true, target.pool());
      PackLayers(w_.layers, true, row_groups_, target.pool());
    }
  }

  const Gemma4Config& config() const { return cfg_; }

  // One draft step for the newest token `tok` (not yet in the target's cache) with backbone state h [H_target],
  // at position `position`, reading the target's cache entries of positions < n_entries (sliding layers: the
  // last W + 1 of them). logits: [vocab]; h_next: [H_target].
  void Step(Sequence& target_seq, int32_t tok, std::span<const float> h, int64_t position, int64_t n_entries,
            std::vector<float>& logits, std::vector<float>& h_next) const {
    const Gemma4Config& tc = target_.config();
    const size_t HT = static_cast<size_t>(tc.hidden_size), H = static_cast<size_t>(cfg_.hidden_size);
    const size_t NH = static_cast<size_t>(cfg_.n_heads);
    Require(h.size() == HT, "drafter", "state has " + std::to_string(h.size()) + " values, expected " + std::to_string(HT));
    Require(n_entries > 0 && n_entries <= target_seq.pos(), "drafter", "no target KV to read");
    ThreadPool& pool = target_.pool();

    std::vector<float> in(2 * HT), x(H), xn(H);
    target_.EmbedToken(tok, in.data());
    std::copy(h.begin(), h.end(), in.begin() + static_cast<std::ptrdiff_t>(HT));
    MatMul(aw_.pre_projection, in.data(), 1, x.data(), pool);

    const int64_t W = tc.sliding_window;
    for (int L = 0; L < cfg_.n_layers; ++L) {
      const LayerConfig& lc = cfg_.layers[static_cast<size_t>(L)];
      const LayerWeights& lw = w_.layers[static_cast<size_t>(L)];
      const LayerVectors& lv = vec_[static_cast<size_t>(L)];
      const size_t hd = static_cast<size_t>(lc.head_dim);
      LayerKV& kv = target_seq.cache.layer(source_layer_[static_cast<size_t>(L)]);
      RMSNorm(x.data(), lv.attn_norm.data(), cfg_.rms_eps, 1, H, xn.data());
      float* q = LayerScratch::Sized(target_seq.scratch.q, NH * hd);
      float* a = LayerScratch::Sized(target_seq.scratch.attn, NH * hd);
      ProjectQueries(lc, lw, lv, cfg_.rms_eps, NH, xn.data(), 1, &position, q, pool);
      // HF's inclusive bidirectional window |q - k| <= W keeps the last W + 1 entries (spec 4.2).
      const int64_t key_end = n_entries;
      const int64_t key_begin = lc.kind == AttentionKind::kFull ? 0 : std::max<int64_t>(0, n_entries - (W + 1));
      Require(lc.kind == AttentionKind::kFull || static_cast<size_t>(key_end - key_begin) <= kv.capacity, "drafter",
              "the target's sliding cache ring is smaller than the drafter's window");
      AttendCache(q, 1, NH, kv, &key_begin, &key_end, a, pool);
      FinishLayer(cfg_, lw, lv, a, 1, x.data(), target_seq.scratch, pool);
    }
    RMSNorm(x.data(), final_norm_.data(), cfg_.rms_eps, 1, H, xn.data());
    h_next.resize(HT);
    MatMul(aw_.post_projection, xn.data(), 1, h_next.data(), pool);
    logits.resize(static_cast<size_t>(cfg_.vocab_size));
    if (cfg_.assistant->use_ordered_embeddings) CentroidLogits(xn.data(), logits.data());
    else MatMul(w_.embed, xn.data(), 1, logits.data(), pool);
  }

 private:
  // The centroid head's token ordering: I64 in safetensors, F32 holding ids in llama.cpp's GGUF.
  static std::vector<size_t> TokenIds(const TensorView& t, size_t vocab) {
    Require(static_cast<size_t>(t.shape.elements()) == vocab, t.name, "must have one entry per token");
    std::vector<size_t> ids(vocab);
    for (size_t i = 0; i < vocab; ++i) {
      double v;
      if (t.type == Type::I64) v = static_cast<double>(t.as<int64_t>()[i]);
      else if (t.type == Type::I32) v = t.as<int32_t>()[i];
      else if (t.type == Type::F32) v = t.as<float>()[i];
      else Fail(t.name, "token ordering of type " + std::string(TypeName(t.type)) + " (expected I64, I32 or F32)");
      Require(v >= 0 && v < static_cast<double>(vocab) && v == std::floor(v), t.name, "holds a value that is not a token id");
      ids[i] = static_cast<size_t>(v);
    }
    return ids;
  }

  // The ordered-embedding head: score the centroids, keep the top k clusters, score only their tokens; every
  // other token gets min(selected) - 1 (as transformers' Gemma4AssistantMaskedEmbedder).
  void CentroidLogits(const float* y, float* logits) const {
    const AssistantConfig& a = *cfg_.assistant;
    const size_t C = static_cast<size_t>(a.num_centroids), per = static_cast<size_t>(cfg_.vocab_size) / C;
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    std::vector<float> score(C);
    MatMul(aw_.centroids, y, 1, score.data(), target_.pool());
    std::vector<size_t> order(C);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + a.centroid_top_k, order.end(),
                      [&](size_t i, size_t j) { return score[i] > score[j] || (score[i] == score[j] && i < j); });
    std::vector<float> row(H);
    std::vector<std::pair<size_t, float>> selected;
    float lowest = std::numeric_limits<float>::infinity();
    for (int c = 0; c < a.centroid_top_k; ++c) {
      for (size_t j = 0; j < per; ++j) {
        const size_t tok = ordering_[order[static_cast<size_t>(c)] * per + j];
        DequantizeTensorRow(w_.embed, static_cast<int64_t>(tok), row.data());
        double d = 0;
        for (size_t i = 0; i < H; ++i) d += static_cast<double>(row[i]) * y[i];
        selected.emplace_back(tok, static_cast<float>(d));
        lowest = std::min(lowest, static_cast<float>(d));
      }
    }
    std::fill(logits, logits + cfg_.vocab_size, lowest - 1.0f);
    for (const auto& [tok, v] : selected) logits[tok] = v;
  }

  Gemma4Config cfg_;
  TextWeights w_;
  AssistantWeights aw_;
  const Gemma4& target_;
  std::vector<float> final_norm_;
  std::vector<LayerVectors> vec_;
  std::vector<int> source_layer_;
  std::vector<size_t> ordering_;  // [vocab]: cluster-major token ids
  RowGroupCopies row_groups_;     // what the packed views of w_ and aw_ point at
};

}  // namespace g4
