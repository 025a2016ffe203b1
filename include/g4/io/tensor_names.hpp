// The one table of Gemma 4 tensor names: for every weight role, its Hugging Face name, its llama.cpp GGUF name
// and the shape the config implies (outermost first, the same in both formats except the vision position table).
// The checkpoint binds tensors with it; `g4 quantize` renames with it.
#pragma once
#include <string>

#include "g4/core/tensor.hpp"
#include "g4/model/config.hpp"
#include "g4/model/weights.hpp"

namespace g4 {

enum class TensorKind {
  kMatrix,  // any weight type, quantized included
  kVector,  // read element-wise: F32, F16 or BF16
};

enum class Presence {
  kAlways,
  kNotInDrafter,  // K projection and k_norm: the drafter reads the target's KV
  kHasOwnV,       // v_proj: absent on k_eq_v layers and in the drafter
};

struct LayerTensorName {
  TensorView LayerWeights::*member;
  const char* hf;    // after "<prefix>layers.N."
  const char* gguf;  // after "blk.N."
  TensorKind kind;
  Presence presence;
  Shape (*shape)(const Gemma4Config& c, const LayerConfig& l);
};

inline const LayerTensorName kLayerTensorNames[] = {
    {&LayerWeights::attn_norm, "input_layernorm.weight", "attn_norm.weight", TensorKind::kVector, Presence::kAlways,
     [](const Gemma4Config& c, const LayerConfig&) { return Shape{c.hidden_size}; }},
    {&LayerWeights::q_proj, "self_attn.q_proj.weight", "attn_q.weight", TensorKind::kMatrix, Presence::kAlways,
     [](const Gemma4Config& c, const LayerConfig& l) { return Shape{int64_t{c.n_heads} * l.head_dim, c.hidden_size}; }},
    {&LayerWeights::k_proj, "self_attn.k_proj.weight", "attn_k.weight", TensorKind::kMatrix, Presence::kNotInDrafter,
     [](const Gemma4Config& c, const LayerConfig& l) { return Shape{int64_t{l.n_kv_heads} * l.head_dim, c.hidden_size}; }},
    {&LayerWeights::v_proj, "self_attn.v_proj.weight", "attn_v.weight", TensorKind::kMatrix, Presence::kHasOwnV,
     [](const Gemma4Config& c, const LayerConfig& l) { return Shape{int64_t{l.n_kv_heads} * l.head_dim, c.hidden_size}; }},
    {&LayerWeights::o_proj, "self_attn.o_proj.weight", "attn_output.weight", TensorKind::kMatrix, Presence::kAlways,
     [](const Gemma4Config& c, const LayerConfig& l) { return Shape{c.hidden_size, int64_t{c.n_heads} * l.head_dim}; }},
    {&LayerWeights::q_norm, "self_attn.q_norm.weight", "attn_q_norm.weight", TensorKind::kVector, Presence::kAlways,
     [](const Gemma4Config&, const LayerConfig& l) { return Shape{l.head_dim}; }},
    {&LayerWeights::k_norm, "self_attn.k_norm.weight", "attn_k_norm.weight", TensorKind::kVector, Presence::kNotInDrafter,
     [](const Gemma4Config&, const LayerConfig& l) { return Shape{l.head_dim}; }},
    {&LayerWeights::post_attn_norm, "post_attention_layernorm.weight", "post_attention_norm.weight", TensorKind::kVector,
     Presence::kAlways, [](const Gemma4Config& c, const LayerConfig&) { return Shape{c.hidden_size}; }},
    {&LayerWeights::ffn_norm, "pre_feedforward_layernorm.weight", "ffn_norm.weight", TensorKind::kVector, Presence::kAlways,
     [](const Gemma4Config& c, const LayerConfig&) { return Shape{c.hidden_size}; }},
    {&LayerWeights::gate_proj, "mlp.gate_proj.weight", "ffn_gate.weight", TensorKind::kMatrix, Presence::kAlways,
     [](const Gemma4Config& c, const LayerConfig&) { return Shape{c.intermediate_size, c.hidden_size}; }},
    {&LayerWeights::up_proj, "mlp.up_proj.weight", "ffn_up.weight", TensorKind::kMatrix, Presence::kAlways,
     [](const Gemma4Config& c, const LayerConfig&) { return Shape{c.intermediate_size, c.hidden_size}; }},
    {&LayerWeights::down_proj, "mlp.down_proj.weight", "ffn_down.weight", TensorKind::kMatrix, Presence::kAlways,
     [](const Gemma4Config& c, const LayerConfig&) { return Shape{c.hidden_size, c.intermediate_size}; }},
    {&LayerWeights::post_ffn_norm, "post_feedforward_layernorm.weight", "post_ffw_norm.weight", TensorKind::kVector,
     Presence::kAlways, [](const Gemma4Config& c, const LayerConfig&) { return Shape{c.hidden_size}; }},
    {&LayerWeights::layer_scalar, "layer_scalar", "layer_output_scale.weight", TensorKind::kVector, Presence::kAlways,
     [](const Gemma4Config&, const LayerConfig&) { return Shape{1}; }},
};

inline bool LayerTensorPresent(const LayerTensorName& n, const Gemma4Config& c, const LayerConfig& l) {
  const bool drafter = c.assistant.has_value();
  switch (n.presence) {
    case Presence::kAlways: return true;
    case Presence::kNotInDrafter: return !drafter;
    case Presence::kHasOwnV: return !drafter && !l.k_eq_v;
  }
  return true;
}

// Tensors outside the layers. `hf` is the full HF name (text ones after the text prefix); `gguf` the GGUF name.
struct GlobalTensorName {
  const char* hf;
  const char* gguf;
};
inline constexpr GlobalTensorName kEmbedName{"embed_tokens.weight", "token_embd.weight"};
inline constexpr GlobalTensorName kFinalNormName{"norm.weight", "output_norm.weight"};
inline constexpr const char* kRopeFreqsGguf = "rope_freqs.weight";  // GGUF only; read into the config

inline constexpr GlobalTensorName kPreProjectionName{"pre_projection.weight", "nextn.pre_projection.weight"};
inline constexpr GlobalTensorName kPostProjectionName{"post_projection.weight", "nextn.post_projection.weight"};
inline constexpr GlobalTensorName kCentroidsName{"masked_embedding.centroids.weight", "masked_embd_centroids.weight"};
inline constexpr GlobalTensorName kTokenOrderingName{"masked_embedding.token_ordering", "masked_embd_ordering"};

struct VisionTensorName {
  TensorView VisionWeights::*member;
  const char* hf;
  const char* gguf;
  TensorKind kind;
};
inline const VisionTensorName kVisionTensorNames[] = {
    {&VisionWeights::patch_ln1_w, "model.vision_embedder.patch_ln1.weight", "v.patch_norm.1.weight", TensorKind::kVector},
    {&VisionWeights::patch_ln1_b, "model.vision_embedder.patch_ln1.bias", "v.patch_norm.1.bias", TensorKind::kVector},
    {&VisionWeights::patch_dense_w, "model.vision_embedder.patch_dense.weight", "v.patch_embd.weight", TensorKind::kMatrix},
    {&VisionWeights::patch_dense_b, "model.vision_embedder.patch_dense.bias", "v.patch_embd.bias", TensorKind::kVector},
    {&VisionWeights::patch_ln2_w, "model.vision_embedder.patch_ln2.weight", "v.patch_norm.2.weight", TensorKind::kVector},
    {&VisionWeights::patch_ln2_b, "model.vision_embedder.patch_ln2.bias", "v.patch_norm.2.bias", TensorKind::kVector},
    {&VisionWeights::pos_embedding, "model.vision_embedder.pos_embedding", "v.position_embd.weight", TensorKind::kVector},
    {&VisionWeights::pos_norm_w, "model.vision_embedder.pos_norm.weight", "v.patch_norm.3.weight", TensorKind::kVector},
    {&VisionWeights::pos_norm_b, "model.vision_embedder.pos_norm.bias", "v.patch_norm.3.bias", TensorKind::kVector},
    {&VisionWeights::projection, "model.embed_vision.embedding_projection.weight", "mm.input_projection.weight", TensorKind::kMatrix},
};

// Shape of a vision tensor; the position table is [posemb, 2, dim] in HF and [2, posemb, dim] in GGUF.
inline Shape VisionTensorShape(TensorView VisionWeights::*member, const VisionConfig& v, bool gguf) {
  const int64_t patch = v.patch_dim(), mm = v.mm_embed_dim;
  if (member == &VisionWeights::patch_ln1_w || member == &VisionWeights::patch_ln1_b) return Shape{patch};
  if (member == &VisionWeights::patch_dense_w) return Shape{mm, patch};
  if (member == &VisionWeights::pos_embedding) return gguf ? Shape{2, v.posemb_size, mm} : Shape{v.posemb_size, 2, mm};
  if (member == &VisionWeights::projection) return Shape{v.output_dim, mm};
  return Shape{mm};
}

inline constexpr GlobalTensorName kAudioProjectionName{"model.embed_audio.embedding_projection.weight", "mm.a.input_projection.weight"};

}  // namespace g4
