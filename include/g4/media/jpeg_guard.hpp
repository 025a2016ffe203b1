// A pre-check for a memory-safety bug in the stb_image this project builds with (Debian's 2.27, fixed upstream
// in 2.28): a JPEG "define Huffman table" (DHT) segment whose 16 code counts sum to more than 256 makes
// stbi__build_huffman write past its 257-entry size table. This walks the marker segments the way stb does
// (entropy-coded data skipped up to the next marker that is not a stuffed 0xFF00 or a restart) and rejects
// such a table before stb sees it. Cost: one pass over the bytes.
// Known and not guarded (no memory access, only arithmetic): on corrupt scan data 2.27's bit reader can shift
// by more than 31 bits (UBSan "shift exponent"); 2.28 checks the bit count there.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "g4/core/error.hpp"

namespace g4 {

inline void CheckJpegHuffmanTables(std::span<const std::byte> bytes, std::string_view where) {
  const size_t n = bytes.size();
  auto at = [&](size_t i) { return std::to_integer<uint32_t>(bytes[i]); };
  if (n < 2 || at(0) != 0xFF || at(1) != 0xD8) return;  // not a JPEG
  size_t pos = 2;
  while (pos + 1 < n) {
    if (at(pos) != 0xFF) {  // inside entropy-coded data: find the next real marker
      ++pos;
      continue;
    }
    const uint32_t m = at(pos + 1);
    if (m == 0x00 || m == 0xFF || (m >= 0xD0 && m <= 0xD7)) {  // stuffed byte, fill byte, restart marker
      pos += m == 0xFF ? 1 : 2;
      continue;
    }
    if (m == 0xD9) return;  // end of image
    if (pos + 3 >= n) return;
    const size_t len = at(pos + 2) << 8 | at(pos + 3);  // includes its own 2 bytes
    if (m == 0xC4) {
      // As stb reads it: tables follow while the declared length lasts, each read in full even when it runs
      // past the segment (bytes past the end of the file read as 0).
      auto byte = [&](size_t i) { return i < n ? at(i) : 0u; };
      int64_t left = static_cast<int64_t>(len) - 2;
      for (size_t t = pos + 4; left > 0;) {
        uint32_t count = 0;
        for (size_t i = 1; i <= 16; ++i) count += byte(t + i);
        Require(count <= 256, where, "cannot decode image: corrupt JPEG (Huffman table of " + std::to_string(count) +
                                         " codes; at most 256)");
        t += 17 + count;
        left -= 17 + static_cast<int64_t>(count);
      }
    }
    pos += 2 + len;
  }
}

}  // namespace g4
