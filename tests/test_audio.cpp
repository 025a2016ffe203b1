// Audio: WAV decoding of every encoding (hostile and truncated files refused), resampling to 16 kHz, and the
// framing of audio_features against the multimodal reference case.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "g4/media/audio.hpp"
#include "g4/media/resample.hpp"
#include "g4/media/wav.hpp"
#include "support/errors.hpp"
#include "support/golden_multimodal.hpp"
#include "support/media_fixtures.hpp"
#include "support/temp_files.hpp"

namespace g4_test_audio {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::testing;

// ---- WAV ------------------------------------------------------------------------------------------------------

TEST_CASE("wav: every encoding decodes to the expected floats; channels are averaged") {
  // Full-scale and mid values per encoding, with their float meaning (2^-(bits-1) scaling; 8-bit offset 128).
  {
    std::vector<std::byte> d = {std::byte{0}, std::byte{128}, std::byte{255}, std::byte{192}};
    const MonoAudio a = DecodeWav(MakeWav({1, 1, 8000, 8}, d), "u8");
    CHECK(a.sample_rate == 8000);
    CHECK(a.samples == std::vector<float>{-1.0f, 0.0f, 127.0f / 128, 0.5f});
  }
  {
    std::vector<std::byte> d;
    for (int16_t v : {int16_t{-32768}, int16_t{0}, int16_t{16384}, int16_t{32767}}) Put16(d, static_cast<uint16_t>(v));
    CHECK(DecodeWav(MakeWav({1, 1, 16000, 16}, d), "s16").samples == std::vector<float>{-1.0f, 0.0f, 0.5f, 32767.0f / 32768});
  }
  {
    std::vector<std::byte> d;
    for (int32_t v : {-8388608, -4194304, 1, 8388607})
      for (int i = 0; i < 3; ++i) d.push_back(std::byte(static_cast<uint32_t>(v) >> (8 * i)));
    CHECK(DecodeWav(MakeWav({1, 1, 16000, 24}, d), "s24").samples ==
          std::vector<float>{-1.0f, -0.5f, 1.0f / 8388608, 8388607.0f / 8388608});
  }
  {
    std::vector<std::byte> d;
    for (int32_t v : {INT32_MIN, 1 << 30, 0}) Put32(d, static_cast<uint32_t>(v));
    CHECK(DecodeWav(MakeWav({1, 1, 16000, 32}, d), "s32").samples == std::vector<float>{-1.0f, 0.5f, 0.0f});
  }
  {
    std::vector<std::byte> d;
    for (float v : {0.25f, -0.75f, 1.5f}) {
      uint32_t u;
      std::memcpy(&u, &v, 4);
      Put32(d, u);
    }
    CHECK(DecodeWav(MakeWav({3, 1, 16000, 32}, d), "f32").samples == std::vector<float>{0.25f, -0.75f, 1.5f});
    CHECK(DecodeWav(MakeWav({3, 1, 16000, 32, true}, d), "f32 extensible").samples == std::vector<float>{0.25f, -0.75f, 1.5f});
  }
  {
    std::vector<std::byte> d;
    for (double v : {0.125, -1.0}) {
      uint64_t u;
      std::memcpy(&u, &v, 8);
      Put32(d, static_cast<uint32_t>(u));
      Put32(d, static_cast<uint32_t>(u >> 32));
    }
    CHECK(DecodeWav(MakeWav({3, 1, 16000, 64}, d), "f64").samples == std::vector<float>{0.125f, -1.0f});
  }
  {
    // Stereo and 3-channel PCM, plain and extensible: the mean of the channels.
    std::vector<std::byte> d;
    for (int16_t v : {int16_t{16384}, int16_t{0}, int16_t{-16384}, int16_t{-16384}}) Put16(d, static_cast<uint16_t>(v));
    CHECK(DecodeWav(MakeWav({1, 2, 44100, 16}, d), "stereo").samples == std::vector<float>{0.25f, -0.5f});
    CHECK(DecodeWav(MakeWav({1, 2, 44100, 16, true}, d), "stereo extensible").samples == std::vector<float>{0.25f, -0.5f});
    std::vector<std::byte> d3;
    for (int16_t v : {int16_t{3 * 4096}, int16_t{0}, int16_t{-3 * 4096}, int16_t{9 * 1024}, int16_t{9 * 1024}, int16_t{9 * 1024}})
      Put16(d3, static_cast<uint16_t>(v));
    CHECK(DecodeWav(MakeWav({1, 3, 48000, 16}, d3), "3ch").samples == std::vector<float>{0.0f, 9.0f / 32});
  }
}

TEST_CASE("wav: hostile and truncated files give clear errors") {
  std::vector<std::byte> d(64, std::byte{0});
  const auto wav = MakeWav({1, 1, 16000, 16}, d);
  const std::string longer = ErrorOf([&] { DecodeWav(MakeWav({1, 1, 16000, 16}, d, 1 << 20), "long.wav"); });
  CHECK(longer.find("long.wav") != std::string::npos);
  CHECK(longer.find("'data' chunk of 1048576 bytes is longer than the file") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 16000, 16}, d, 0xFFFFFFFFu), "stream.wav"); }).find("longer than the file") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 0, 16000, 16}, d), "zero.wav"); }).find("0 channels") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 5, 16}, d), "slow.wav"); }).find("sample rate 5 Hz") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 2000000000u, 16}, d), "fast.wav"); }).find("sample rate 2000000000 Hz") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 16000, 12}, d), "12bit.wav"); }).find("12 bits") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({2, 1, 16000, 16}, d), "adpcm.wav"); }).find("format tag 2") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({3, 1, 16000, 16}, d), "f16.wav"); }).find("float with 16 bits") != std::string::npos);
  for (size_t cut : {size_t{0}, size_t{4}, size_t{11}, size_t{20}, size_t{30}, size_t{44}}) {
    const std::vector<std::byte> head(wav.begin(), wav.begin() + static_cast<std::ptrdiff_t>(cut));
    const std::string e = ErrorOf([&] { DecodeWav(head, "cut.wav"); });
    INFO(cut << ": " << e);
    CHECK(e.find("cut.wav") != std::string::npos);
  }
  std::vector<std::byte> bad_align = wav;
  bad_align[12 + 8 + 6 + 8 + 12] = std::byte{3};  // block align field of fmt
  CHECK(ErrorOf([&] { DecodeWav(bad_align, "align.wav"); }).find("block align 3") != std::string::npos);
  CHECK(ErrorOf([] { DecodeWav(Bytes(std::string("RIFF\x04\0\0\0WAVE", 12)), "nofmt.wav"); }).find("no fmt chunk") != std::string::npos);
  CHECK(ErrorOf([] { LoadWav("/nonexistent/x.wav"); }).find("/nonexistent/x.wav") != std::string::npos);
}

