// An 8-bit RGB picture and the size limits every decoder and resizer checks before allocating.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"

namespace g4 {

// Decoding refuses anything larger before allocating: 2^27 pixels (a 16384 x 8192 photo) is 384 MiB of RGB.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 27;
inline constexpr int kMaxImageSide = 1 << 16;

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3], row-major, R G B interleaved

  uint8_t at(int y, int x, int c) const { return pixels[(static_cast<size_t>(y) * width + x) * 3 + c]; }
};

// Checks the dimensions of an image before anything is allocated for it.
inline void CheckImageSize(int64_t width, int64_t height, std::string_view where) {
  Require(width > 0 && height > 0, where, "image has no pixels (" + std::to_string(width) + "x" +
                                             std::to_string(height) + ")");
  Require(width <= kMaxImageSide && height <= kMaxImageSide && width * height <= kMaxImagePixels, where,
          "image of " + std::to_string(width) + "x" + std::to_string(height) + " pixels is larger than the " +
              std::to_string(kMaxImageSide) + "-pixel side / " + std::to_string(kMaxImagePixels) +
              "-pixel limit");
}

}  // namespace g4
