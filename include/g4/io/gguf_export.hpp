// Writes a Checkpoint (safetensors or GGUF) as a llama.cpp-layout GGUF: `gemma4` / `gemma4-assistant` keys and
// tensor names exactly as llama.cpp's converter writes them (see tests/data/golden-gguf/README.md), so our reader
// and llama.cpp both load the result; and, for multimodal checkpoints, the `clip` mmproj file with the CHW patch
// permutation and planar position table. Matrices take the requested type; norms, biases, scalars and other 1-D
// tensors stay F32 (as llama.cpp keeps them). A matrix whose rows are not a whole number of the type's blocks
// falls back to the best type that fits, and the fallback is reported.
//
// Cost: each tensor is converted (dequantize to f32, quantize) while it is written, one at a time, so memory
// stays at one tensor (as f32: 4 GB for the 12B's embedding); time is dominated by the scalar quantizers
// (~70 ns per value for Q8_0, about twice that for K-quants, per core), so rows are spread over a thread pool.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/core/patch_order.hpp"
#include "g4/core/quantize.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf_tokenizer.hpp"
#include "g4/io/gguf_writer.hpp"
#include "g4/io/quant_mix.hpp"
#include "g4/io/tensor_names.hpp"

namespace g4 {

// What `--type` asks for: one weight type for every matrix, or llama.cpp's Q4_K_M mix.
struct QuantScheme {
  Type type = Type::F32;
  bool q4_k_m = false;
  std::string name() const { return q4_k_m ? "Q4_K_M" : std::string(TypeName(type)); }
  // llama.cpp's general.file_type (enum llama_ftype).
  uint32_t file_type() const {
    if (q4_k_m) return 15;
    switch (type) {
      case Type::F32: return 0;
      case Type::F16: return 1;
      case Type::Q4_0: return 2;
      case Type::Q8_0: return 7;
      case Type::Q4_K: return 14;  // MOSTLY_Q4_K_S: every matrix Q4_K
      case Type::Q6_K: return 18;
      case Type::BF16: return 32;
      default: return 0;
    }
  }
};

inline std::optional<QuantScheme> ParseQuantScheme(const std::string& s) {
  if (s == "Q4_K_M") return QuantScheme{Type::Q4_K, true};
  for (Type t : {Type::F32, Type::F16, Type::BF16, Type::Q8_0, Type::Q4_0, Type::Q4_K, Type::Q6_K})
    if (TypeName(t) == s) return QuantScheme{t, false};
  return std::nullopt;
}

namespace export_detail {

// The type a tensor is written in. `mix` (the text model's, null for the mmproj) places Q4_K_M's Q6_K matrices;
// `cols` is the tensor's last dim. Rows that do not fill whole blocks fall back to Q8_0 (llama.cpp takes Q5_0 for a
// Q4_K, a type we do not write) or BF16.
inline Type PickType(const QuantScheme& s, TensorKind kind, const std::string& gguf_name, int layer, const Q4KMMix* mix,
                     int64_t cols, const std::function<void(const std::string&)>& log) {
  if (kind == TensorKind::kVector) return Type::F32;
  const Type want = s.q4_k_m && mix ? mix->TypeOf(gguf_name, layer) : s.type;
  const TypeInfo info = GetTypeInfo(want);
  if (cols % static_cast<int64_t>(info.block_elems) == 0) return want;
  const Type fallback = cols % static_cast<int64_t>(kQK8_0) == 0 && info.block_elems > kQK8_0 ? Type::Q8_0 : Type::BF16;
  if (log)
    log(gguf_name + ": rows of " + std::to_string(cols) + " are not a multiple of the " + std::string(info.name) +
        " block (" + std::to_string(info.block_elems) + "); written as " + std::string(TypeName(fallback)));
  return fallback;
}

// Converts `src` (any numeric type, rows of the same length) to `type`, applying `permute` to each row's f32
// values first (identity when empty). Same-type copies without a permutation are byte-exact.
inline std::vector<std::byte> Convert(const TensorView& src, Type type, const Shape& shape,
                                      const std::function<void(std::vector<float>&)>& permute_all, ThreadPool& pool) {
  if (src.type == type && !permute_all && src.shape == shape) return std::vector<std::byte>(src.data, src.data + src.nbytes);
  std::vector<float> all(static_cast<size_t>(src.shape.elements()));
  if (src.type == Type::I32 || src.type == Type::I64) {  // token ids (the drafter's ordering), stored as F32 by llama.cpp
    const size_t w = src.type == Type::I32 ? 4 : 8;
    for (size_t i = 0; i < all.size(); ++i) {
      int64_t v = 0;
      if (w == 4) {
        int32_t v32;
        std::memcpy(&v32, src.data + i * 4, 4);
        v = v32;
      } else {
        std::memcpy(&v, src.data + i * 8, 8);
      }
      all[i] = static_cast<float>(v);
    }
  } else {
    DequantizeRow(src.type, src.data, all.size(), all.data());
  }
  if (permute_all) permute_all(all);
  std::vector<std::byte> out(TensorBytes(type, shape, src.name));
  const size_t cols = static_cast<size_t>(shape.last());
  const size_t row_bytes = out.size() / static_cast<size_t>(shape.rows() ? shape.rows() : 1);
  pool.ParallelFor(static_cast<size_t>(shape.rows()), 16, [&](size_t begin, size_t end, size_t) {
    for (size_t r = begin; r < end; ++r) QuantizeRow(type, all.data() + r * cols, cols, out.data() + r * row_bytes);
  });
  return out;
}

inline void AddTensor(GgufWriter& w, ThreadPool& pool, const std::string& name, const TensorView& src, Type type,
                      const Shape& shape, std::function<void(std::vector<float>&)> permute = {}) {
  w.AddTensor(name, type, shape, [&pool, src, type, shape, permute] { return Convert(src, type, shape, permute, pool); });
}

// The 1.0 / 1e30 frequency factors by which llama.cpp expresses proportional partial RoPE on full layers.
inline std::vector<float> RopeFreqFactors(const LayerConfig& full) {
  std::vector<float> f(static_cast<size_t>(full.head_dim / 2), 1e30f);
  const int rotated = static_cast<int>(full.rope_partial * full.head_dim / 2);
  for (int i = 0; i < rotated; ++i) f[static_cast<size_t>(i)] = 1.0f;
  return f;
}

inline std::vector<std::byte> FloatBytes(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// HF's HWC patch vector index -> llama.cpp's CHW index (patch side p): row*3p + col*3 + c -> c*p*p + row*p + col.
inline std::function<void(std::vector<float>&)> HwcToChw(int p) {
  return [p](std::vector<float>& v) { HwcToChwRows(v, p); };
}

// [posemb, 2, dim] -> [2, posemb, dim].
inline std::function<void(std::vector<float>&)> PosTableToPlanar(int64_t n_pos, int64_t dim) {
  return [n_pos, dim](std::vector<float>& v) {
    std::vector<float> out(v.size());
    for (int64_t pos = 0; pos < n_pos; ++pos)
      for (int64_t plane = 0; plane < 2; ++plane)
        for (int64_t d = 0; d < dim; ++d) out[static_cast<size_t>((plane * n_pos + pos) * dim + d)] = v[static_cast<size_t>((pos * 2 + plane) * dim + d)];
    v = std::move(out);
  };
}

}  // namespace export_detail

// The text model (or drafter) of `ck` as a GGUF at `out_path`. The tokenizer: `tokenizer` if given (e.g. from a
// tokenizer.json, see text/gguf_vocab.hpp), else the source GGUF's tokenizer.* keys verbatim.
inline void ExportModelGguf(const Checkpoint& ck, const std::string& out_path, const QuantScheme& scheme, ThreadPool& pool,
                            const std::function<void(const std::string&)>& log = {}, const GgufTokenizer* tokenizer = nullptr) {
  using namespace export_detail;
  const Gemma4Config& c = ck.config();
  const bool drafter = c.assistant.has_value();
  const std::string arch = drafter ? "gemma4-assistant" : "gemma4";
  const std::string a = arch + ".";
  GgufWriter w;
  w.Set("general.architecture", GgufValue::String(arch));
  w.Set("general.type", GgufValue::String("model"));
  w.Set("general.file_type", GgufValue::U32(scheme.file_type()));
  w.Set("general.quantization_version", GgufValue::U32(2));

  // Head dims, KV heads and RoPE must be uniform within each layer kind: GGUF states them once per kind.
  const LayerConfig* full = nullptr;
  const LayerConfig* swa = nullptr;
  for (const LayerConfig& l : c.layers) {
    const LayerConfig*& first = l.kind == AttentionKind::kFull ? full : swa;
    if (!first) first = &l;
    Require(l.head_dim == first->head_dim && l.rope_theta == first->rope_theta && l.rope_partial == first->rope_partial &&
                l.rope_proportional == first->rope_proportional,
            out_path, "layers of one kind differ in head dim or RoPE; GGUF cannot express that");
  }
  Require(full != nullptr && swa != nullptr, out_path, "gemma4 GGUF needs both sliding and full layers");
  Require(full->rope_proportional || full->rope_partial == 1.0f, out_path, "partial RoPE must be proportional for GGUF");
  Require(swa->rope_partial == 1.0f && !swa->rope_proportional, out_path, "sliding layers must use full default RoPE");
  auto u32 = [&](const std::string& k, int v) { w.Set(a + k, GgufValue::U32(static_cast<uint32_t>(v))); };
  u32("block_count", c.n_layers);
  u32("context_length", c.max_position);
  u32("embedding_length", c.hidden_size);
  u32("feed_forward_length", c.intermediate_size);
  u32("attention.head_count", c.n_heads);
  std::vector<int32_t> kv;
  for (const LayerConfig& l : c.layers) kv.push_back(l.n_kv_heads);
  if (std::all_of(kv.begin(), kv.end(), [&](int32_t x) { return x == kv[0]; })) {
    u32("attention.head_count_kv", kv[0]);
  } else {
    w.Set(a + "attention.head_count_kv", GgufValue::Array(GgufType::I32, kv));
  }
  w.Set(a + "rope.freq_base", GgufValue::F32(full->rope_theta));
  w.Set(a + "rope.freq_base_swa", GgufValue::F32(swa->rope_theta));
  w.Set(a + "attention.layer_norm_rms_epsilon", GgufValue::F32(c.rms_eps));
  u32("attention.key_length", full->head_dim);
  u32("attention.value_length", full->head_dim);
  if (c.final_softcap > 0.0f) w.Set(a + "final_logit_softcapping", GgufValue::F32(c.final_softcap));
  u32("attention.sliding_window", c.sliding_window);
  u32("attention.shared_kv_layers", c.num_kv_shared_layers);
  u32("embedding_length_per_layer_input", 0);
  std::vector<uint8_t> pattern;
  for (const LayerConfig& l : c.layers) pattern.push_back(l.kind == AttentionKind::kSliding ? 1 : 0);
  w.Set(a + "attention.sliding_window_pattern", GgufValue::Array(GgufType::BOOL, pattern));
  u32("attention.key_length_swa", swa->head_dim);
  u32("attention.value_length_swa", swa->head_dim);
  u32("rope.dimension_count", full->head_dim);
  u32("rope.dimension_count_swa", swa->head_dim);
  if (drafter) {
    u32("embedding_length_out", c.assistant->backbone_hidden);
    u32("nextn_predict_layers", c.n_layers);
  }

  // Tokenizer: the one given, or copied verbatim from a GGUF source; otherwise the special ids the config knows.
  bool have_tokenizer = tokenizer != nullptr;
  if (tokenizer) {
    SetGgufTokenizer(w, *tokenizer);
  } else if (const GgufFile* src = ck.gguf()) {
    for (const auto& [k, v] : src->metadata())
      if (k.starts_with("tokenizer.")) {
        w.Set(k, v);
        have_tokenizer = true;
      }
  }
  // The config's stop list wins over the tokenizer's: eos first, then (IT models) eot = <turn|>.
  if (c.tokens.stop_ids.size() > 1) w.Set("tokenizer.ggml.eot_token_id", GgufValue::U32(static_cast<uint32_t>(c.tokens.stop_ids[1])));
  if (!have_tokenizer) {
    w.Set("tokenizer.ggml.bos_token_id", GgufValue::U32(static_cast<uint32_t>(c.tokens.bos)));
    w.Set("tokenizer.ggml.eos_token_id", GgufValue::U32(static_cast<uint32_t>(c.tokens.eos)));
    w.Set("tokenizer.ggml.padding_token_id", GgufValue::U32(static_cast<uint32_t>(c.tokens.pad)));
    if (log) log("no GGUF tokenizer in the source: wrote bos/eos/pad ids only (llama.cpp needs tokenizer.ggml.*; media token ids are known by their pieces)");
  }

  if (full->rope_proportional) w.AddTensor(kRopeFreqsGguf, Type::F32, Shape{full->head_dim / 2}, FloatBytes(RopeFreqFactors(*full)));
  const TextWeights& t = ck.text();
  const Q4KMMix mix(c);
  auto add = [&](const std::string& name, const TensorView& src, TensorKind kind, int layer) {
    AddTensor(w, pool, name, src, PickType(scheme, kind, name, layer, &mix, src.shape.last(), log), src.shape);
  };
  add(kEmbedName.gguf, t.embed, TensorKind::kMatrix, -1);
  for (int i = 0; i < c.n_layers; ++i)
    for (const LayerTensorName& n : kLayerTensorNames) {
      const TensorView& src = t.layers[static_cast<size_t>(i)].*n.member;
      if (src.data) add("blk." + std::to_string(i) + "." + n.gguf, src, n.kind, i);
    }
  add(kFinalNormName.gguf, t.final_norm, TensorKind::kVector, -1);
  if (drafter) {
    const AssistantWeights& as = *ck.assistant();
    add(kPreProjectionName.gguf, as.pre_projection, TensorKind::kMatrix, -1);
    add(kPostProjectionName.gguf, as.post_projection, TensorKind::kMatrix, -1);
    if (as.centroids.data) {
      add(kCentroidsName.gguf, as.centroids, TensorKind::kMatrix, -1);
      AddTensor(w, pool, kTokenOrderingName.gguf, as.token_ordering, Type::F32, as.token_ordering.shape);  // ids as F32, like llama.cpp
    }
  }
  w.Write(out_path);
}

// The vision and audio embedders of `ck` as a llama.cpp mmproj (`clip`) GGUF at `out_path`.
inline void ExportMmprojGguf(const Checkpoint& ck, const std::string& out_path, const QuantScheme& scheme, ThreadPool& pool,
                             const std::function<void(const std::string&)>& log = {}) {
  using namespace export_detail;
  const Gemma4Config& c = ck.config();
  Require(c.vision || c.audio, ck.path(), "has no vision or audio embedder to write as mmproj");
  GgufWriter w;
  w.Set("general.architecture", GgufValue::String("clip"));
  w.Set("general.type", GgufValue::String("mmproj"));
  w.Set("general.file_type", GgufValue::U32(scheme.file_type()));
  w.Set("general.quantization_version", GgufValue::U32(2));
  auto add = [&](const std::string& name, const TensorView& src, TensorKind kind, const Shape& shape,
                 std::function<void(std::vector<float>&)> permute) {
    AddTensor(w, pool, name, src, PickType(scheme, kind, name, -1, nullptr, shape.last(), log), shape, std::move(permute));
  };
  if (c.vision) {
    const VisionConfig& v = *c.vision;
    Require(v.patch_px % kGemma4VisionMerge == 0, out_path, "patch size is not a multiple of the 3x3 merge");
    w.Set("clip.has_vision_encoder", GgufValue::Bool(true));
    w.Set("clip.vision.projector_type", GgufValue::String("gemma4uv"));
    w.Set("clip.vision.patch_size", GgufValue::U32(static_cast<uint32_t>(v.patch_px / kGemma4VisionMerge)));
    w.Set("clip.vision.image_size", GgufValue::U32(224));  // unused by gemma4uv; llama.cpp requires the key
    w.Set("clip.vision.embedding_length", GgufValue::U32(static_cast<uint32_t>(v.mm_embed_dim)));
    w.Set("clip.vision.projection_dim", GgufValue::U32(static_cast<uint32_t>(v.output_dim)));
    w.Set("clip.vision.feed_forward_length", GgufValue::U32(0));
    w.Set("clip.vision.block_count", GgufValue::U32(0));
    w.Set("clip.vision.attention.head_count", GgufValue::U32(0));
    w.Set("clip.vision.attention.layer_norm_epsilon", GgufValue::F32(c.rms_eps));
    w.Set("clip.vision.image_mean", GgufValue::Array(GgufType::F32, std::vector<float>{0, 0, 0}));
    w.Set("clip.vision.image_std", GgufValue::Array(GgufType::F32, std::vector<float>{1, 1, 1}));
    const VisionWeights& vw = *ck.vision();
    for (const VisionTensorName& n : kVisionTensorNames) {
      const TensorView& src = vw.*n.member;
      std::function<void(std::vector<float>&)> permute;
      const bool chw_tensor = n.member == &VisionWeights::patch_ln1_w || n.member == &VisionWeights::patch_ln1_b ||
                              n.member == &VisionWeights::patch_dense_w;
      if (chw_tensor && !vw.chw_patch_order) permute = HwcToChw(v.patch_px);
      if (n.member == &VisionWeights::pos_embedding && !vw.pos_table_planar) permute = PosTableToPlanar(v.posemb_size, v.mm_embed_dim);
      // llama.cpp keeps patch_embd in F32 (its im2col path); so do we.
      const TensorKind kind = n.member == &VisionWeights::patch_dense_w ? TensorKind::kVector : n.kind;
      add(n.gguf, src, kind, VisionTensorShape(n.member, v, true), permute);
    }
  }
  if (c.audio) {
    w.Set("clip.has_audio_encoder", GgufValue::Bool(true));
    w.Set("clip.audio.projector_type", GgufValue::String("gemma4ua"));
    w.Set("clip.audio.embedding_length", GgufValue::U32(static_cast<uint32_t>(c.audio->frame_samples)));
    w.Set("clip.audio.projection_dim", GgufValue::U32(static_cast<uint32_t>(c.audio->output_dim)));
    w.Set("clip.audio.feed_forward_length", GgufValue::U32(0));
    w.Set("clip.audio.block_count", GgufValue::U32(0));
    w.Set("clip.audio.attention.head_count", GgufValue::U32(0));
    w.Set("clip.audio.num_mel_bins", GgufValue::U32(128));  // a converter default, unused by the linear framer
    w.Set("clip.audio.attention.layer_norm_epsilon", GgufValue::F32(c.rms_eps));
    const TensorView& p = ck.audio()->projection;
    add(kAudioProjectionName.gguf, p, TensorKind::kMatrix, p.shape, {});
  }
  w.Write(out_path);
}

}  // namespace g4
