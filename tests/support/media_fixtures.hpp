// Media files made by the tests: pictures written by stb_image_write (PNG, BMP, JPEG), GIFs and WAVs assembled byte
// by byte. It expands stb_image_write, so a suite includes it in its one translation unit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace g4::testing {

inline void AppendTo(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<std::byte>*>(ctx);
  const auto* p = static_cast<const std::byte*>(data);
  out->insert(out->end(), p, p + size);
}

// A smooth test picture (JPEG-friendly) with distinct channels.
inline std::vector<uint8_t> TestPicture(int w, int h, int comp) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) px[(y * w + x) * comp + c] = static_cast<uint8_t>(x * 255 / (w - 1) * (c != 1) + y * 200 / (h - 1) * (c == 1) + 20 * c);
  return px;
}

// GIF89a with a 256-colour palette (index i -> (i, 255 - i, i / 2)) and one image per `frames` entry. The LZW
// stream sends a clear code before every pixel, so each code is a literal and stays 9 bits wide.
inline std::vector<std::byte> MakeGif(int w, int h, const std::vector<std::vector<uint8_t>>& frames) {
  std::vector<uint8_t> g = {'G', 'I', 'F', '8', '9', 'a', static_cast<uint8_t>(w), 0, static_cast<uint8_t>(h), 0, 0xF7, 0, 0};
  for (int i = 0; i < 256; ++i) g.insert(g.end(), {static_cast<uint8_t>(i), static_cast<uint8_t>(255 - i), static_cast<uint8_t>(i / 2)});
  for (const auto& idx : frames) {
    g.insert(g.end(), {0x2C, 0, 0, 0, 0, static_cast<uint8_t>(w), 0, static_cast<uint8_t>(h), 0, 0, 8});
    std::vector<uint8_t> stream;
    uint32_t acc = 0;
    int bits = 0;
    auto put = [&](uint32_t code) {
      acc |= code << bits;
      bits += 9;
      while (bits >= 8) {
        stream.push_back(static_cast<uint8_t>(acc & 0xFF));
        acc >>= 8;
        bits -= 8;
      }
    };
    for (uint8_t i : idx) {
      put(256);
      put(i);
    }
    put(257);
    if (bits) stream.push_back(static_cast<uint8_t>(acc));
    for (size_t s = 0; s < stream.size(); s += 255) {
      const size_t n = std::min<size_t>(255, stream.size() - s);
      g.push_back(static_cast<uint8_t>(n));
      g.insert(g.end(), stream.begin() + static_cast<std::ptrdiff_t>(s), stream.begin() + static_cast<std::ptrdiff_t>(s + n));
    }
    g.push_back(0);
  }
  g.push_back(0x3B);
  std::vector<std::byte> b(g.size());
  std::memcpy(b.data(), g.data(), g.size());
  return b;
}

struct WavSpec {
  uint16_t tag = 1;  // 1 PCM, 3 float
  uint16_t channels = 1;
  uint32_t rate = 16000;
  uint16_t bits = 16;
  bool extensible = false;
};

inline void Put16(std::vector<std::byte>& b, uint16_t v) { for (int i = 0; i < 2; ++i) b.push_back(std::byte(v >> (8 * i))); }
inline void Put32(std::vector<std::byte>& b, uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(std::byte(v >> (8 * i))); }
inline void PutTag(std::vector<std::byte>& b, const char* tag) { for (int i = 0; i < 4; ++i) b.push_back(std::byte(tag[i])); }

// A WAV file around `data`; `data_len` overrides the data chunk's declared length. A LIST chunk before
// fmt checks that unknown chunks are skipped.
inline std::vector<std::byte> MakeWav(const WavSpec& s, const std::vector<std::byte>& data, int64_t data_len = -1) {
  std::vector<std::byte> b;
  PutTag(b, "RIFF");
  Put32(b, 0);  // patched below
  PutTag(b, "WAVE");
  PutTag(b, "LIST");
  Put32(b, 5);
  for (int i = 0; i < 6; ++i) b.push_back(std::byte{'x'});  // 5 bytes + 1 pad byte
  PutTag(b, "fmt ");
  Put32(b, s.extensible ? 40 : 16);
  Put16(b, s.extensible ? 0xFFFE : s.tag);
  Put16(b, s.channels);
  Put32(b, s.rate);
  Put32(b, s.rate * s.channels * s.bits / 8);
  Put16(b, static_cast<uint16_t>(s.channels * s.bits / 8));
  Put16(b, s.bits);
  if (s.extensible) {
    Put16(b, 22);
    Put16(b, s.bits);
    Put32(b, 0);
    Put16(b, s.tag);
    const uint8_t tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
    for (uint8_t v : tail) b.push_back(std::byte{v});
  }
  PutTag(b, "data");
  Put32(b, data_len >= 0 ? static_cast<uint32_t>(data_len) : static_cast<uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  const uint32_t riff = static_cast<uint32_t>(b.size() - 8);
  std::memcpy(b.data() + 4, &riff, 4);
  return b;
}


}  // namespace g4::testing
