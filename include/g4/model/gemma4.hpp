// Gemma4: the Gemma 4 text decoder (spec sections 1 and 8). It holds the weights (views into the checkpoint,
// used in place) plus f32 copies of the small vectors (norms, layer scalars, RoPE tables), and runs forward
// passes over a Sequence (KV cache + position). Prefill and decode are the same code: a chunk of n tokens
// (n = 1 for decode) goes through every layer; longer inputs are split into chunks of at most max_chunk, which
// gives the same result as one pass because every chunk's keys are written before its queries attend.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/core/row_groups.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/model/config.hpp"
#include "g4/model/decoder_layer.hpp"
#include "g4/model/kv_cache.hpp"
#include "g4/model/sequence.hpp"
#include "g4/model/weights.hpp"

namespace g4 {

// What to run. Token rows are embedded and scaled by sqrt(hidden); a row with soft_index[i] >= 0 takes row
// soft_index[i] of soft_embeddings unscaled instead (image and audio soft tokens). block_id[i] >= 0 marks image
// blocks: on sliding layers a token of a block also sees the later tokens of its block (spec 2.5).
struct ForwardInput {
  std::span<const int32_t> tokens{};          // [n]
  std::span<const float> soft_embeddings{};   // [n_soft, hidden]
  std::span<const int32_t> soft_index{};      // [n] or empty
  std::span<const int32_t> block_id{};        // [n] or empty
};

struct ForwardOutput {
  bool all_logits = false;                    // logits for every position (else only the last)
  std::vector<float> logits;                  // [n or 1, vocab]
  std::vector<std::vector<float>>* hidden = nullptr;  // if set: n_layers + 1 entries of [n, hidden] (tests)
  std::vector<float> final_hidden;            // [n or 1, hidden] final-norm output at the logits' rows (drafter input)
};

// Whether the quantized matrices get a row-group copy (see UseRowGroups): where the kernels read one (default),
// or never, for a machine short of memory (llama.cpp's --no-repack).
enum class Repack { kWhereRead, kNone };

// Row-group copies (RowGroupCopies::Pack, `release` as there) of every projection of `layers`.
inline void PackLayers(std::vector<LayerWeights>& layers, bool release, RowGroupCopies& copies, ThreadPool& pool) {
  for (LayerWeights& lw : layers)
    for (TensorView* v : {&lw.q_proj, &lw.k_proj, &lw.v_proj, &lw.o_proj, &lw.gate_proj, &lw.up_proj, &lw.down_proj})
      copies.Pack(*v, release, pool);
}

class Gemma4 {
 public:
  Gemma4(Gemma4Config cfg, TextWeights w, ThreadPool& pool, Repack repack = Repack::kWhereRead)
      : cfg_(std::move(cfg)), w_(std::move(w)), pool_(pool),
        packs_row_groups_(repack == Repack::kWhereRead && KernelsReadRowGroups()) {
    cfg_.Validate("model config");
    Require(w_.layers.size() == static_cast<size_t>(cfg_.n_layers), "weights", "layer count differs from the config");
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    if (packs_row_groups_) UseRowGroups();
    final_norm_ = SmallTensorToF32(w_.final_norm, H);
    for (int i = 0; i < cfg_.n_layers; ++i)
      vec_.emplace_back(cfg_.layers[static_cast<size_t>(i)], w_.layers[static_cast<size_t>(i)], H);
  }

  const Gemma4Config& config() const { return cfg_; }
  const TextWeights& weights() const { return w_; }
  ThreadPool& pool() const { return pool_; }
  // Whether the quantized matrices were given row-group copies (Repack, and the kernels of this CPU).
  bool packs_row_groups() const { return packs_row_groups_; }

  Sequence NewSequence(size_t context, size_t max_chunk = 512, Type kv_type = Type::F32) const {
    return Sequence(cfg_, context, max_chunk, kv_type);
  }

