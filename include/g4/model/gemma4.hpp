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
#include "g4/kernels/cpu_tuning.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/model/config.hpp"
#include "g4/model/decoder_layer.hpp"
#include "g4/model/forward_profile.hpp"
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
  bool no_logits = false;                     // neither logits nor final_hidden (a prompt chunk before the last:
                                              // its head row would cost a decode row's share of the head)
  std::vector<float> logits;                  // [n or 1, vocab]
  std::vector<std::vector<float>>* hidden = nullptr;  // if set: n_layers + 1 entries of [n, hidden] (tests)
  std::vector<float> final_hidden;            // [n or 1, hidden] final-norm output at the logits' rows (drafter input)
  ForwardProfile* profile = nullptr;          // if set: the pass's time by part is added to it (benchmarks)
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

  Sequence NewSequence(size_t context, size_t max_chunk = 512, KVTypes kv_types = {}) const {
    return Sequence(cfg_, context, max_chunk, kv_types);
  }

  // Runs the input through the model at positions seq.pos().., appending to the cache.
  void Forward(Sequence& seq, const ForwardInput& in, ForwardOutput& out) const {
    const size_t n = in.tokens.size();
    CheckInput(seq, in, "forward");
    PrepareOutput(n, out);
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
      const Rows rows{&seq, &in, begin, end, &out};
      RunRows(std::span(&rows, 1));
      begin = end;
    }
  }

  // One sequence's part of a batched forward pass: at most its max_chunk tokens (one chunk).
  struct BatchEntry {
    Sequence* seq = nullptr;
    ForwardInput in;
    ForwardOutput* out = nullptr;
  };
  // Several sequences in one pass: every projection, the MLP and the output head run once over all their rows (the
  // weights stream once per step), attention runs per sequence over its own cache. Each entry gives the results
  // Forward would give it alone. Decode steps (one token), prefill chunks and speculative verifications mix freely.
  void ForwardBatch(std::span<const BatchEntry> batch) const {
    std::vector<Rows> rows;
    for (size_t e = 0; e < batch.size(); ++e) {
      const BatchEntry& b = batch[e];
      const std::string where = "batch entry " + std::to_string(e);
      Require(b.seq != nullptr && b.out != nullptr, where, "no sequence or output");
      Require(b.out->hidden == nullptr, where, "per-layer hidden states are for single-sequence Forward");
      for (size_t j = 0; j < e; ++j) Require(batch[j].seq != b.seq, where, "the same sequence twice in one batch");
      CheckInput(*b.seq, b.in, where);
      Require(b.in.tokens.size() <= b.seq->cache.max_chunk(), where,
              std::to_string(b.in.tokens.size()) + " tokens exceed the sequence's chunk of " + std::to_string(b.seq->cache.max_chunk()));
      PrepareOutput(b.in.tokens.size(), *b.out);
      rows.push_back({b.seq, &b.in, 0, b.in.tokens.size(), b.out});
    }
    if (!rows.empty()) RunRows(rows);
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

  // Tokens [begin, end) of one sequence's input, at positions seq->pos()...
  struct Rows {
    Sequence* seq;
    const ForwardInput* in;
    size_t begin, end;
    ForwardOutput* out;
    size_t n() const { return end - begin; }
  };

  void CheckInput(const Sequence& seq, const ForwardInput& in, const std::string& where) const {
    const size_t n = in.tokens.size();
    Require(n > 0, where, "empty input");
    Require(seq.cache.n_layers() == cfg_.n_layers, where, "a sequence of another model");
    Require(in.soft_index.empty() || in.soft_index.size() == n, where, "soft_index length differs from the token count");
    Require(in.block_id.empty() || in.block_id.size() == n, where, "block_id length differs from the token count");
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    Require(in.soft_embeddings.size() % H == 0, where, "soft embeddings are not rows of the hidden size " + std::to_string(H));
    const size_t n_soft = in.soft_embeddings.size() / H;
    for (int32_t i : in.soft_index)
      if (i >= 0 && static_cast<size_t>(i) >= n_soft)
        Fail(where, "soft index " + std::to_string(i) + " outside the " + std::to_string(n_soft) + " soft embedding rows");
    Require(static_cast<uint64_t>(seq.pos()) + n <= seq.cache.context(), "prompt",
            std::to_string(seq.pos() + static_cast<int64_t>(n)) + " tokens exceed the context of " +
                std::to_string(seq.cache.context()));
  }

  void PrepareOutput(size_t n, ForwardOutput& out) const {
    const size_t V = static_cast<size_t>(cfg_.vocab_size), H = static_cast<size_t>(cfg_.hidden_size);
    const size_t rows = out.no_logits ? 0 : out.all_logits ? n : 1;
    out.logits.assign(rows * V, 0.0f);
    out.final_hidden.assign(rows * H, 0.0f);
    if (out.hidden) out.hidden->assign(static_cast<size_t>(cfg_.n_layers) + 1, {});
  }

  // Every part's rows through every layer as one block of N rows; attention per part over its own cache.
  void RunRows(std::span<const Rows> parts) const {
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    const size_t V = static_cast<size_t>(cfg_.vocab_size), NH = static_cast<size_t>(cfg_.n_heads);
    std::vector<size_t> row0(parts.size() + 1, 0);  // part p's rows are [row0[p], row0[p + 1])
    for (size_t p = 0; p < parts.size(); ++p) row0[p + 1] = row0[p] + parts[p].n();
    const size_t N = row0.back();
    LayerScratch& scratch = parts[0].seq->scratch;  // the block's buffers: parts run one after another
    ForwardProfile* prof = parts[0].out->profile;
    if (prof) prof->Start();

    std::vector<float> x(N * H);  // [N, H] residual stream
    std::vector<int64_t> pos(N), key_begin(N), key_end(N);
    for (size_t p = 0; p < parts.size(); ++p) {
      const Rows& r = parts[p];
      for (size_t i = 0; i < r.n(); ++i) {
        const size_t row = row0[p] + i, at = r.begin + i;
        pos[row] = r.seq->pos_ + static_cast<int64_t>(i);
        if (!r.in->soft_index.empty() && r.in->soft_index[at] >= 0) {
          std::copy_n(r.in->soft_embeddings.data() + static_cast<size_t>(r.in->soft_index[at]) * H, H, x.data() + row * H);
        } else {
          EmbedToken(r.in->tokens[at], x.data() + row * H);
        }
      }
    }

    std::vector<float> xn(N * H);
    ForwardOutput& first_out = *parts[0].out;  // hidden states are only asked of single-sequence Forward
    for (int L = 0; L < cfg_.n_layers; ++L) {
      if (first_out.hidden) AppendRows(first_out.hidden->at(static_cast<size_t>(L)), x, N * H);
      const LayerConfig& lc = cfg_.layers[static_cast<size_t>(L)];
      const LayerWeights& lw = w_.layers[static_cast<size_t>(L)];
      const LayerVectors& lv = vec_[static_cast<size_t>(L)];
      const size_t hd = static_cast<size_t>(lc.head_dim);

      RMSNorm(x.data(), lv.attn_norm.data(), cfg_.rms_eps, N, H, xn.data());
      float* q = LayerScratch::Sized(scratch.q, N * NH * hd);     // [N, NH, hd]
      float* a = LayerScratch::Sized(scratch.attn, N * NH * hd);  // [N, NH, hd]
      ProjectQueries(lc, lw, lv, cfg_.rms_eps, NH, xn.data(), N, pos.data(), q, pool_, prof);
      if (parts[0].seq->cache.owns(L)) AppendKeysValues(L, lc, lw, lv, xn.data(), parts, row0, pos.data(), scratch, prof);
      for (size_t p = 0; p < parts.size(); ++p) {
        const Rows& r = parts[p];
        const size_t at = row0[p];
        KeyRanges(lc, *r.in, r.begin, r.n(), r.seq->pos_, key_begin.data() + at, key_end.data() + at);
        if (prof) prof->Open();
        AttendCache(q + at * NH * hd, r.n(), NH, r.seq->cache.layer(L), key_begin.data() + at, key_end.data() + at,
                    a + at * NH * hd, pool_);
        if (prof) prof->Close(prof->attention_s);
      }
      FinishLayer(cfg_, lw, lv, a, N, x.data(), scratch, pool_, prof);
    }
    for (const Rows& r : parts) r.seq->pos_ += static_cast<int64_t>(r.n());

    // Final norm, then the tied output head once over every row that needs logits: all of a part's rows, or the
    // last row of an input's last chunk.
    RMSNorm(x.data(), final_norm_.data(), cfg_.rms_eps, N, H, xn.data());
    if (first_out.hidden) AppendRows(first_out.hidden->back(), xn, N * H);
    std::vector<float> head_in;
    std::vector<float*> head_out;
    for (size_t p = 0; p < parts.size(); ++p) {
      const Rows& r = parts[p];
      ForwardOutput& out = *r.out;
      const float* rows = xn.data() + row0[p] * H;
      if (out.no_logits) continue;
      if (out.all_logits) {
        std::copy_n(rows, r.n() * H, out.final_hidden.begin() + static_cast<std::ptrdiff_t>(r.begin * H));
        head_in.insert(head_in.end(), rows, rows + r.n() * H);
        for (size_t i = 0; i < r.n(); ++i) head_out.push_back(out.logits.data() + (r.begin + i) * V);
      } else if (r.end == r.in->tokens.size()) {
        std::copy_n(rows + (r.n() - 1) * H, H, out.final_hidden.begin());
        head_in.insert(head_in.end(), rows + (r.n() - 1) * H, rows + r.n() * H);
        head_out.push_back(out.logits.data());
      }
    }
    if (head_out.empty()) return;
    const size_t M = head_out.size();
    float* logits = head_out.size() == 1 ? head_out[0] : LayerScratch::Sized(scratch.t, M * V);
    if (prof) prof->Open();
    MatMul(w_.embed, head_in.data(), M, logits, pool_);
    if (prof) prof->Close(prof->head_s);
    if (cfg_.final_softcap > 0) Softcap(logits, M * V, cfg_.final_softcap);
    if (prof) prof->Close(prof->softcap_s);
    if (M > 1)
      for (size_t m = 0; m < M; ++m) std::copy_n(logits + m * V, V, head_out[m]);
    if (prof) prof->Open();  // the copies go to rest
  }

  // K = RoPE(k_norm(x Wk^T)); V = rms(x Wv^T), or rms of the raw K projection on k_eq_v layers; projected for all
  // N rows at once, then each part's rows into its own cache.
  void AppendKeysValues(int L, const LayerConfig& lc, const LayerWeights& lw, const LayerVectors& lv, const float* xn,
                        std::span<const Rows> parts, std::span<const size_t> row0, const int64_t* pos, LayerScratch& s,
                        ForwardProfile* prof) const {
    const size_t n = row0.back();
    const size_t hd = static_cast<size_t>(lc.head_dim), nkv = static_cast<size_t>(lc.n_kv_heads);
    float* k = LayerScratch::Sized(s.k, n * nkv * hd);  // [n, nkv, hd]
    float* v = LayerScratch::Sized(s.v, n * nkv * hd);  // [n, nkv, hd]
    ProfiledMatMul(prof, lw.k_proj, xn, n, k, pool_);
    if (lc.k_eq_v) std::copy_n(k, n * nkv * hd, v);  // before k_norm and RoPE (spec 8.3)
    else ProfiledMatMul(prof, lw.v_proj, xn, n, v, pool_);
    RMSNorm(k, lv.k_norm.data(), cfg_.rms_eps, n * nkv, hd, k);
    RMSNorm(v, nullptr, cfg_.rms_eps, n * nkv, hd, v);
    for (size_t p = 0; p < parts.size(); ++p) {
      LayerKV& kv = parts[p].seq->cache.layer(L);
      for (size_t i = row0[p]; i < row0[p + 1]; ++i) {
        RopeNeox(k + i * nkv * hd, nkv, hd, lv.inv_freq.data(), pos[i]);
        for (size_t h = 0; h < nkv; ++h) kv.Store(h, pos[i], k + (i * nkv + h) * hd, v + (i * nkv + h) * hd);
      }
      kv.MarkWritten(pos[row0[p]], pos[row0[p + 1] - 1] + 1);
    }
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
