// Image decoding: PNG, JPEG, BMP, GIF (first frame) and PPM/PGM, from a file or a memory buffer, to 8-bit RGB.
// stb_image does the decoding (its implementation is compiled once, by g4/media/stb_image_impl.hpp, which
// g4/impl.hpp includes). Grey images are replicated to RGB and alpha is dropped, as PIL's convert("RGB") does.
// 16-bit PNGs are reduced to 8 bits by stb. A JPEG's EXIF orientation is applied by default, as transformers'
// load_image does before its processor runs (exif.hpp).
#pragma once
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/media/exif.hpp"
#include "g4/media/jpeg_guard.hpp"
#include "g4/media/rgb_image.hpp"
#include "g4/media/stb_image_config.hpp"

namespace g4 {

enum class Orientation { kApplyExif, kAsStored };

// A PNG's IHDR size against g4's limits before stb sees it: stb versions differ in what they say of a header past
// them (Debian 12's names the size, Debian 13's gives an empty reason), and no pixel memory should be asked for.
inline void CheckPngHeaderSize(std::span<const std::byte> bytes, std::string_view where) {
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() < 24 || std::memcmp(bytes.data(), kSignature, 8) != 0) return;
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(bytes[at + i]);
    return static_cast<int64_t>(v);
  };
  CheckImageSize(be32(16), be32(20), where);
}

// `where` names the source in error messages (a file name, or e.g. "image buffer").
inline RgbImage DecodeImage(std::span<const std::byte> bytes, std::string_view where,
                            Orientation orientation = Orientation::kApplyExif) {
  Require(!bytes.empty(), where, "empty image data");
  Require(bytes.size() <= static_cast<size_t>(INT_MAX), where, "image data above 2 GiB");
  CheckJpegHuffmanTables(bytes, where);
  CheckPngHeaderSize(bytes, where);
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
  if (orientation == Orientation::kAsStored) return img;
  return ApplyExifOrientation(std::move(img), JpegExifOrientation(bytes));
}

inline RgbImage LoadImage(const std::string& path, Orientation orientation = Orientation::kApplyExif) {
  const MappedFile file(path);
  return DecodeImage(file.bytes(), path, orientation);
}

}  // namespace g4
