// WAV (RIFF/WAVE) decoding to mono float samples in [-1, 1]. Accepts PCM 8 (unsigned), 16, 24 and 32 bit,
// IEEE float 32 and 64 bit, plain or WAVE_FORMAT_EXTENSIBLE; channels are mixed down by averaging. Every
// length the file states is checked against the bytes actually there; a lie is an error naming the file.
// Integers are scaled by 2^-(bits-1) (8-bit: (u - 128) / 128), as soundfile/libsndfile do.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"

namespace g4 {

inline constexpr uint32_t kMinWavRate = 1000;
inline constexpr uint32_t kMaxWavRate = 768000;
inline constexpr uint16_t kMaxWavChannels = 64;

struct MonoAudio {
  int sample_rate = 0;
  std::vector<float> samples;  // [n]
};

namespace wav_detail {

inline uint16_t U16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);  // file bytes are little-endian, as is every target g4 builds for
  return v;
}
inline uint32_t U32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One sample as float: `p` points at `bytes` bytes of a little-endian PCM integer or IEEE float.
inline float Sample(const std::byte* p, int bytes, bool is_float) {
  if (is_float) {
    if (bytes == 4) {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    double d;
    std::memcpy(&d, p, 8);
    return static_cast<float>(d);
  }
  switch (bytes) {
    case 1: return (static_cast<float>(std::to_integer<uint8_t>(p[0])) - 128.0f) / 128.0f;
    case 2: return static_cast<float>(static_cast<int16_t>(U16(p))) / 32768.0f;
    case 3: {
      const uint32_t u = std::to_integer<uint32_t>(p[0]) | std::to_integer<uint32_t>(p[1]) << 8 |
                         std::to_integer<uint32_t>(p[2]) << 16;
      const int32_t s = static_cast<int32_t>(u << 8) >> 8;  // sign-extend 24 bits
      return static_cast<float>(s) / 8388608.0f;
    }
    default: return static_cast<float>(static_cast<double>(static_cast<int32_t>(U32(p))) / 2147483648.0);
  }
}

}  // namespace wav_detail

// `where` names the source in error messages.
inline MonoAudio DecodeWav(std::span<const std::byte> bytes, std::string_view where) {
  using namespace wav_detail;
  const size_t size = bytes.size();
  const std::byte* b = bytes.data();
  Require(size >= 12, where, "truncated WAV header (" + std::to_string(size) + " bytes)");
  Require(std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WAVE", 4) == 0, where,
          "not a WAV file (no RIFF/WAVE header)");
  // A RIFF size smaller than the file means trailing bytes that are not ours; a larger one is common in files
  // written by streaming tools and harmless as long as every chunk below fits in the file.
  const size_t end = std::min<uint64_t>(size, uint64_t{U32(b + 4)} + 8);

  struct Format {
    uint16_t tag = 0, channels = 0, bits = 0, block_align = 0;
    uint32_t rate = 0;
  };
  std::optional<Format> fmt;
  const std::byte* data = nullptr;
  size_t data_bytes = 0;
  for (size_t pos = 12; pos + 8 <= end;) {
    const std::byte* chunk = b + pos;
    const uint32_t len = U32(chunk + 4);
    const size_t left = end - pos - 8;
    const std::string id(reinterpret_cast<const char*>(chunk), 4);
    if (len > left) {
      Fail(where, "WAV '" + id + "' chunk of " + std::to_string(len) + " bytes is longer than the file (" +
                      std::to_string(left) + " bytes left)");
    }
    if (id == "fmt ") {
      Require(len >= 16, where, "WAV fmt chunk of " + std::to_string(len) + " bytes is truncated (needs 16)");
      Format f;
      f.tag = U16(chunk + 8);
      f.channels = U16(chunk + 10);
      f.rate = U32(chunk + 12);
      f.block_align = U16(chunk + 20);
      f.bits = U16(chunk + 22);
      if (f.tag == 0xFFFE) {  // WAVE_FORMAT_EXTENSIBLE: the real format is the first 2 bytes of the sub-format GUID
        Require(len >= 40, where, "WAVE_FORMAT_EXTENSIBLE fmt chunk of " + std::to_string(len) + " bytes is truncated (needs 40)");
        static constexpr unsigned char kGuidTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                                        0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
        Require(std::memcmp(chunk + 8 + 26, kGuidTail, 14) == 0, where, "WAV sub-format GUID is not PCM or IEEE float");
        f.tag = U16(chunk + 8 + 24);
      }
      fmt = f;
    } else if (id == "data") {
      data = chunk + 8;
      data_bytes = len;
    }
    pos += 8 + static_cast<size_t>(len) + (len & 1);  // chunks are padded to an even size
  }
  Require(fmt.has_value(), where, "WAV file has no fmt chunk (truncated header?)");
  Require(data != nullptr, where, "WAV file has no data chunk");

  const Format f = *fmt;
  const bool is_float = f.tag == 3;
  Require(f.tag == 1 || f.tag == 3, where, "WAV format tag " + std::to_string(f.tag) + " is not PCM (1) or IEEE float (3)");
  Require(f.channels >= 1 && f.channels <= kMaxWavChannels, where,
          "WAV declares " + std::to_string(f.channels) + " channels (1.." + std::to_string(kMaxWavChannels) + " accepted)");
  Require(f.rate >= kMinWavRate && f.rate <= kMaxWavRate, where,
          "WAV sample rate " + std::to_string(f.rate) + " Hz is outside " + std::to_string(kMinWavRate) + ".." +
              std::to_string(kMaxWavRate) + " Hz");
  const bool bits_ok = is_float ? (f.bits == 32 || f.bits == 64) : (f.bits == 8 || f.bits == 16 || f.bits == 24 || f.bits == 32);
  Require(bits_ok, where, std::string("WAV ") + (is_float ? "float" : "PCM") + " with " + std::to_string(f.bits) +
                              " bits per sample is not supported");
  const int sample_bytes = f.bits / 8;
  Require(f.block_align == f.channels * sample_bytes, where,
          "WAV block align " + std::to_string(f.block_align) + " does not match " + std::to_string(f.channels) +
              " channels of " + std::to_string(f.bits) + " bits");

  MonoAudio out;
  out.sample_rate = static_cast<int>(f.rate);
  const size_t n = data_bytes / f.block_align;  // a trailing partial frame is dropped
  out.samples.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::byte* frame = data + i * f.block_align;
    float sum = 0.0f;
    for (int c = 0; c < f.channels; ++c) sum += Sample(frame + c * sample_bytes, sample_bytes, is_float);
    out.samples[i] = sum / static_cast<float>(f.channels);
  }
  return out;
}

inline MonoAudio LoadWav(const std::string& path) {
  const MappedFile file(path);
  return DecodeWav(file.bytes(), path);
}

}  // namespace g4
