// EXIF orientation of JPEG files (phones store pictures unrotated and record the rotation in the EXIF tag
// 0x0112). transformers' load_image applies it (PIL.ImageOps.exif_transpose) before the processor sees the
// picture, so a runtime that skipped it would feed the model a sideways photo. Every offset read from the
// file is bounds-checked; a malformed EXIF block is ignored (orientation 1), as PIL does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "g4/media/rgb_image.hpp"

namespace g4 {

// 1 (as stored) .. 8; 1 when the file is not a JPEG or has no valid orientation tag.
inline int JpegExifOrientation(std::span<const std::byte> b) {
  const size_t n = b.size();
  auto u8 = [&](size_t i) { return std::to_integer<uint32_t>(b[i]); };
  if (n < 4 || u8(0) != 0xFF || u8(1) != 0xD8) return 1;
  // Marker segments up to the first scan; EXIF lives in an APP1 segment starting "Exif\0\0".
  for (size_t pos = 2; pos + 4 <= n && u8(pos) == 0xFF;) {
    const uint32_t marker = u8(pos + 1);
    const size_t len = u8(pos + 2) << 8 | u8(pos + 3);
    if (marker == 0xDA || marker == 0xD9 || len < 2 || pos + 2 + len > n) return 1;
    if (marker == 0xE1 && len >= 8 && std::memcmp(b.data() + pos + 4, "Exif\0\0", 6) == 0) {
      const std::byte* tiff = b.data() + pos + 10;
      const size_t size = len - 8;
      if (size < 8) return 1;
      const bool little = std::memcmp(tiff, "II", 2) == 0;
      if (!little && std::memcmp(tiff, "MM", 2) != 0) return 1;
      auto get = [&](size_t off, int bytes) {  // unsigned integer in the file's byte order
        uint32_t v = 0;
        for (int k = 0; k < bytes; ++k) {
          const uint32_t byte = std::to_integer<uint32_t>(tiff[off + static_cast<size_t>(little ? bytes - 1 - k : k)]);
          v = v << 8 | byte;
        }
        return v;
      };
      const size_t ifd = get(4, 4);
      if (ifd > size - 2) return 1;
      const size_t entries = get(ifd, 2);
      for (size_t e = 0; e < entries && ifd + 2 + 12 * (e + 1) <= size; ++e) {
        const size_t at = ifd + 2 + 12 * e;
        if (get(at, 2) == 0x0112 && get(at + 2, 2) == 3) {  // Orientation, type SHORT: value in the first 2 bytes
          const uint32_t v = get(at + 8, 2);
          return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
        }
      }
      return 1;
    }
    pos += 2 + len;
  }
  return 1;
}

// Turns a picture stored with EXIF `orientation` upright (PIL's exif_transpose): 2 mirror, 3 rotate 180,
// 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
inline RgbImage ApplyExifOrientation(RgbImage src, int orientation) {
  if (orientation < 2 || orientation > 8) return src;
  const int W = src.width, H = src.height;
  const bool swap = orientation >= 5;
  RgbImage out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.pixels.resize(src.pixels.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the source pixel shown at (x, y)
      switch (orientation) {
        case 2: sx = W - 1 - x; break;
        case 3: sx = W - 1 - x, sy = H - 1 - y; break;
        case 4: sy = H - 1 - y; break;
        case 5: sx = y, sy = x; break;
        case 6: sx = y, sy = H - 1 - x; break;
        case 7: sx = W - 1 - y, sy = H - 1 - x; break;
        case 8: sx = W - 1 - y, sy = x; break;
      }
      for (int c = 0; c < 3; ++c) out.pixels[(static_cast<size_t>(y) * out.width + x) * 3 + c] = src.at(sy, sx, c);
    }
  }
  return out;
}

}  // namespace g4
