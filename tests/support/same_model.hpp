// Two checkpoints of one model (safetensors and GGUF, or a GGUF and what `g4 quantize` made of it) compared config
// field by field and weight by weight, the GGUF mmproj's patch order and position table undone here from their
// definitions, independently of the loader.
#pragma once
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/tensor_names.hpp"

namespace g4::testing {

// The whole tensor as f32, whatever its type.
inline std::vector<float> ToF32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.shape.elements()));
  if (t.type == Type::I64) {
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, t.data + i * 8, 8);
      out[i] = static_cast<float>(v);
    }
  } else if (t.type == Type::I32) {
    for (size_t i = 0; i < out.size(); ++i) {
      int32_t v;
      std::memcpy(&v, t.data + i * 4, 4);
      out[i] = static_cast<float>(v);
    }
  } else {
    DequantizeRow(t.type, t.data, out.size(), out.data());
  }
  return out;
}


// Two configs describe the same model: every field but the architecture name (HF class vs GGUF arch). A GGUF
// states media token ids only through its tokenizer's pieces, so one written without a tokenizer cannot.
inline void CheckSameConfig(const Gemma4Config& a, const Gemma4Config& b, bool media_ids = true) {
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.hidden_size == b.hidden_size);
  CHECK(a.n_layers == b.n_layers);
  CHECK(a.n_heads == b.n_heads);
  CHECK(a.intermediate_size == b.intermediate_size);
  CHECK(a.sliding_window == b.sliding_window);
  CHECK(a.max_position == b.max_position);
  CHECK(a.rms_eps == b.rms_eps);
  CHECK(a.final_softcap == b.final_softcap);
  CHECK(a.num_kv_shared_layers == b.num_kv_shared_layers);
  REQUIRE(a.layers.size() == b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    CAPTURE(i);
    const LayerConfig &x = a.layers[i], &y = b.layers[i];
    CHECK(x.kind == y.kind);
    CHECK(x.head_dim == y.head_dim);
    CHECK(x.n_kv_heads == y.n_kv_heads);
    CHECK(x.rope_theta == y.rope_theta);
    CHECK(x.rope_partial == y.rope_partial);
    CHECK(x.rope_proportional == y.rope_proportional);
    CHECK(x.k_eq_v == y.k_eq_v);
    CHECK(x.RopeInvFreq() == y.RopeInvFreq());
  }
  CHECK(a.tokens.pad == b.tokens.pad);
  CHECK(a.tokens.bos == b.tokens.bos);
  CHECK(a.tokens.eos == b.tokens.eos);
  CHECK(a.tokens.stop_ids == b.tokens.stop_ids);
  if (media_ids) {
    CHECK(a.tokens.boi == b.tokens.boi);
    CHECK(a.tokens.eoi == b.tokens.eoi);
    CHECK(a.tokens.image == b.tokens.image);
    CHECK(a.tokens.boa == b.tokens.boa);
    CHECK(a.tokens.eoa == b.tokens.eoa);
    CHECK(a.tokens.audio == b.tokens.audio);
    CHECK(a.tokens.video == b.tokens.video);
  }
  CHECK(a.tokens.suppress == b.tokens.suppress);
  REQUIRE(a.vision.has_value() == b.vision.has_value());
  if (a.vision) {
    CHECK(a.vision->patch_px == b.vision->patch_px);
    CHECK(a.vision->mm_embed_dim == b.vision->mm_embed_dim);
    CHECK(a.vision->posemb_size == b.vision->posemb_size);
    CHECK(a.vision->output_dim == b.vision->output_dim);
  }
  REQUIRE(a.audio.has_value() == b.audio.has_value());
  if (a.audio) {
    CHECK(a.audio->frame_samples == b.audio->frame_samples);
    CHECK(a.audio->output_dim == b.audio->output_dim);
  }
  REQUIRE(a.assistant.has_value() == b.assistant.has_value());
  if (a.assistant) {
    CHECK(a.assistant->backbone_hidden == b.assistant->backbone_hidden);
    CHECK(a.assistant->use_ordered_embeddings == b.assistant->use_ordered_embeddings);
    CHECK(a.assistant->num_centroids == b.assistant->num_centroids);
  }
}

