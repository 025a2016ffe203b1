// The two orders of the values in an image patch vector, and the permutation between them. HWC is the Hugging Face
// checkpoint's (index row*3p + col*3 + c); CHW is llama.cpp's mmproj GGUF's, whose converter permutes patch_dense and
// patch_ln1 for ggml's im2col (index c*p*p + row*p + col). Here, not in media/, because the GGUF writer permutes
// weights with it too.
#pragma once
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

namespace g4 {

enum class PatchOrder { kHWC, kCHW };

// Rewrites rows of HWC patch vectors ([n, 3 p p]) in place into CHW order: how llama.cpp's converter permutes
// patch_dense columns, and how the golden HWC pixel rows are fed to an mmproj's embedder.
inline void HwcToChwRows(std::span<float> rows, int p) {
  const size_t patch = static_cast<size_t>(3 * p * p);
  std::vector<float> row(patch);
  for (size_t base = 0; base + patch <= rows.size(); base += patch) {
    for (size_t i = 0; i < patch; ++i) row[(i % 3) * p * p + (i / (3 * p)) * p + (i / 3) % p] = rows[base + i];
    std::copy(row.begin(), row.end(), rows.begin() + static_cast<std::ptrdiff_t>(base));
  }
}

}  // namespace g4