  // Runs the input through the model at positions seq.pos.., appending to the cache.
  void Forward(Sequence& seq, const ForwardInput& in, ForwardOutput& out) const {
    const size_t n = in.tokens.size();
    Require(n > 0, "forward", "empty input");
    Require(in.soft_index.empty() || in.soft_index.size() == n, "forward", "soft_index length differs from the token count");
    Require(in.block_id.empty() || in.block_id.size() == n, "forward", "block_id length differs from the token count");
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    Require(in.soft_embeddings.size() % H == 0, "forward", "soft embeddings are not rows of the hidden size " + std::to_string(H));
    const size_t n_soft = in.soft_embeddings.size() / H;
    for (int32_t i : in.soft_index)
      Require(i < 0 || static_cast<size_t>(i) < n_soft, "forward",
              "soft index " + std::to_string(i) + " outside the " + std::to_string(n_soft) + " soft embedding rows");
    Require(static_cast<uint64_t>(seq.pos()) + n <= seq.cache.context(), "prompt",
            std::to_string(seq.pos() + static_cast<int64_t>(n)) + " tokens exceed the context of " +
                std::to_string(seq.cache.context()));
    const size_t V = static_cast<size_t>(cfg_.vocab_size);
    out.logits.assign(out.all_logits ? n * V : V, 0.0f);
    out.final_hidden.assign(out.all_logits ? n * static_cast<size_t>(cfg_.hidden_size) : static_cast<size_t>(cfg_.hidden_size), 0.0f);
    if (out.hidden) out.hidden->assign(static_cast<size_t>(cfg_.n_layers) + 1, {});

    // Chunks never split an image block: its tokens must all be in the cache before any of them attends.
    const size_t max_chunk = seq.cache.max_chunk();
    for (size_t begin = 0; begin < n;) {
      size_t end = std::min(n, begin + max_chunk);
      if (!in.block_id.empty() && end < n && in.block_id[end] >= 0 && in.block_id[end] == in.block_id[end - 1]) {
        size_t b = end;
        while (b > begin && in.block_id[b - 1] == in.block_id[end]) --b;
        Require(b > begin, "image", "an image block of more tokens than the chunk size " + std::to_string(max_chunk));
        end = b;
      }
      ForwardChunk(seq, in, begin, end, out);
      begin = end;
    }
  }

  // Scaled embedding of one token (the drafter needs the target's): [hidden].
  void EmbedToken(int32_t tok, float* dst) const {
    Require(tok >= 0 && tok < cfg_.vocab_size, "tokens",
            "token id " + std::to_string(tok) + " outside the vocabulary of " + std::to_string(cfg_.vocab_size));
    DequantizeTensorRow(w_.embed, tok, dst);
    const float s = cfg_.embed_scale();
    for (int i = 0; i < cfg_.hidden_size; ++i) dst[i] *= s;
  }

 private:
  // Quantized matrices (and the tied head) get a row-group copy that the fused kernels stream instead of
  // transposing 16 rows in registers (one Zen 4 core, Q4_0: 13 -> 5.9 ns per 32 x 16 block for one token,
  // 28 -> 19.5 for five). It costs their size again in memory. Where the originals are pages of a checkpoint's
  // mapping and no AMX prefill reads them, this process's copies of those pages are dropped once packed (they
  // stay in the page cache, and the embedding rows read later fault back in); memory that is not a file
  // mapping, such as weights built in memory, is kept.
  void UseRowGroups() {
    const bool release = !AmxUsable();
    row_groups_.Pack(w_.embed, release, pool_);
    PackLayers(w_.layers, release, row_groups_, pool_);
  }

  // Tokens [begin, end) of the input, at positions seq.pos...
  void ForwardChunk(Sequence& seq, const ForwardInput& in, size_t begin, size_t end, ForwardOutput& out) const {
    const size_t n = end - begin;
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    const size_t V = static_cast<size_t>(cfg_.vocab_size), NH = static_cast<size_t>(cfg_.n_heads);
    const int64_t pos0 = seq.pos_;

    std::vector<float> x(n * H);  // [n, H] residual stream
    for (size_t i = 0; i < n; ++i) {
      if (!in.soft_index.empty() && in.soft_index[begin + i] >= 0) {
        std::copy_n(in.soft_embeddings.data() + static_cast<size_t>(in.soft_index[begin + i]) * H, H, x.data() + i * H);
      } else {
        EmbedToken(in.tokens[begin + i], x.data() + i * H);
      }
    }

    std::vector<float> xn(n * H);
    std::vector<int64_t> pos(n), key_begin(n), key_end(n);
    for (size_t i = 0; i < n; ++i) pos[i] = pos0 + static_cast<int64_t>(i);
    for (int L = 0; L < cfg_.n_layers; ++L) {
      if (out.hidden) AppendRows(out.hidden->at(static_cast<size_t>(L)), x, n * H);
      const LayerConfig& lc = cfg_.layers[static_cast<size_t>(L)];
      const LayerWeights& lw = w_.layers[static_cast<size_t>(L)];
      const LayerVectors& lv = vec_[static_cast<size_t>(L)];
      const size_t hd = static_cast<size_t>(lc.head_dim);
      LayerKV& kv = seq.cache.layer(L);

      RMSNorm(x.data(), lv.attn_norm.data(), cfg_.rms_eps, n, H, xn.data());
      float* q = LayerScratch::Sized(seq.scratch.q, n * NH * hd);     // [n, NH, hd]
      float* a = LayerScratch::Sized(seq.scratch.attn, n * NH * hd);  // [n, NH, hd]
      ProjectQueries(lc, lw, lv, cfg_.rms_eps, NH, xn.data(), n, pos.data(), q, pool_);
      if (seq.cache.owns(L)) AppendKeysValues(lc, lw, lv, xn.data(), n, pos.data(), kv, seq.scratch);
      KeyRanges(lc, in, begin, n, pos0, key_begin.data(), key_end.data());
      AttendCache(q, n, NH, kv, key_begin.data(), key_end.data(), a, pool_);
      FinishLayer(cfg_, lw, lv, a, n, x.data(), seq.scratch, pool_);
    }
    seq.pos_ += static_cast<int64_t>(n);

    // Final norm and the tied output head, for every row or only the input's last.
    const bool last_chunk = end == in.tokens.size();
    RMSNorm(x.data(), final_norm_.data(), cfg_.rms_eps, n, H, xn.data());
    if (out.hidden) AppendRows(out.hidden->back(), xn, n * H);
    if (out.all_logits) std::copy(xn.begin(), xn.end(), out.final_hidden.begin() + static_cast<std::ptrdiff_t>(begin * H));
    else if (last_chunk) std::copy(xn.end() - static_cast<std::ptrdiff_t>(H), xn.end(), out.final_hidden.begin());
    if (out.all_logits) {
      float* dst = out.logits.data() + begin * V;
      MatMul(w_.embed, xn.data(), n, dst, pool_);
      if (cfg_.final_softcap > 0) Softcap(dst, n * V, cfg_.final_softcap);
    } else if (last_chunk) {
      MatMul(w_.embed, xn.data() + (n - 1) * H, 1, out.logits.data(), pool_);
      if (cfg_.final_softcap > 0) Softcap(out.logits.data(), V, cfg_.final_softcap);
    }
  }

