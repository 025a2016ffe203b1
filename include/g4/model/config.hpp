// Gemma4Config: every hyper-parameter the runtime needs, in one typed struct, whatever file it came from
// (config.json or gemma4.* GGUF keys; io/checkpoint.hpp fills it). Layer-dependent values are resolved per
// layer up front so the forward pass never re-derives them.
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "g4/core/error.hpp"

namespace g4 {

enum class AttentionKind { kSliding, kFull };

struct LayerConfig {
  AttentionKind kind = AttentionKind::kSliding;
  int head_dim = 0;
  int n_kv_heads = 0;
  float rope_theta = 10000.0f;
  // Fraction of the head's rotation pairs that rotate (proportional RoPE of full layers: 0.25); the rest get
  // inverse frequency 0. `rope_proportional` keeps the full head dim as the frequency denominator.
  float rope_partial = 1.0f;
  bool rope_proportional = false;
  bool k_eq_v = false;  // no v_proj: V is the RMS-normalised raw K projection

  // Inverse frequencies [head_dim / 2] for RopeNeox, exactly spec 1.3.
  std::vector<float> RopeInvFreq() const {
    const int half = head_dim / 2;
    const int rotated = rope_proportional ? static_cast<int>(rope_partial * head_dim / 2) : half;
    std::vector<float> f(static_cast<size_t>(half), 0.0f);
    for (int i = 0; i < rotated; ++i)
      f[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(static_cast<double>(rope_theta), 2.0 * i / head_dim));
    return f;
  }
};

struct VisionConfig {
  int patch_px = 48;          // merged patch side: patch_size 16 x pooling 3
  int mm_embed_dim = 3840;    // width of patch_dense output and the position tables
  int posemb_size = 1120;     // rows of each position table
  int output_dim = 3840;      // projection output = text hidden size
  int default_soft_tokens = 280;
  int patch_dim() const { return patch_px * patch_px * 3; }
};

struct AudioConfig {
  int frame_samples = 640;  // 40 ms at 16 kHz
  int sample_rate = 16000;
  int output_dim = 3840;
  int max_tokens = 750;     // 30 s
};

// The drafter (Gemma4UnifiedAssistantForCausalLM / GGUF gemma4-assistant).
struct AssistantConfig {
  int backbone_hidden = 3840;       // the target's hidden size (pre_projection input is 2x this)
  bool use_ordered_embeddings = false;
  int num_centroids = 0;
  int centroid_top_k = 0;
};

struct SpecialTokens {
  int pad = 0, eos = 1, bos = 2;
  std::vector<int> stop_ids{1};  // eos list (IT checkpoints add <turn|> = 106)
  int boi = 255999, eoi = 258882, image = 258880;
  int boa = 256000, eoa = 258883, audio = 258881, video = 258884;
  std::vector<int> suppress;     // logits forced to -inf (generation config's suppress_tokens)
};

struct Gemma4Config {
  std::string architecture;  // e.g. Gemma4UnifiedForConditionalGeneration, gemma4, gemma4-assistant
  int vocab_size = 0;
  int hidden_size = 0;
  int n_layers = 0;
  int n_heads = 0;
  int intermediate_size = 0;
  int sliding_window = 0;
  int max_position = 0;
  float rms_eps = 1e-6f;
  float final_softcap = 0.0f;  // 0: none
  int num_kv_shared_layers = 0;
  std::vector<LayerConfig> layers;
  SpecialTokens tokens;
  std::optional<VisionConfig> vision;
  std::optional<AudioConfig> audio;
  std::optional<AssistantConfig> assistant;

  float embed_scale() const { return std::sqrt(static_cast<float>(hidden_size)); }
  int q_dim(int layer) const { return n_heads * layers[static_cast<size_t>(layer)].head_dim; }
  int kv_dim(int layer) const {
    const LayerConfig& l = layers[static_cast<size_t>(layer)];
    return l.n_kv_heads * l.head_dim;
  }
  // Index of the last layer of a kind (the drafter reads those layers' KV), or -1.
  int LastLayerOf(AttentionKind kind) const {
    for (int i = n_layers - 1; i >= 0; --i)
      if (layers[static_cast<size_t>(i)].kind == kind) return i;
    return -1;
  }

