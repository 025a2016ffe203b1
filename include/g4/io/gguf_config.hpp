// Gemma4Config from GGUF metadata as llama.cpp's converter writes it: `gemma4.*` (target) or
// `gemma4-assistant.*` (drafter) keys in the model file, `clip.*` keys in the mmproj. What GGUF does not state
// directly is recovered from the tensors: a full layer without attn_v uses V = raw K (k_eq_v), and
// rope_freqs (1.0 for rotated pairs, 1e30 for the rest) means proportional partial RoPE on full layers.
#pragma once
#include <optional>
#include <string>

#include "g4/core/dequantize.hpp"
#include "g4/io/gguf.hpp"
#include "g4/model/config.hpp"

namespace g4 {

inline constexpr int kGemma4VisionMerge = 3;  // llama.cpp multiplies clip.vision.patch_size by the 3x3 merge

// Token id of a piece in tokenizer.ggml.tokens, or -1.
inline int FindTokenId(const GgufFile& f, const std::string& piece) {
  if (!f.Has("tokenizer.ggml.tokens")) return -1;
  const auto& tokens = f.GetStringArray("tokenizer.ggml.tokens");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == piece) return static_cast<int>(i);
  return -1;
}

inline Gemma4Config ReadGgufConfig(const GgufFile& f) {
  Gemma4Config c;
  c.architecture = f.GetString("general.architecture");
  Require(c.architecture == "gemma4" || c.architecture == "gemma4-assistant", f.path(),
          "architecture '" + c.architecture + "' is not gemma4 or gemma4-assistant");
  const std::string a = c.architecture + ".";
  auto u32 = [&](const std::string& key) { return static_cast<int>(f.GetInt(a + key, 0, INT32_MAX)); };
  c.n_layers = u32("block_count");
  Require(c.n_layers > 0 && c.n_layers <= 4096, f.path() + ": key '" + a + "block_count'", "implausible layer count");
  c.hidden_size = u32("embedding_length");
  c.intermediate_size = u32("feed_forward_length");
  c.n_heads = u32("attention.head_count");
  c.sliding_window = u32("attention.sliding_window");
  c.max_position = u32("context_length");
  c.rms_eps = f.GetF32(a + "attention.layer_norm_rms_epsilon");
  c.final_softcap = f.Has(a + "final_logit_softcapping") ? f.GetF32(a + "final_logit_softcapping") : 0.0f;
  c.num_kv_shared_layers = f.Has(a + "attention.shared_kv_layers") ? u32("attention.shared_kv_layers") : 0;
  const TensorView* embd = f.FindTensor("token_embd.weight");
  Require(embd != nullptr && embd->shape.rank == 2, f.path(), "tensor 'token_embd.weight' missing or not 2-D");
  Require(embd->shape[0] > 0 && embd->shape[0] <= INT32_MAX, f.path(), "tensor 'token_embd.weight' has an implausible vocabulary size");
  c.vocab_size = static_cast<int>(embd->shape[0]);  // gemma4 writes no vocab_size key

  // Per-layer values: head_count_kv is a scalar or an array; sliding_window_pattern marks sliding layers.
  const std::vector<bool> sliding = f.GetBoolArray(a + "attention.sliding_window_pattern");
  Require(sliding.size() == static_cast<size_t>(c.n_layers), f.path() + ": key '" + a + "attention.sliding_window_pattern'",
          std::to_string(sliding.size()) + " entries for " + std::to_string(c.n_layers) + " layers");
  std::vector<int64_t> kv_heads(static_cast<size_t>(c.n_layers));
  const std::string kv_key = a + "attention.head_count_kv";
  if (f.Get(kv_key).type == GgufType::ARRAY) {
    kv_heads = f.GetIntArray(kv_key);
    Require(kv_heads.size() == static_cast<size_t>(c.n_layers), f.path() + ": key '" + kv_key + "'",
            std::to_string(kv_heads.size()) + " entries for " + std::to_string(c.n_layers) + " layers");
  } else {
    std::fill(kv_heads.begin(), kv_heads.end(), f.GetInt(kv_key, 0, INT32_MAX));
  }
  for (const int64_t n : kv_heads) Require(n > 0 && n <= 4096, f.path() + ": key '" + kv_key + "'", "implausible KV head count " + std::to_string(n));
  const int head_dim_full = u32("attention.key_length"), head_dim_swa = u32("attention.key_length_swa");
  Require(head_dim_full > 0 && head_dim_swa > 0 && head_dim_full <= 4096 && head_dim_swa <= 4096, f.path(),
          "attention.key_length(_swa) must lie in [1, 4096]");
  Require(u32("attention.value_length") == head_dim_full && u32("attention.value_length_swa") == head_dim_swa, f.path(),
          "attention.value_length(_swa) differs from key_length(_swa): Gemma 4 uses one head dim for K and V");
  const float theta_full = f.GetF32(a + "rope.freq_base"), theta_swa = f.GetF32(a + "rope.freq_base_swa");
  const int rope_dims_full = u32("rope.dimension_count"), rope_dims_swa = u32("rope.dimension_count_swa");
  Require(rope_dims_full == head_dim_full && rope_dims_swa == head_dim_swa, f.path(),
          "rope.dimension_count(_swa) differs from the head dim: partial RoPE other than rope_freqs is not supported");

  // rope_freqs [head_dim_full / 2]: freq factors 1 (rotate) then 1e30 (frequency ~0).
  float rope_partial = 1.0f;
  bool proportional = false;
  if (const TensorView* rf = f.FindTensor("rope_freqs.weight")) {
    const std::string at = f.path() + ": tensor 'rope_freqs.weight'";
    Require(rf->shape.rank == 1 && rf->shape[0] == head_dim_full / 2 && rf->type == Type::F32, at,
            "expected F32 [" + std::to_string(head_dim_full / 2) + "], found " + std::string(TypeName(rf->type)) + " " + rf->shape.str());
    std::vector<float> factors(static_cast<size_t>(rf->shape[0]));
    DequantizeRow(Type::F32, rf->data, factors.size(), factors.data());
    size_t rotated = 0;
    while (rotated < factors.size() && factors[rotated] == 1.0f) ++rotated;
    for (size_t i = rotated; i < factors.size(); ++i)
      Require(factors[i] >= 1e20f, at, "factor " + std::to_string(factors[i]) + " at " + std::to_string(i) +
                                           " is neither 1 nor huge: only proportional partial RoPE is supported");
    rope_partial = static_cast<float>(2.0 * static_cast<double>(rotated) / head_dim_full);
    proportional = true;
  }
  for (int i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    const bool full = !sliding[static_cast<size_t>(i)];
    l.kind = full ? AttentionKind::kFull : AttentionKind::kSliding;
    l.head_dim = full ? head_dim_full : head_dim_swa;
    l.n_kv_heads = static_cast<int>(kv_heads[static_cast<size_t>(i)]);
    l.rope_theta = full ? theta_full : theta_swa;
    l.rope_partial = full ? rope_partial : 1.0f;
    l.rope_proportional = full && proportional;
    l.k_eq_v = full && !f.FindTensor("blk." + std::to_string(i) + ".attn_v.weight");
    c.layers.push_back(l);
  }

  // Special ids: bos/eos/pad from the tokenizer keys; eot (<turn|>) joins the stop list; media ids by their text.
  auto id = [&](const std::string& key, int* out) {
    if (f.Has(key)) *out = static_cast<int>(f.GetInt(key, 0, INT32_MAX));
  };
  id("tokenizer.ggml.bos_token_id", &c.tokens.bos);
  id("tokenizer.ggml.padding_token_id", &c.tokens.pad);
  id("tokenizer.ggml.eos_token_id", &c.tokens.eos);
  c.tokens.stop_ids = {c.tokens.eos};
  if (f.Has("tokenizer.ggml.eot_token_id")) {
    const int eot = static_cast<int>(f.GetInt("tokenizer.ggml.eot_token_id", 0, INT32_MAX));
    if (eot != c.tokens.eos) c.tokens.stop_ids.push_back(eot);
  }
  const std::pair<const char*, int*> media[] = {{"<|image>", &c.tokens.boi},  {"<image|>", &c.tokens.eoi}, {"<|image|>", &c.tokens.image},
                                                {"<|audio>", &c.tokens.boa},  {"<audio|>", &c.tokens.eoa}, {"<|audio|>", &c.tokens.audio},
                                                {"<|video|>", &c.tokens.video}};
  for (const auto& [piece, out] : media)
    if (const int t = FindTokenId(f, piece); t >= 0) *out = t;

  if (c.architecture == "gemma4-assistant") {
    AssistantConfig as;
    as.backbone_hidden = u32("embedding_length_out");
    // llama.cpp writes no key for the ordered head; its tensors say whether it is there.
    if (const TensorView* cen = f.FindTensor("masked_embd_centroids.weight")) {
      as.use_ordered_embeddings = true;
      Require(cen->shape.rank == 2, f.path() + ": tensor 'masked_embd_centroids.weight'", "not 2-D");
      as.num_centroids = static_cast<int>(cen->shape[0]);
      as.centroid_top_k = f.Has(a + "centroid_top_k") ? u32("centroid_top_k") : 0;
    }
    c.assistant = as;
  }
  c.Validate(f.path());
  return c;
}

