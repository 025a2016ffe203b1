// Gemma 4's encoder-free vision embedder (spec 2.3): each 48x48 patch (6912 values in [0, 1]) becomes one
// soft token of the text hidden size, with no transformer in between:
//   x = LayerNorm(patch; patch_ln1)            eps 1e-5, over 6912
//   x = patch_dense x + b                      [dim, 6912], dim = 3840 on the 12B
//   x = LayerNorm(x; patch_ln2) + pos_x[col] + pos_y[row]
//   x = LayerNorm(x; pos_norm)
//   x = RMSNorm(x) without weight              eps 1e-6
//   soft = projection x                        [hidden, dim], no bias
// The matrices are used in place (any weight type, through g4::MatMul); the 1-D weights are converted to f32
// once here. The two checkpoint formats differ in two layouts, both recorded in VisionWeights
// (model/weights.hpp): the patch vector order (HF safetensors HWC, llama.cpp mmproj CHW: chw_patch_order) and
// the position table (HF pos_embedding [n_pos, 2, dim], GGUF v.position_embd [2, n_pos, dim]: pos_table_planar).
// Cost per patch: 6912 * dim + dim * hidden multiply-adds (41 M on the 12B; 280 patches ~ 11.6 G).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/media/embed_util.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/model/weights.hpp"

namespace g4 {

class VisionEmbedder {
 public:
  static constexpr float kLayerNormEps = 1e-5f;
  static constexpr float kRmsNormEps = 1e-6f;

  // Weights by role from a Checkpoint (model/weights.hpp), which records the file's patch order and table layout.
  explicit VisionEmbedder(const VisionWeights& w) : w_(w), order_(w.chw_patch_order ? PatchOrder::kCHW : PatchOrder::kHWC) {
    Require(w.patch_dense_w.shape.rank == 2, w.patch_dense_w.name.empty() ? "patch_dense" : w.patch_dense_w.name,
            "patch_dense weight must be 2-D [dim, 6912], got " + w.patch_dense_w.shape.str());
    dim_ = w.patch_dense_w.shape[0];
    CheckShape(w.patch_dense_w, Shape{dim_, kPatchValues}, "patch_dense weight");
    Require(w.projection.shape.rank == 2, w.projection.name.empty() ? "projection" : w.projection.name,
            "projection must be 2-D [hidden, dim], got " + w.projection.shape.str());
    hidden_ = w.projection.shape[0];
    CheckShape(w.projection, Shape{hidden_, dim_}, "vision projection");
    const Shape& ps = w.pos_embedding.shape;
    Require(ps.rank == 3, w.pos_embedding.name.empty() ? "pos_embedding" : w.pos_embedding.name,
            "position table must be 3-D, got " + ps.str());
    n_pos_ = !w.pos_table_planar ? ps[0] : ps[1];
    CheckShape(w.pos_embedding,
               !w.pos_table_planar ? Shape{n_pos_, 2, dim_} : Shape{2, n_pos_, dim_},
               "position table");
    ln1_w_ = VectorToF32(w.patch_ln1_w, kPatchValues, "patch_ln1 weight");
    ln1_b_ = VectorToF32(w.patch_ln1_b, kPatchValues, "patch_ln1 bias");
    dense_b_ = VectorToF32(w.patch_dense_b, dim_, "patch_dense bias");
    ln2_w_ = VectorToF32(w.patch_ln2_w, dim_, "patch_ln2 weight");
    ln2_b_ = VectorToF32(w.patch_ln2_b, dim_, "patch_ln2 bias");
    pos_norm_w_ = VectorToF32(w.pos_norm_w, dim_, "pos_norm weight");
    pos_norm_b_ = VectorToF32(w.pos_norm_b, dim_, "pos_norm bias");
  }

  PatchOrder order() const { return order_; }
  int64_t hidden() const { return hidden_; }  // soft-token width (the text model's hidden size)
  int64_t dim() const { return dim_; }
  int64_t n_positions() const { return n_pos_; }

  // patches: [n, 6912] in order(); positions: [n, 2] as (x, y); out: [n, hidden].
  void Embed(std::span<const float> patches, std::span<const int32_t> positions, size_t n, float* out,
             ThreadPool& pool) const {
    Require(patches.size() == n * kPatchValues, "vision embedder",
            "patch values: " + std::to_string(patches.size()) + " for " + std::to_string(n) + " patches of 6912");
    Require(positions.size() == n * 2, "vision embedder",
            "positions: " + std::to_string(positions.size()) + " for " + std::to_string(n) + " patches");
    for (size_t i = 0; i < 2 * n; ++i)
      Require(positions[i] >= 0 && positions[i] < n_pos_, "vision embedder",
              "patch position " + std::to_string(positions[i]) + " outside the table of " + std::to_string(n_pos_));
    if (n == 0) return;
    const size_t dim = static_cast<size_t>(dim_);
    std::vector<float> x(patches.begin(), patches.end());  // [n, 6912]
    LayerNorm(x.data(), ln1_w_.data(), ln1_b_.data(), kLayerNormEps, n, kPatchValues, x.data());
    std::vector<float> h(n * dim);  // [n, dim]
    MatMul(w_.patch_dense_w, x.data(), n, h.data(), pool);
    for (size_t t = 0; t < n; ++t)
      for (size_t i = 0; i < dim; ++i) h[t * dim + i] += dense_b_[i];
    LayerNorm(h.data(), ln2_w_.data(), ln2_b_.data(), kLayerNormEps, n, dim, h.data());
    std::vector<float> row(dim);
    for (size_t t = 0; t < n; ++t) {
      for (int axis = 0; axis < 2; ++axis) {
        DequantizeTensorRow(w_.pos_embedding, PositionRow(positions[t * 2 + axis], axis), row.data());
        for (size_t i = 0; i < dim; ++i) h[t * dim + i] += row[i];
      }
    }
    LayerNorm(h.data(), pos_norm_w_.data(), pos_norm_b_.data(), kLayerNormEps, n, dim, h.data());
    RMSNorm(h.data(), nullptr, kRmsNormEps, n, dim, h.data());
    MatMul(w_.projection, h.data(), n, out, pool);
  }

  // Preprocessed image -> [size(), hidden] soft tokens.
  std::vector<float> Embed(const ImagePatches& p, ThreadPool& pool) const {
    Require(p.order == order_, "vision embedder", "patches were cut in the other order (HWC vs CHW) than the weights expect");
    std::vector<float> out(p.size() * static_cast<size_t>(hidden_));
    Embed(p.values, p.positions, p.size(), out.data(), pool);
    return out;
  }

 private:
  // Row of the flattened position table holding position `pos` of `axis` (0 = x, 1 = y).
  int64_t PositionRow(int64_t pos, int axis) const {
    return !w_.pos_table_planar ? pos * 2 + axis : axis * n_pos_ + pos;
  }

  VisionWeights w_;
  PatchOrder order_;
  int64_t dim_ = 0, hidden_ = 0, n_pos_ = 0;
  std::vector<float> ln1_w_, ln1_b_, dense_b_, ln2_w_, ln2_b_, pos_norm_w_, pos_norm_b_;
};

}  // namespace g4