  // Structural checks that protect the forward pass from nonsense values (names the offending key).
  void Validate(const std::string& where) const {
    auto positive = [&](int v, const char* key) { Require(v > 0, where, std::string(key) + " must be positive, got " + std::to_string(v)); };
    positive(vocab_size, "vocab_size");
    positive(hidden_size, "hidden_size");
    positive(n_layers, "num_hidden_layers");
    positive(n_heads, "num_attention_heads");
    positive(intermediate_size, "intermediate_size");
    positive(sliding_window, "sliding_window");
    positive(max_position, "max_position_embeddings");
    Require(n_layers <= 4096 && hidden_size <= (1 << 20) && n_heads <= 4096, where, "implausible model dimensions");
    Require(static_cast<int>(layers.size()) == n_layers, where,
            "layer_types has " + std::to_string(layers.size()) + " entries for " + std::to_string(n_layers) + " layers");
    for (int i = 0; i < n_layers; ++i) {
      const LayerConfig& l = layers[static_cast<size_t>(i)];
      const std::string at = "layer " + std::to_string(i);
      Require(l.head_dim > 0 && l.head_dim % 2 == 0 && l.head_dim <= 4096, where, at + ": bad head_dim " + std::to_string(l.head_dim));
      Require(l.n_kv_heads > 0 && n_heads % l.n_kv_heads == 0, where,
              at + ": " + std::to_string(n_heads) + " heads are not a multiple of " + std::to_string(l.n_kv_heads) + " KV heads");
    }
    Require(num_kv_shared_layers >= 0 && num_kv_shared_layers <= n_layers, where, "bad num_kv_shared_layers");
  }

  // google/gemma-4-12B(-it): spec section 1.1.
  static Gemma4Config Gemma4_12B() {
    Gemma4Config c;
    c.architecture = "Gemma4UnifiedForConditionalGeneration";
    c.vocab_size = 262144;
    c.hidden_size = 3840;
    c.n_layers = 48;
    c.n_heads = 16;
    c.intermediate_size = 15360;
    c.sliding_window = 1024;
    c.max_position = 262144;
    c.rms_eps = 1e-6f;
    c.final_softcap = 30.0f;
    for (int i = 0; i < c.n_layers; ++i) {
      LayerConfig l;
      if (i % 6 == 5) {
        l = {AttentionKind::kFull, 512, 1, 1e6f, 0.25f, true, true};
      } else {
        l = {AttentionKind::kSliding, 256, 8, 1e4f, 1.0f, false, false};
      }
      c.layers.push_back(l);
    }
    c.tokens.stop_ids = {1, 106};
    c.tokens.suppress = {258883, 258882};
    c.vision = VisionConfig{};
    c.audio = AudioConfig{};
    return c;
  }

  // google/gemma-4-12B-it-assistant, the MTP drafter of the 12B: spec section 4.1.
  static Gemma4Config Gemma4_12B_Assistant() {
    const Gemma4Config target = Gemma4_12B();
    Gemma4Config c;
    c.architecture = "Gemma4UnifiedAssistantForCausalLM";
    c.vocab_size = target.vocab_size;
    c.hidden_size = 1024;
    c.n_layers = 4;
    c.n_heads = 16;
    c.intermediate_size = 8192;
    c.sliding_window = target.sliding_window;
    c.max_position = target.max_position;
    c.num_kv_shared_layers = 4;
    for (int i = 0; i < 4; ++i) c.layers.push_back(target.layers[static_cast<size_t>(i < 3 ? 46 : 47)]);
    c.assistant = AssistantConfig{target.hidden_size, false, 0, 0};
    return c;
  }
};

}  // namespace g4
