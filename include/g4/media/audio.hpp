// Gemma 4 audio input (spec 3): 16 kHz mono float samples cut into 640-sample frames (40 ms, one soft token
// each; hop 640, no overlap), the tail zero-padded. No mel, no scaling, no normalisation. One clip is at most
// 30 s (750 tokens): longer input is an error unless the caller asks for 30 s pieces.
#pragma once
#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/media/resample.hpp"
#include "g4/media/wav.hpp"

namespace g4 {

inline constexpr int kAudioSampleRate = 16000;
inline constexpr size_t kAudioFrameSamples = 640;
inline constexpr size_t kMaxAudioTokens = 750;  // 30 s
inline constexpr size_t kMaxAudioSamples = kMaxAudioTokens * kAudioFrameSamples;

struct AudioFrames {
  std::vector<float> values;  // [size(), 640]

  size_t size() const { return values.size() / kAudioFrameSamples; }
  const float* frame(size_t i) const { return values.data() + i * kAudioFrameSamples; }
};

enum class LongAudio { kError, kSplit };  // what to do with more than 30 s

// Frames 16 kHz samples. Returns one clip, or with LongAudio::kSplit as many consecutive 30 s pieces as needed
// (every piece but the last is exactly 750 frames).
inline std::vector<AudioFrames> FrameAudio(std::span<const float> samples, LongAudio long_audio = LongAudio::kError) {
  Require(!samples.empty(), "audio", "no samples");
  Require(samples.size() <= kMaxAudioSamples || long_audio == LongAudio::kSplit, "audio",
          std::to_string(samples.size()) + " samples (" + std::to_string(samples.size() / kAudioSampleRate) +
              " s) exceed the 30 s (750-token) limit of one clip; pass LongAudio::kSplit to cut it into 30 s pieces");
  std::vector<AudioFrames> pieces;
  for (size_t start = 0; start < samples.size(); start += kMaxAudioSamples) {
    const size_t n = std::min(kMaxAudioSamples, samples.size() - start);
    AudioFrames f;
    f.values.assign((n + kAudioFrameSamples - 1) / kAudioFrameSamples * kAudioFrameSamples, 0.0f);  // zero tail
    std::copy_n(samples.begin() + static_cast<std::ptrdiff_t>(start), n, f.values.begin());
    pieces.push_back(std::move(f));
  }
  return pieces;
}

// WAV file -> mono -> 16 kHz.
inline std::vector<float> LoadAudio16k(const std::string& path) {
  const MonoAudio a = LoadWav(path);
  return Resample(a.samples, a.sample_rate, kAudioSampleRate);
}

}  // namespace g4
