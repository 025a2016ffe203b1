// Gemma4Config from a Hugging Face config.json: the text settings at top level (text-only checkpoints) or under
// `text_config` (multimodal and assistant checkpoints). Full-layer overrides come either as transformers'
// `per_layer_config` (keys are layer indices, zero-padded to the width of the largest: "05") or as the hub's
// `global_head_dim` / `num_global_key_value_heads`. Every error names the file and the key.
#pragma once
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/model/config.hpp"

namespace g4 {

class HfConfigReader {
 public:
  HfConfigReader(const nlohmann::json& root, std::string path) : root_(root), path_(std::move(path)) {}

  Gemma4Config Read() const {
    Require(root_.is_object(), path_, "config is not a JSON object");
    const nlohmann::json& text = root_.contains("text_config") ? Object(root_, "text_config") : root_;
    Gemma4Config c;
    c.architecture = root_.contains("architectures") && root_["architectures"].is_array() && !root_["architectures"].empty() &&
                             root_["architectures"][0].is_string()
                         ? root_["architectures"][0].get<std::string>()
                         : std::string();
    c.vocab_size = Int(text, "vocab_size");
    c.hidden_size = Int(text, "hidden_size");
    c.n_layers = Int(text, "num_hidden_layers");
    c.n_heads = Int(text, "num_attention_heads");
    c.intermediate_size = Int(text, "intermediate_size");
    c.sliding_window = Int(text, "sliding_window");
    c.max_position = Int(text, "max_position_embeddings");
    c.rms_eps = Float(text, "rms_norm_eps");
    c.final_softcap = text.contains("final_logit_softcapping") && !text["final_logit_softcapping"].is_null()
                          ? Float(text, "final_logit_softcapping")
                          : 0.0f;
    c.num_kv_shared_layers = text.contains("num_kv_shared_layers") ? Int(text, "num_kv_shared_layers") : 0;
    ReadLayers(text, c);
    ReadTokens(text, c.tokens);
    if (root_.contains("vision_config") && !root_["vision_config"].is_null()) c.vision = ReadVision(c.hidden_size);
    if (root_.contains("audio_config") && !root_["audio_config"].is_null()) c.audio = ReadAudio(c.hidden_size);
    if (root_.contains("backbone_hidden_size")) {
      AssistantConfig a;
      a.backbone_hidden = Int(root_, "backbone_hidden_size");
      a.use_ordered_embeddings = root_.contains("use_ordered_embeddings") && Bool(root_, "use_ordered_embeddings");
      if (a.use_ordered_embeddings) {
        a.num_centroids = Int(root_, "num_centroids");
        a.centroid_top_k = Int(root_, "centroid_intermediate_top_k");
      }
      c.assistant = a;
    }
    c.Validate(path_);
    return c;
  }

 private:
  std::string Where(const std::string& key) const { return path_ + ": key '" + key + "'"; }
  const nlohmann::json& Field(const nlohmann::json& o, const std::string& key) const {
    const auto it = o.find(key);
    if (it == o.end()) Fail(Where(key), "missing");
    return *it;
  }
  const nlohmann::json& Object(const nlohmann::json& o, const std::string& key) const {
    const nlohmann::json& v = Field(o, key);
    Require(v.is_object(), Where(key), "not an object");
    return v;
  }
  int Int(const nlohmann::json& o, const std::string& key) const {
    const nlohmann::json& v = Field(o, key);
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= INT32_MAX
                                             : v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
    Require(fits, Where(key), "expected a 32-bit integer, found " + v.dump());
    return v.get<int>();
  }
  float Float(const nlohmann::json& o, const std::string& key) const {
    const nlohmann::json& v = Field(o, key);
    Require(v.is_number() && std::isfinite(v.get<double>()) && std::abs(v.get<double>()) <= 3.4e38, Where(key),
            "expected a finite number, found " + v.dump());
    return v.get<float>();
  }
  bool Bool(const nlohmann::json& o, const std::string& key) const {
    const nlohmann::json& v = Field(o, key);
    Require(v.is_boolean(), Where(key), "expected true or false, found " + v.dump());
    return v.get<bool>();
  }
  std::string String(const nlohmann::json& o, const std::string& key) const {
    const nlohmann::json& v = Field(o, key);
    Require(v.is_string(), Where(key), "expected a string, found " + v.dump());
    return v.get<std::string>();
  }

