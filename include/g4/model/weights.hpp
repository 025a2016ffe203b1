// Weights by role: what the forward passes read, as views into the checkpoint's files (mmapped, any type).
// Optional tensors are views with data == nullptr. io/checkpoint.hpp builds these from either file format and
// checks every shape against the config, reporting all problems at once.
#pragma once
#include <vector>

#include "g4/core/tensor.hpp"

namespace g4 {

struct LayerWeights {
  TensorView attn_norm;        // [hidden]
  TensorView q_proj;           // [n_heads * head_dim, hidden]
  TensorView k_proj;           // [n_kv * head_dim, hidden]      (absent in the drafter)
  TensorView v_proj;           // [n_kv * head_dim, hidden]      (absent on k_eq_v layers and in the drafter)
  TensorView o_proj;           // [hidden, n_heads * head_dim]
  TensorView q_norm;           // [head_dim]
  TensorView k_norm;           // [head_dim]                     (absent in the drafter)
  TensorView post_attn_norm;   // [hidden]
  TensorView ffn_norm;         // [hidden]  pre_feedforward_layernorm
  TensorView gate_proj;        // [intermediate, hidden]
  TensorView up_proj;          // [intermediate, hidden]
  TensorView down_proj;        // [hidden, intermediate]
  TensorView post_ffn_norm;    // [hidden]
  TensorView layer_scalar;     // [1]
};

struct TextWeights {
  TensorView embed;            // [vocab, hidden]  (also the tied output head)
  TensorView final_norm;       // [hidden]
  std::vector<LayerWeights> layers;
};

struct VisionWeights {
  bool chw_patch_order = false;  // true for llama.cpp's mmproj: patch vectors are channel-planar
  bool pos_table_planar = false; // true for GGUF: [2, posemb, dim]; safetensors: [posemb, 2, dim]
  TensorView patch_ln1_w, patch_ln1_b;     // [6912]
  TensorView patch_dense_w;                // [mm_embed_dim, 6912]
  TensorView patch_dense_b;                // [mm_embed_dim]
  TensorView patch_ln2_w, patch_ln2_b;     // [mm_embed_dim]
  TensorView pos_embedding;                // [posemb, 2, mm_embed_dim] or [2, posemb, mm_embed_dim]
  TensorView pos_norm_w, pos_norm_b;       // [mm_embed_dim]
  TensorView projection;                   // [hidden, mm_embed_dim]
};

struct AudioWeights {
  TensorView projection;                   // [hidden, 640]
};

struct AssistantWeights {
  TensorView pre_projection;               // [hidden, 2 * backbone_hidden]
  TensorView post_projection;              // [backbone_hidden, hidden]
  TensorView centroids;                    // [num_centroids, hidden]   (ordered embeddings only)
  TensorView token_ordering;               // [vocab]                   (ordered embeddings only; ids, any numeric type)
};

}  // namespace g4