// The embedders an mmproj (`clip` architecture) file describes, from its keys and position table alone.
struct MmprojConfig {
  std::optional<VisionConfig> vision;
  std::optional<AudioConfig> audio;
};

inline MmprojConfig ReadGgufMmproj(const GgufFile& f) {
  Require(f.GetString("general.architecture") == "clip", f.path(), "mmproj architecture is not 'clip'");
  MmprojConfig m;
  if (f.Has("clip.has_vision_encoder") && f.GetBool("clip.has_vision_encoder")) {
    Require(f.GetString("clip.vision.projector_type") == "gemma4uv", f.path() + ": key 'clip.vision.projector_type'",
            "expected 'gemma4uv', found '" + f.GetString("clip.vision.projector_type") + "'");
    VisionConfig v;
    v.patch_px = static_cast<int>(f.GetInt("clip.vision.patch_size", 1, 1024)) * kGemma4VisionMerge;
    v.mm_embed_dim = static_cast<int>(f.GetInt("clip.vision.embedding_length", 1, INT32_MAX));
    v.output_dim = static_cast<int>(f.GetInt("clip.vision.projection_dim", 1, INT32_MAX));
    const TensorView* pos = f.FindTensor("v.position_embd.weight");
    Require(pos != nullptr && pos->shape.rank == 3, f.path(), "tensor 'v.position_embd.weight' missing or not 3-D");
    Require(pos->shape[1] > 0 && pos->shape[1] <= INT32_MAX, f.path(), "tensor 'v.position_embd.weight' has an implausible size");
    v.posemb_size = static_cast<int>(pos->shape[1]);  // [2, posemb, dim]
    m.vision = v;
  }
  if (f.Has("clip.has_audio_encoder") && f.GetBool("clip.has_audio_encoder")) {
    Require(f.GetString("clip.audio.projector_type") == "gemma4ua", f.path() + ": key 'clip.audio.projector_type'",
            "expected 'gemma4ua', found '" + f.GetString("clip.audio.projector_type") + "'");
    AudioConfig au;
    au.frame_samples = static_cast<int>(f.GetInt("clip.audio.embedding_length", 1, INT32_MAX));
    au.output_dim = static_cast<int>(f.GetInt("clip.audio.projection_dim", 1, INT32_MAX));
    m.audio = au;
  }
  return m;
}

// The mmproj's embedders added to the text model's config `c`; each must project to its hidden size.
inline void ReadGgufMmprojConfig(const GgufFile& f, Gemma4Config& c) {
  const MmprojConfig m = ReadGgufMmproj(f);
  if (m.vision)
    Require(m.vision->output_dim == c.hidden_size, f.path() + ": key 'clip.vision.projection_dim'",
            std::to_string(m.vision->output_dim) + " differs from the text model's hidden size " + std::to_string(c.hidden_size));
  if (m.audio)
    Require(m.audio->output_dim == c.hidden_size, f.path() + ": key 'clip.audio.projection_dim'",
            std::to_string(m.audio->output_dim) + " differs from the text model's hidden size " + std::to_string(c.hidden_size));
  if (m.vision) c.vision = m.vision;
  if (m.audio) c.audio = m.audio;
}

}  // namespace g4