  // K = RoPE(k_norm(x Wk^T)); V = rms(x Wv^T), or rms of the raw K projection on k_eq_v layers; both into the cache.
  void AppendKeysValues(const LayerConfig& lc, const LayerWeights& lw, const LayerVectors& lv, const float* xn, size_t n,
                        const int64_t* pos, LayerKV& kv, LayerScratch& s) const {
    const size_t hd = static_cast<size_t>(lc.head_dim), nkv = static_cast<size_t>(lc.n_kv_heads);
    float* k = LayerScratch::Sized(s.k, n * nkv * hd);  // [n, nkv, hd]
    float* v = LayerScratch::Sized(s.v, n * nkv * hd);  // [n, nkv, hd]
    MatMul(lw.k_proj, xn, n, k, pool_);
    if (lc.k_eq_v) std::copy_n(k, n * nkv * hd, v);  // before k_norm and RoPE (spec 8.3)
    else MatMul(lw.v_proj, xn, n, v, pool_);
    RMSNorm(k, lv.k_norm.data(), cfg_.rms_eps, n * nkv, hd, k);
    RMSNorm(v, nullptr, cfg_.rms_eps, n * nkv, hd, v);
    for (size_t i = 0; i < n; ++i) {
      RopeNeox(k + i * nkv * hd, nkv, hd, lv.inv_freq.data(), pos[i]);
      for (size_t h = 0; h < nkv; ++h) kv.Store(h, pos[i], k + (i * nkv + h) * hd, v + (i * nkv + h) * hd);
    }
    kv.MarkWritten(pos[0], pos[n - 1] + 1);
  }

  // Visible key positions of each query (spec 1.4, 2.5): full layers causal; sliding layers
  // (causal OR same image block) AND key > query - W.
  void KeyRanges(const LayerConfig& lc, const ForwardInput& in, size_t begin, size_t n, int64_t pos0,
                 int64_t* key_begin, int64_t* key_end) const {
    const int64_t W = cfg_.sliding_window;
    for (size_t i = 0; i < n; ++i) {
      const int64_t q = pos0 + static_cast<int64_t>(i);
      if (lc.kind == AttentionKind::kFull) {
        key_begin[i] = 0;
        key_end[i] = q + 1;
        continue;
      }
      int64_t last = q;
      if (!in.block_id.empty() && in.block_id[begin + i] >= 0) {
        size_t j = begin + i;
        while (j + 1 < begin + n && in.block_id[j + 1] == in.block_id[begin + i]) ++j;
        last = pos0 + static_cast<int64_t>(j - begin);
      }
      key_begin[i] = std::max<int64_t>(0, q - W + 1);
      key_end[i] = last + 1;
    }
  }

  static void AppendRows(std::vector<float>& dst, const std::vector<float>& src, size_t count) {
    dst.insert(dst.end(), src.begin(), src.begin() + static_cast<std::ptrdiff_t>(count));
  }

  Gemma4Config cfg_;
  TextWeights w_;
  ThreadPool& pool_;
  bool packs_row_groups_;
  RowGroupCopies row_groups_;  // what w_'s packed views point at
  std::vector<float> final_norm_;
  std::vector<LayerVectors> vec_;
};

}  // namespace g4