  // Layer kinds, head dims, KV heads and RoPE of every layer.
  void ReadLayers(const nlohmann::json& text, Gemma4Config& c) const {
    Require(c.n_layers > 0 && c.n_layers <= 4096, Where("num_hidden_layers"), "implausible value " + std::to_string(c.n_layers));
    const nlohmann::json& types = Field(text, "layer_types");
    Require(types.is_array() && types.size() == static_cast<size_t>(c.n_layers), Where("layer_types"),
            "expected an array of " + std::to_string(c.n_layers) + " layer types");
    const int head_dim = Int(text, "head_dim");
    const int n_kv = Int(text, "num_key_value_heads");
    const bool k_eq_v = text.contains("attention_k_eq_v") && Bool(text, "attention_k_eq_v");
    const int global_head_dim = text.contains("global_head_dim") && !text["global_head_dim"].is_null() ? Int(text, "global_head_dim") : head_dim;
    const int global_kv = text.contains("num_global_key_value_heads") && !text["num_global_key_value_heads"].is_null()
                              ? Int(text, "num_global_key_value_heads")
                              : n_kv;
    const nlohmann::json& rope = Object(text, "rope_parameters");
    for (int i = 0; i < c.n_layers; ++i) {
      const std::string type = types[static_cast<size_t>(i)].is_string() ? types[static_cast<size_t>(i)].get<std::string>() : "";
      Require(type == "sliding_attention" || type == "full_attention", Where("layer_types"),
              "layer " + std::to_string(i) + " has unknown type " + types[static_cast<size_t>(i)].dump());
      LayerConfig l;
      l.kind = type == "full_attention" ? AttentionKind::kFull : AttentionKind::kSliding;
      const bool full = l.kind == AttentionKind::kFull;
      l.head_dim = full ? global_head_dim : head_dim;
      l.n_kv_heads = full ? global_kv : n_kv;
      l.k_eq_v = full && k_eq_v;
      const nlohmann::json& r = Object(rope, type);
      l.rope_theta = Float(r, "rope_theta");
      const std::string rope_type = r.contains("rope_type") ? String(r, "rope_type") : "default";
      Require(rope_type == "default" || rope_type == "proportional", Where("rope_parameters." + type + ".rope_type"),
              "unsupported RoPE type '" + rope_type + "'");
      l.rope_proportional = rope_type == "proportional";
      l.rope_partial = r.contains("partial_rotary_factor") ? Float(r, "partial_rotary_factor") : 1.0f;
      Require(l.rope_partial > 0.0f && l.rope_partial <= 1.0f, Where("rope_parameters." + type + ".partial_rotary_factor"),
              "must lie in (0, 1]");
      c.layers.push_back(l);
    }
    // transformers' per_layer_config: {"05": {"head_dim": 128, "num_key_value_heads": 1}}.
    if (!text.contains("per_layer_config") || text["per_layer_config"].is_null()) return;
    for (const auto& [key, overrides] : Object(text, "per_layer_config").items()) {
      const std::string at = "per_layer_config." + key;
      size_t used = 0;
      int layer = -1;
      try {
        layer = std::stoi(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      Require(used == key.size() && layer >= 0 && layer < c.n_layers, Where(at), "not a layer index below " + std::to_string(c.n_layers));
      Require(overrides.is_object(), Where(at), "not an object");
      LayerConfig& l = c.layers[static_cast<size_t>(layer)];
      for (const auto& [name, value] : overrides.items()) {
        if (name == "head_dim") {
          l.head_dim = Int(overrides, name);
        } else if (name == "num_key_value_heads") {
          l.n_kv_heads = Int(overrides, name);
        } else {
          Fail(Where(at + "." + name), "unsupported per-layer override");
        }
      }
    }
  }

  // Special ids: bos/eos/pad in the text settings (or top level), media ids at the top level. Keys a text-only
  // model lacks keep the 12B's values (they are then unused).
  void ReadTokens(const nlohmann::json& text, SpecialTokens& t) const {
    auto id = [&](const std::string& key, int* out) {
      for (const nlohmann::json* o : {&root_, &text})
        if (o->contains(key) && !(*o)[key].is_null()) *out = Int(*o, key);
    };
    id("pad_token_id", &t.pad);
    id("bos_token_id", &t.bos);
    id("boi_token_id", &t.boi);
    id("eoi_token_id", &t.eoi);
    id("image_token_id", &t.image);
    id("boa_token_id", &t.boa);
    id("eoa_token_id", &t.eoa);
    id("eoa_token_index", &t.eoa);  // transformers' Gemma4UnifiedConfig spells the eoa id this way
    id("audio_token_id", &t.audio);
    id("video_token_id", &t.video);
    for (const nlohmann::json* o : {&root_, &text}) {
      if (!o->contains("eos_token_id") || (*o)["eos_token_id"].is_null()) continue;
      const nlohmann::json& e = (*o)["eos_token_id"];
      t.stop_ids.clear();
      if (e.is_array()) {
        for (const auto& x : e) {
          Require(x.is_number_integer(), Where("eos_token_id"), "expected integers, found " + x.dump());
          t.stop_ids.push_back(x.get<int>());
        }
      } else {
        t.stop_ids.push_back(Int(*o, "eos_token_id"));
      }
      Require(!t.stop_ids.empty(), Where("eos_token_id"), "empty list");
      t.eos = t.stop_ids[0];
    }
  }

  VisionConfig ReadVision(int text_hidden) const {
    const nlohmann::json& v = Object(root_, "vision_config");
    VisionConfig vc;
    vc.patch_px = Int(v, "patch_size") * Int(v, "pooling_kernel_size");
    vc.mm_embed_dim = Int(v, "mm_embed_dim");
    vc.posemb_size = Int(v, "mm_posemb_size");
    vc.output_dim = text_hidden;  // embed_vision.embedding_projection maps mm_embed_dim to the text hidden size
    Require(vc.patch_px > 0 && vc.patch_px <= 1024 && vc.mm_embed_dim > 0 && vc.posemb_size > 0, Where("vision_config"),
            "implausible vision sizes");
    return vc;
  }

  AudioConfig ReadAudio(int text_hidden) const {
    const nlohmann::json& a = Object(root_, "audio_config");
    AudioConfig ac;
    ac.frame_samples = Int(a, "audio_embed_dim");
    ac.output_dim = text_hidden;
    Require(ac.frame_samples > 0, Where("audio_config.audio_embed_dim"), "must be positive");
    return ac;
  }

  const nlohmann::json& root_;
  std::string path_;
};

inline Gemma4Config ReadHfConfig(const nlohmann::json& root, const std::string& path) { return HfConfigReader(root, path).Read(); }

}  // namespace g4
