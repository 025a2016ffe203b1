// llama-quantize's Q4_K_M mix for Gemma 4: which matrices it writes in Q6_K instead of Q4_K, reproduced from
// llama_tensor_get_type in llama.cpp's src/llama-quant.cpp (b10587), so a file we call Q4_K_M holds the types a
// file llama.cpp calls Q4_K_M holds. For a dense model without output.weight (tied head) the rule is:
// - token_embd (the tied output head): Q6_K;
// - attn_v: Q6_K where use_more_bits holds for its index among the attn_v tensors that exist, counted in layer
//   order (the k_eq_v full layers have none, so this index is not the layer index);
// - ffn_down: Q6_K where use_more_bits holds for its index among the layers (every layer has one);
// - attn_q, attn_k, attn_output, ffn_gate, ffn_up and every other matrix: Q4_K.
// The block-size fallback for rows that do not fill whole blocks is applied after this (gguf_export.hpp).
#pragma once
#include <string>
#include <vector>

#include "g4/io/tensor_names.hpp"
#include "g4/model/config.hpp"

namespace g4 {

// llama.cpp's use_more_bits: the first and last eighth of `n`, and every third index in between.
inline bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

class Q4KMMix {
 public:
  explicit Q4KMMix(const Gemma4Config& c) : attn_v_q6k_(static_cast<size_t>(c.n_layers), false) {
    const LayerTensorName& v = Role(&LayerWeights::v_proj);
    std::vector<int> attn_v_layers;
    for (int i = 0; i < c.n_layers; ++i)
      if (LayerTensorPresent(v, c, c.layers[static_cast<size_t>(i)])) attn_v_layers.push_back(i);
    const int n = static_cast<int>(attn_v_layers.size());
    for (int k = 0; k < n; ++k) attn_v_q6k_[static_cast<size_t>(attn_v_layers[static_cast<size_t>(k)])] = UseMoreBits(k, n);
    n_layers_ = c.n_layers;
  }

  // The mix's type for the matrix `gguf_name` (a full GGUF name) of layer `layer` (-1 outside the layers).
  Type TypeOf(const std::string& gguf_name, int layer) const {
    if (gguf_name == kEmbedName.gguf) return Type::Q6_K;
    if (layer < 0 || layer >= n_layers_) return Type::Q4_K;
    const std::string role = gguf_name.substr(gguf_name.find('.', 4) + 1);  // after "blk.N."
    if (role == Role(&LayerWeights::v_proj).gguf && attn_v_q6k_[static_cast<size_t>(layer)]) return Type::Q6_K;
    if (role == Role(&LayerWeights::down_proj).gguf && UseMoreBits(layer, n_layers_)) return Type::Q6_K;
    return Type::Q4_K;
  }

  // The layers whose attn_v is Q6_K, ascending.
  std::vector<int> AttnVQ6KLayers() const {
    std::vector<int> out;
    for (int i = 0; i < n_layers_; ++i)
      if (attn_v_q6k_[static_cast<size_t>(i)]) out.push_back(i);
    return out;
  }

 private:
  static const LayerTensorName& Role(TensorView LayerWeights::*member) {
    for (const LayerTensorName& n : kLayerTensorNames)
      if (n.member == member) return n;
    Require(false, "Q4KMMix", "a weight role missing from the tensor name table");
    return kLayerTensorNames[0];
  }

  std::vector<bool> attn_v_q6k_;
  int n_layers_ = 0;
};

}  // namespace g4