// ---- resampling and framing -------------------------------------------------------------------------------

namespace {

// Least-squares fit of a*sin + b*cos at `freq` over y[from, to); returns amplitude and the residual RMS.
struct SineFit {
  double amplitude, residual_rms;
};
SineFit FitSine(const std::vector<float>& y, double rate, double freq, size_t from, size_t to) {
  double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0;
  for (size_t n = from; n < to; ++n) {
    const double w = 2 * M_PI * freq * static_cast<double>(n) / rate, s = std::sin(w), c = std::cos(w);
    ss += s * s;
    sc += s * c;
    cc += c * c;
    ys += y[n] * s;
    yc += y[n] * c;
  }
  const double det = ss * cc - sc * sc, a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  double r = 0;
  for (size_t n = from; n < to; ++n) {
    const double w = 2 * M_PI * freq * static_cast<double>(n) / rate;
    const double e = y[n] - a * std::sin(w) - b * std::cos(w);
    r += e * e;
  }
  return {std::hypot(a, b), std::sqrt(r / static_cast<double>(to - from))};
}

std::vector<float> Sine(double freq, double amp, int rate, size_t n) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(amp * std::sin(2 * M_PI * freq * static_cast<double>(i) / rate));
  return x;
}

}  // namespace

TEST_CASE("resample: a 1 kHz sine keeps its frequency and amplitude; content above 8 kHz is removed") {
  for (int rate : {44100, 48000, 22050, 8000, 11025, 96000}) {
    const std::vector<float> x = Sine(1000.0, 0.5, rate, static_cast<size_t>(rate));  // 1 s
    const std::vector<float> y = Resample(x, rate, 16000);
    REQUIRE(y.size() == 16000);
    const SineFit f = FitSine(y, 16000, 1000.0, 2000, 14000);  // away from the zero-padded edges
    const double db = 20 * std::log10(f.amplitude / 0.5);
    INFO(rate << " Hz -> 16 kHz: gain " << db << " dB, residual " << f.residual_rms);
    if (rate == 44100) MESSAGE("1 kHz sine 44.1 -> 16 kHz: gain error " << db << " dB, residual rms " << f.residual_rms / 0.5 << " of amplitude");
    CHECK(std::abs(db) < 0.1);
    CHECK(f.residual_rms < 1e-4 * 0.5);  // nothing but the 1 kHz tone: the frequency is exact
  }
  // A 10 kHz tone cannot be represented at 16 kHz; it must not alias to 6 kHz.
  const std::vector<float> hi = Resample(Sine(10000.0, 0.5, 44100, 44100), 44100, 16000);
  double rms = 0;
  for (size_t n = 2000; n < 14000; ++n) rms += static_cast<double>(hi[n]) * hi[n];
  rms = std::sqrt(rms / 12000);
  MESSAGE("10 kHz tone 44.1 -> 16 kHz: " << 20 * std::log10(rms / (0.5 / std::sqrt(2))) << " dB");
  CHECK(rms < 1e-3 * 0.5);
  // A constant passes unchanged (each phase of the filter sums to one).
  const std::vector<float> dc = Resample(std::vector<float>(5000, 0.25f), 44100, 16000);
  for (size_t n = 200; n < dc.size() - 200; ++n) REQUIRE(std::abs(dc[n] - 0.25f) < 1e-6f);
  CHECK(Resample(std::vector<float>{1, 2, 3}, 16000, 16000) == std::vector<float>{1, 2, 3});
  CHECK(ErrorOf([] { Resample(std::vector<float>{1}, 0, 16000); }).find("resample") != std::string::npos);
}

