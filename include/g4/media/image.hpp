// Image decoding: PNG, JPEG, BMP, GIF (first frame) and PPM/PGM, from a file or a memory buffer, to 8-bit RGB.
// stb_image does the decoding (its implementation is compiled once, by g4/media/stb_image_impl.hpp, which
// g4/impl.hpp includes). Grey images are replicated to RGB and alpha is dropped, as PIL's convert("RGB") does.
// 16-bit PNGs are reduced to 8 bits by stb. EXIF orientation is ignored (as the HF processor does).
#pragma once
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/media/jpeg_guard.hpp"
#include "g4/media/stb_image_config.hpp"

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

// `where` names the source in error messages (a file name, or e.g. "image buffer").
inline RgbImage DecodeImage(std::span<const std::byte> bytes, std::string_view where) {
  Require(!bytes.empty(), where, "empty image data");
  Require(bytes.size() <= static_cast<size_t>(INT_MAX), where, "image data above 2 GiB");
  CheckJpegHuffmanTables(bytes, where);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, channels = 0;
  using Decoded = std::unique_ptr<stbi_uc, decltype(&stbi_image_free)>;
  if (!stbi_info_from_memory(data, len, &w, &h, &channels)) {
    // The header probe tries every format and keeps the last one's complaint ("unknown image type"); the
    // loader stops at the format the signature names and fails on the same header check, with the real reason.
    const Decoded probe(stbi_load_from_memory(data, len, &w, &h, &channels, 3), &stbi_image_free);
    Fail(where, std::string("cannot decode image: ") + (probe ? "inconsistent header" : stbi_failure_reason()));
  }
  CheckImageSize(w, h, where);
  const Decoded decoded(stbi_load_from_memory(data, len, &w, &h, &channels, 3), &stbi_image_free);
  if (!decoded) Fail(where, std::string("cannot decode image: ") + stbi_failure_reason());
  CheckImageSize(w, h, where);  // the same as the header said, unless the file lies; check again
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.assign(decoded.get(), decoded.get() + static_cast<size_t>(w) * h * 3);
  return img;
}

inline RgbImage LoadImage(const std::string& path) {
  const MappedFile file(path);
  return DecodeImage(file.bytes(), path);
}

}  // namespace g4
