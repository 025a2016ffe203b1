// A small Gemma 4 with random weights built in memory, for tests that need many model shapes quickly.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "g4/core/tensor.hpp"
#include "g4/model/config.hpp"
#include "g4/model/weights.hpp"

namespace g4::testing {

struct RandomModel {
  Gemma4Config cfg;
  std::vector<std::unique_ptr<Tensor>> storage;
  TextWeights weights;
};

// Layers follow `pattern` ('S' sliding, 'F' full with k_eq_v when k_eq_v is set).
inline RandomModel MakeRandomModel(const std::string& pattern, int window, bool k_eq_v, uint32_t seed,
                                   int hidden = 32, int heads = 4, int kv_heads = 2, int head_dim = 8, int vocab = 64) {
  RandomModel m;
  Gemma4Config& c = m.cfg;
  c.architecture = "random";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.n_layers = static_cast<int>(pattern.size());
  c.n_heads = heads;
  c.intermediate_size = 2 * hidden;
  c.sliding_window = window;
  c.max_position = 4096;
  c.final_softcap = 30.0f;
  for (char p : pattern) {
    if (p == 'F') c.layers.push_back({AttentionKind::kFull, 2 * head_dim, k_eq_v ? 1 : kv_heads, 1e6f, 0.25f, true, k_eq_v});
    else c.layers.push_back({AttentionKind::kSliding, head_dim, kv_heads, 1e4f, 1.0f, false, false});
  }
  std::mt19937 rng(seed);
  auto make = [&](const std::string& name, Shape shape, float scale, float offset = 0.0f) {
    auto t = std::make_unique<Tensor>(name, Type::F32, shape);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& v : t->as<float>()) v = offset + scale * nd(rng);
    TensorView view = t->view();
    m.storage.push_back(std::move(t));
    return view;
  };
  const float ws = 1.0f / std::sqrt(static_cast<float>(hidden));
  m.weights.embed = make("embed", {vocab, hidden}, 1.0f);
  m.weights.final_norm = make("norm", {hidden}, 0.1f, 1.0f);
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerConfig& l = c.layers[static_cast<size_t>(i)];
    const std::string p = "layers." + std::to_string(i) + ".";
    LayerWeights w;
    w.attn_norm = make(p + "attn_norm", {hidden}, 0.1f, 1.0f);
    w.q_proj = make(p + "q", {heads * l.head_dim, hidden}, ws);
    w.k_proj = make(p + "k", {l.n_kv_heads * l.head_dim, hidden}, ws);
    if (!l.k_eq_v) w.v_proj = make(p + "v", {l.n_kv_heads * l.head_dim, hidden}, ws);
    w.o_proj = make(p + "o", {hidden, heads * l.head_dim}, ws);
    w.q_norm = make(p + "q_norm", {l.head_dim}, 0.1f, 1.0f);
    w.k_norm = make(p + "k_norm", {l.head_dim}, 0.1f, 1.0f);
    w.post_attn_norm = make(p + "post_attn_norm", {hidden}, 0.1f, 1.0f);
    w.ffn_norm = make(p + "ffn_norm", {hidden}, 0.1f, 1.0f);
    w.gate_proj = make(p + "gate", {2 * hidden, hidden}, ws);
    w.up_proj = make(p + "up", {2 * hidden, hidden}, ws);
    w.down_proj = make(p + "down", {hidden, 2 * hidden}, ws);
    w.post_ffn_norm = make(p + "post_ffn_norm", {hidden}, 0.1f, 1.0f);
    w.layer_scalar = make(p + "layer_scalar", {1}, 0.1f, 1.0f);
    m.weights.layers.push_back(w);
  }
  return m;
}

}  // namespace g4::testing