TEST_CASE("audio: golden audio_features from audio_waveform; 30 s limit; splitting") {
  const auto wave = GoldenCase().values<float>("audio_waveform");
  const auto want = GoldenCase().values<float>("audio_features");  // [26, 640]
  const std::vector<AudioFrames> f = FrameAudio(wave);
  REQUIRE(f.size() == 1);
  REQUIRE(f[0].size() == 26);
  REQUIRE(f[0].values == want);

  const std::vector<float> limit(kMaxAudioSamples, 0.5f);
  CHECK(FrameAudio(limit)[0].size() == 750);
  std::vector<float> over(kMaxAudioSamples + 1, 0.5f);
  over.back() = -1.0f;
  CHECK(ErrorOf([&] { FrameAudio(over); }).find("30 s") != std::string::npos);
  const std::vector<AudioFrames> pieces = FrameAudio(over, LongAudio::kSplit);
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].size() == 750);
  REQUIRE(pieces[1].size() == 1);
  CHECK(pieces[1].values[0] == -1.0f);
  for (size_t i = 1; i < kAudioFrameSamples; ++i) REQUIRE(pieces[1].values[i] == 0.0f);  // zero-padded tail
  CHECK(ErrorOf([] { FrameAudio({}); }).find("no samples") != std::string::npos);
}

TEST_CASE("audio: a 44.1 kHz stereo WAV file through LoadAudio16k") {
  const std::string dir = TempDir("wav");
  std::vector<std::byte> d;
  const std::vector<float> tone = Sine(1000.0, 0.5, 44100, 44100);
  for (float v : tone)
    for (int c = 0; c < 2; ++c) Put16(d, static_cast<uint16_t>(static_cast<int16_t>(std::lround(v * 32767))));
  const auto wav = MakeWav({1, 2, 44100, 16}, d);
  const std::string path = dir + "/tone.wav";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(wav.data()), static_cast<std::streamsize>(wav.size()));
  const std::vector<float> y = LoadAudio16k(path);
  REQUIRE(y.size() == 16000);
  CHECK(std::abs(20 * std::log10(FitSine(y, 16000, 1000.0, 2000, 14000).amplitude / (0.5 * 32767 / 32768))) < 0.1);
  CHECK(FrameAudio(y)[0].size() == 25);
  std::filesystem::remove_all(dir);
}

}  // namespace g4_test_audio