inline void CheckSameValues(const TensorView& a, const TensorView& b) {
  CAPTURE(a.name);
  CAPTURE(b.name);
  REQUIRE((a.data == nullptr) == (b.data == nullptr));
  if (!a.data) return;
  REQUIRE(a.shape == b.shape);
  CHECK(ToF32(a) == ToF32(b));
}

// Every weight by role of two checkpoints of one model holds the same values. The GGUF mmproj's CHW patch
// order and planar position table are undone here from the README's definition, independently of the loader.
inline void CheckSameWeights(const Checkpoint& hf, const Checkpoint& gg) {
  CheckSameValues(hf.text().embed, gg.text().embed);
  CheckSameValues(hf.text().final_norm, gg.text().final_norm);
  REQUIRE(hf.text().layers.size() == gg.text().layers.size());
  for (size_t i = 0; i < hf.text().layers.size(); ++i)
    for (const LayerTensorName& n : kLayerTensorNames) CheckSameValues(hf.text().layers[i].*n.member, gg.text().layers[i].*n.member);
  REQUIRE(hf.vision().has_value() == gg.vision().has_value());
  if (hf.vision()) {
    const VisionWeights &h = *hf.vision(), &g = *gg.vision();
    CHECK(!h.chw_patch_order);
    CHECK(g.chw_patch_order);
    CHECK(!h.pos_table_planar);
    CHECK(g.pos_table_planar);
    for (auto m : {&VisionWeights::patch_dense_b, &VisionWeights::patch_ln2_w, &VisionWeights::patch_ln2_b,
                   &VisionWeights::pos_norm_w, &VisionWeights::pos_norm_b, &VisionWeights::projection})
      CheckSameValues(h.*m, g.*m);
    const int p = hf.config().vision->patch_px;
    const size_t patch = static_cast<size_t>(p) * p * 3;
    // HWC index row*3p + col*3 + c  <->  CHW index c*p*p + row*p + col
    auto hwc_to_chw = [&](size_t hwc) { return (hwc % 3) * p * p + (hwc / (3 * p)) * p + (hwc / 3) % p; };
    for (auto m : {&VisionWeights::patch_ln1_w, &VisionWeights::patch_ln1_b, &VisionWeights::patch_dense_w}) {
      const std::vector<float> hv = ToF32(h.*m), gv = ToF32(g.*m);
      REQUIRE(hv.size() == gv.size());
      size_t mismatches = 0;
      for (size_t i = 0; i < hv.size(); ++i) mismatches += hv[i] != gv[i / patch * patch + hwc_to_chw(i % patch)];
      CHECK_MESSAGE(mismatches == 0, (h.*m).name);
    }
    const std::vector<float> hp = ToF32(h.pos_embedding), gp = ToF32(g.pos_embedding);
    const int64_t n_pos = h.pos_embedding.shape[0], dim = h.pos_embedding.shape[2];
    CHECK(g.pos_embedding.shape == Shape{2, n_pos, dim});
    size_t mismatches = 0;
    for (int64_t pos = 0; pos < n_pos; ++pos)
      for (int64_t plane = 0; plane < 2; ++plane)
        for (int64_t d = 0; d < dim; ++d) mismatches += hp[(pos * 2 + plane) * dim + d] != gp[(plane * n_pos + pos) * dim + d];
    CHECK(mismatches == 0);
  }
  REQUIRE(hf.audio().has_value() == gg.audio().has_value());
  if (hf.audio()) CheckSameValues(hf.audio()->projection, gg.audio()->projection);
  REQUIRE(hf.assistant().has_value() == gg.assistant().has_value());
  if (hf.assistant()) {
    CheckSameValues(hf.assistant()->pre_projection, gg.assistant()->pre_projection);
    CheckSameValues(hf.assistant()->post_projection, gg.assistant()->post_projection);
    CheckSameValues(hf.assistant()->centroids, gg.assistant()->centroids);
    CheckSameValues(hf.assistant()->token_ordering, gg.assistant()->token_ordering);
  }
}

}  // namespace g4::testing
