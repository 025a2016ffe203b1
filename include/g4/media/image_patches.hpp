// Gemma 4 image preprocessing (spec 2.2): pick the aspect-preserving size for a soft-token budget, resize
// (antialiased bicubic on uint8), scale to [0, 1] (no mean/std normalisation) and cut into 48x48 patches in
// raster order, each with its (x, y) position in 48-pixel units. Padding rows are not produced: they carry
// no information and the embedders drop them anyway.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/patch_order.hpp"
#include "g4/media/rgb_image.hpp"
#include "g4/media/resize.hpp"

namespace g4 {

inline constexpr int kPatchPixels = 48;                              // 16-px patches merged 3x3
inline constexpr int kPatchValues = kPatchPixels * kPatchPixels * 3;  // 6912
inline constexpr int kImageBudgets[] = {70, 140, 280, 560, 1120};     // soft tokens per image
inline constexpr int kDefaultImageBudget = 280;

struct ImagePatches {
  int grid_width = 0, grid_height = 0;  // in patches; size() = grid_width * grid_height <= budget
  PatchOrder order = PatchOrder::kHWC;
  std::vector<float> values;      // [size(), 6912] in `order`, each in [0, 1]
  std::vector<int32_t> positions;  // [size(), 2]: (x = column, y = row)

  size_t size() const { return static_cast<size_t>(grid_width) * grid_height; }
};

// How pixels become [0, 1]. transformers' image processor rescales, x * float(1/255) (do_normalize is off); its
// video processor has do_normalize on with mean 0 and std 1, which fuses rescale into normalize as x / 255.0f:
// the two differ in the last bit for some x (docs/video.md).
enum class PixelScale { kImage, kVideo };

inline void CheckImageBudget(int budget) {
  for (int b : kImageBudgets)
    if (b == budget) return;
  Fail("image budget", std::to_string(budget) + " soft tokens is not one of 70, 140, 280, 560, 1120");
}

struct ImageSize {
  int width = 0, height = 0;
};

// HF's get_aspect_ratio_preserving_size: scale the area to budget * 9 patches of 16x16 pixels, then round
// each side down to a multiple of 48. A side that rounds to 0 (a thin strip) becomes 48 and the other
// floor(long / short) * 48, capped at budget * 48. Evaluated in double, in HF's order of operations, so that
// borderline sizes round the same way.
inline ImageSize TargetImageSize(int width, int height, int budget) {
  CheckImageBudget(budget);
  CheckImageSize(width, height, "image");
  const double total_px = static_cast<double>(height) * static_cast<double>(width);
  const double target_px = static_cast<double>(budget) * 9.0 * 256.0;
  const double factor = std::sqrt(target_px / total_px);
  const double ideal_h = factor * height, ideal_w = factor * width;
  int h = static_cast<int>(std::floor(ideal_h / kPatchPixels)) * kPatchPixels;
  int w = static_cast<int>(std::floor(ideal_w / kPatchPixels)) * kPatchPixels;
  const int max_side = budget * kPatchPixels;
  // Both sides cannot round to 0: the area is budget * 2304 >= 48 * 48 * 70.
  if (h == 0) {
    h = kPatchPixels;
    w = std::min(static_cast<int>(std::floor(static_cast<double>(width) / height)) * kPatchPixels, max_side);
  } else if (w == 0) {
    w = kPatchPixels;
    h = std::min(static_cast<int>(std::floor(static_cast<double>(height) / width)) * kPatchPixels, max_side);
  }
  return {w, h};
}

// Cuts an image whose sides are multiples of 48 into patches scaled to [0, 1].
inline ImagePatches Patchify(const RgbImage& img, PatchOrder order, PixelScale scale = PixelScale::kImage) {
  Require(img.width > 0 && img.height > 0 && img.width % kPatchPixels == 0 && img.height % kPatchPixels == 0,
          "patchify", "image of " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                          " is not a whole number of 48-pixel patches");
  ImagePatches p;
  p.grid_width = img.width / kPatchPixels;
  p.grid_height = img.height / kPatchPixels;
  p.order = order;
  p.values.resize(p.size() * kPatchValues);
  p.positions.resize(p.size() * 2);
  constexpr int kPlane = kPatchPixels * kPatchPixels;
  constexpr float kRescale = static_cast<float>(1.0 / 255.0);
  float table[256];
  for (int x = 0; x < 256; ++x) table[x] = scale == PixelScale::kImage ? static_cast<float>(x) * kRescale : static_cast<float>(x) / 255.0f;
  for (int gy = 0; gy < p.grid_height; ++gy) {
    for (int gx = 0; gx < p.grid_width; ++gx) {
      const size_t n = static_cast<size_t>(gy) * p.grid_width + gx;
      float* v = &p.values[n * kPatchValues];
      for (int r = 0; r < kPatchPixels; ++r)
        for (int c = 0; c < kPatchPixels; ++c)
          for (int ch = 0; ch < 3; ++ch) {
            const int idx = order == PatchOrder::kHWC ? (r * kPatchPixels + c) * 3 + ch : ch * kPlane + r * kPatchPixels + c;
            // kImage: x * float(1/255), as torch rescales (bit-identical to HF); kVideo: x / 255.0f.
            v[idx] = table[img.at(gy * kPatchPixels + r, gx * kPatchPixels + c, ch)];
          }
      p.positions[n * 2 + 0] = gx;
      p.positions[n * 2 + 1] = gy;
    }
  }
  return p;
}

// The whole preprocessing: target size for `budget`, resize (skipped when already that size), patchify.
inline ImagePatches PreprocessImage(const RgbImage& img, int budget, PatchOrder order, PixelScale scale = PixelScale::kImage) {
  const ImageSize size = TargetImageSize(img.width, img.height, budget);
  if (size.width == img.width && size.height == img.height) return Patchify(img, order, scale);
  return Patchify(ResizeBicubicAntialias(img, size.width, size.height), order, scale);
}

}  // namespace g4
