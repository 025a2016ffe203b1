// Gemma 4's linear audio framer (spec 3): each 640-sample frame becomes one soft token,
//   soft = projection RMSNorm(frame)    RMSNorm without weight, eps 1e-6; projection [hidden, 640], no bias.
// An all-zero frame (silence, or padding) maps to the zero vector. Not scaled by sqrt(hidden).
// Cost per frame: 640 * hidden multiply-adds (2.5 M on the 12B; 750 frames ~ 1.8 GMAC).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/embed_util.hpp"

namespace g4 {

class AudioEmbedder {
 public:
  static constexpr float kRmsNormEps = 1e-6f;

  // projection: HF model.embed_audio.embedding_projection.weight, GGUF mm.a.input_projection.weight.
  explicit AudioEmbedder(const TensorView& projection) : projection_(projection) {
    Require(projection.shape.rank == 2, projection.name.empty() ? "audio projection" : projection.name,
            "audio projection must be 2-D [hidden, 640], got " + projection.shape.str());
    hidden_ = projection.shape[0];
    CheckShape(projection, Shape{hidden_, static_cast<int64_t>(kAudioFrameSamples)}, "audio projection");
  }

  int64_t hidden() const { return hidden_; }

  // frames [n, 640] -> out [n, hidden].
  void Embed(const float* frames, size_t n, float* out, ThreadPool& pool) const {
    if (n == 0) return;
    std::vector<float> x(n * kAudioFrameSamples);
    RMSNorm(frames, nullptr, kRmsNormEps, n, kAudioFrameSamples, x.data());
    MatMul(projection_, x.data(), n, out, pool);
  }

  std::vector<float> Embed(const AudioFrames& f, ThreadPool& pool) const {
    std::vector<float> out(f.size() * static_cast<size_t>(hidden_));
    Embed(f.values.data(), f.size(), out.data(), pool);
    return out;
  }

 private:
  TensorView projection_;
  int64_t hidden_ = 0;
};

}  // namespace g4
