// A small Gemma 4 with random weights built in memory, for tests that need many model shapes quickly.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "g4/core/quantize.hpp"
#include "g4/core/tensor.hpp"
#include "g4/model/config.hpp"
#include "g4/model/weights.hpp"

namespace g4::testing {

struct RandomModel {
  Gemma4Config cfg;
  std::vector<std::unique_ptr<Tensor>> storage;
  TextWeights weights;
  AssistantWeights assistant;  // drafters only
};

// Random f32 tensors owned by a RandomModel.
class RandomTensors {
 public:
  RandomTensors(RandomModel& m, uint32_t seed) : m_(m), rng_(seed) {}
  TensorView operator()(const std::string& name, Shape shape, float scale, float offset = 0.0f) {
    auto t = std::make_unique<Tensor>(name, Type::F32, shape);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& v : t->as<float>()) v = offset + scale * nd(rng_);
    TensorView view = t->view();
    m_.storage.push_back(std::move(t));
    return view;
  }

 private:
  RandomModel& m_;
  std::mt19937 rng_;
};

// The weights of one decoder layer; K/V projections only when with_kv.
inline LayerWeights RandomLayer(RandomTensors& make, const LayerConfig& l, int hidden, int heads, int ffn, bool with_kv,
                                const std::string& p) {
  const float ws = 1.0f / std::sqrt(static_cast<float>(hidden));
  LayerWeights w;
  w.attn_norm = make(p + "attn_norm", {hidden}, 0.1f, 1.0f);
  w.q_proj = make(p + "q", {heads * l.head_dim, hidden}, ws);
  if (with_kv) {
    w.k_proj = make(p + "k", {l.n_kv_heads * l.head_dim, hidden}, ws);
    if (!l.k_eq_v) w.v_proj = make(p + "v", {l.n_kv_heads * l.head_dim, hidden}, ws);
    w.k_norm = make(p + "k_norm", {l.head_dim}, 0.1f, 1.0f);
  }
  w.o_proj = make(p + "o", {hidden, heads * l.head_dim}, ws);
  w.q_norm = make(p + "q_norm", {l.head_dim}, 0.1f, 1.0f);
  w.post_attn_norm = make(p + "post_attn_norm", {hidden}, 0.1f, 1.0f);
  w.ffn_norm = make(p + "ffn_norm", {hidden}, 0.1f, 1.0f);
  w.gate_proj = make(p + "gate", {ffn, hidden}, ws);
  w.up_proj = make(p + "up", {ffn, hidden}, ws);
  w.down_proj = make(p + "down", {hidden, ffn}, 1.0f / std::sqrt(static_cast<float>(ffn)));
  w.post_ffn_norm = make(p + "post_ffn_norm", {hidden}, 0.1f, 1.0f);
  w.layer_scalar = make(p + "layer_scalar", {1}, 0.1f, 1.0f);
  return w;
}

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
  c.tokens.stop_ids.clear();  // tests that want stop tokens set them
  for (char p : pattern) {
    if (p == 'F') c.layers.push_back({AttentionKind::kFull, 2 * head_dim, k_eq_v ? 1 : kv_heads, 1e6f, 0.25f, true, k_eq_v});
    else c.layers.push_back({AttentionKind::kSliding, head_dim, kv_heads, 1e4f, 1.0f, false, false});
  }
  RandomTensors make(m, seed);
  m.weights.embed = make("embed", {vocab, hidden}, 1.0f);
  m.weights.final_norm = make("norm", {hidden}, 0.1f, 1.0f);
  for (int i = 0; i < c.n_layers; ++i)
    m.weights.layers.push_back(RandomLayer(make, c.layers[static_cast<size_t>(i)], hidden, heads, 2 * hidden, true,
                                           "layers." + std::to_string(i) + "."));
  return m;
}

// An MTP drafter for `target`: layers [S,S,S,F] reading the target's last sliding and full layers.
inline RandomModel MakeRandomDrafter(const Gemma4Config& target, uint32_t seed, int hidden = 16, int heads = 4) {
  RandomModel m;
  Gemma4Config& c = m.cfg;
  c.architecture = "random-drafter";
  c.vocab_size = target.vocab_size;
  c.hidden_size = hidden;
  c.n_layers = 4;
  c.n_heads = heads;
  c.intermediate_size = 4 * hidden;
  c.sliding_window = target.sliding_window;
  c.max_position = target.max_position;
  c.num_kv_shared_layers = 4;
  for (int i = 0; i < 4; ++i)
    c.layers.push_back(target.layers[static_cast<size_t>(target.LastLayerOf(i < 3 ? AttentionKind::kSliding : AttentionKind::kFull))]);
  c.assistant = AssistantConfig{target.hidden_size, false, 0, 0};
  RandomTensors make(m, seed);
  m.weights.embed = make("embed", {c.vocab_size, hidden}, 1.0f);
  m.weights.final_norm = make("norm", {hidden}, 0.1f, 1.0f);
  for (int i = 0; i < 4; ++i)
    m.weights.layers.push_back(RandomLayer(make, c.layers[static_cast<size_t>(i)], hidden, heads, c.intermediate_size, false,
                                           "layers." + std::to_string(i) + "."));
  m.assistant.pre_projection = make("pre_projection", {hidden, 2 * target.hidden_size}, 0.1f);
  m.assistant.post_projection = make("post_projection", {target.hidden_size, hidden}, 0.3f);
  return m;
}

// Replaces the matrices of m with copies quantized as a checkpoint would hold them: the embedding and the FFN's
// down projections to `embed_and_down`, every other projection (and a drafter's) to `projections`.
inline void QuantizeMatrices(RandomModel& m, Type projections, Type embed_and_down) {
  auto quantize = [&](TensorView& v, Type type) {
    if (v.data == nullptr) return;
    auto t = std::make_unique<Tensor>(v.name, type, Shape{v.rows(), v.cols()});
    for (int64_t r = 0; r < v.rows(); ++r)
      QuantizeRow(type, reinterpret_cast<const float*>(v.row(r)), static_cast<size_t>(v.cols()),
                  t->data() + r * t->view().row_bytes());
    v = t->view();
    m.storage.push_back(std::move(t));
  };
  quantize(m.weights.embed, embed_and_down);
  for (LayerWeights& lw : m.weights.layers) {
    for (TensorView* v : {&lw.q_proj, &lw.k_proj, &lw.v_proj, &lw.o_proj, &lw.gate_proj, &lw.up_proj}) quantize(*v, projections);
    quantize(lw.down_proj, embed_and_down);
  }
  for (TensorView* v : {&m.assistant.pre_projection, &m.assistant.post_projection}) quantize(*v, projections);
}

}  // namespace g4::testing
