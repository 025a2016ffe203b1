// Video input (docs/video.md): which frames transformers' Gemma4UnifiedVideoProcessor samples, their timestamps,
// and a decoded clip as the session layer takes it. Nothing here needs FFmpeg; decoding a file is
// g4/media/video_ffmpeg.hpp, built where the meson feature `video` found FFmpeg's libraries (G4_HAVE_VIDEO).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/media/rgb_image.hpp"

namespace g4 {

inline constexpr int kDefaultVideoFrames = 32;       // Gemma4UnifiedVideoProcessor.num_frames
inline constexpr int kDefaultVideoFrameBudget = 70;  // Gemma4UnifiedVideoProcessor.max_soft_tokens
inline constexpr double kDefaultMaxVideoSeconds = 60;  // the model card's longest clip (at 1 fps)

struct VideoOptions {
  std::optional<int> frames;       // sample this many frames (default 32) ...
  std::optional<double> fps;       // ... or this many per second of the clip (exclusive with frames)
  bool audio = true;               // decode the audio track too (16 kHz mono)
  double max_seconds = kDefaultMaxVideoSeconds;
};

// BaseVideoProcessor.sample_frames: torch.arange(0, total, total / n).int(), where with `fps` n is
// int(total / video_fps * fps). The arange is evaluated as torch does on the CPU: its length ceil(total / step)
// and each value i * step in double, stored as float32 (torch's default dtype), then truncated.
inline std::vector<int64_t> SampleFrameIndices(int64_t total, double video_fps, const VideoOptions& opt, std::string_view where) {
  Require(total > 0, where, "has no video frames");
  Require(!(opt.frames && opt.fps), where, "sample either a number of frames or frames per second, not both");
  int64_t n = opt.frames.value_or(kDefaultVideoFrames);
  if (opt.fps) {
    Require(*opt.fps > 0 && std::isfinite(*opt.fps), where, "frames per second to sample must be positive");
    n = static_cast<int64_t>(static_cast<double>(total) / video_fps * *opt.fps);
  }
  Require(n > 0, where, "sampling " + (opt.fps ? std::to_string(*opt.fps) + " frames per second" : std::to_string(n) + " frames") +
                            " of " + std::to_string(total) + " gives no frame; sample more");
  Require(n <= total, where, "cannot sample " + std::to_string(n) + " frames from a clip of " + std::to_string(total) +
                                 " (transformers refuses it too); ask for at most " + std::to_string(total));
  const double step = static_cast<double>(total) / static_cast<double>(n);
  const auto count = static_cast<int64_t>(std::ceil(static_cast<double>(total) / step));
  std::vector<int64_t> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(static_cast<int64_t>(static_cast<float>(static_cast<double>(i) * step)));
  return out;
}

// VideoMetadata.timestamps: index / fps; the processor writes each as f"{int(s // 60):02d}:{int(s % 60):02d}".
inline std::string TimestampText(double seconds) {
  const auto minutes = static_cast<long long>(std::floor(seconds / 60));
  const auto secs = static_cast<long long>(std::fmod(seconds, 60.0));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld", minutes, secs);
  return buf;
}

// A clip's facts, read without decoding a picture (g4/media/video_ffmpeg.hpp ProbeVideo).
struct VideoInfo {
  int width = 0, height = 0;
  int64_t frames = 0;       // video frames (packets of the video stream)
  double fps = 0;           // the stream's average frame rate, as PyAV's average_rate
  double seconds() const { return fps > 0 ? static_cast<double>(frames) / fps : 0; }
  bool has_audio = false;
};

// Checks a clip's length against opt.max_seconds; the error says how to get a longer clip in.
inline void CheckVideoLength(const VideoInfo& info, const VideoOptions& opt, std::string_view where) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "is %.2f s long, over the %g s limit: cut a piece of it (ffmpeg -ss START -t %g -i FILE -c copy piece.mkv) "
                                 "or raise the limit (g4 run --max-video-seconds, VideoOptions::max_seconds)",
                info.seconds(), opt.max_seconds, opt.max_seconds);
  Require(info.seconds() <= opt.max_seconds, where, buf);
}

// The sampled frames of a clip (RGB, full size), their indices and timestamps, and its audio track.
struct DecodedVideo {
  VideoInfo info;
  std::vector<int64_t> indices;      // sampled frame indices, ascending
  std::vector<double> timestamps;    // index / fps, seconds
  std::vector<RgbImage> frames;      // one per index
  std::vector<float> audio_16k;      // the first audio track, 16 kHz mono (empty: none, or not asked for)
};

}  // namespace g4
