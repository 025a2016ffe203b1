// A video file as conversation parts (docs/video.md): the sampled frames as one video item, then, unless
// VideoOptions::audio is off, its audio track (16 kHz mono) as audio items in 30 s pieces, as Google demonstrates
// video understanding; and a clip's prompt tokens estimated before it is decoded. Needs FFmpeg
// (g4/media/video_ffmpeg.hpp): include it only where G4_HAVE_VIDEO is set.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/media/video_ffmpeg.hpp"
#include "g4/session/session.hpp"

namespace g4 {

// Each frame is embedded as soon as it is decoded, so only its soft tokens are kept.
inline std::vector<Part> VideoParts(const LoadedModel& lm, std::span<const std::byte> bytes, std::string_view where,
                                    const VideoOptions& opt = {}, int budget = kDefaultVideoFrameBudget) {
  CheckImageBudget(budget);
  MediaEmbedding video;
  const DecodedVideo decoded = DecodeVideo(bytes, where, opt, [&](size_t, double seconds, RgbImage frame) {
    lm.AddVideoFrame(video, frame, seconds, budget);
  });
  std::vector<Part> parts{Part::Video(std::make_shared<const MediaEmbedding>(std::move(video)))};
  if (!decoded.audio_16k.empty()) {
    Require(lm.checkpoint().audio().has_value(), where,
            "has an audio track but the model has no audio embedder (leave the sound out: --no-video-audio, VideoOptions::audio)");
    for (Media& m : lm.EmbedAudio(decoded.audio_16k, LongAudio::kSplit)) parts.push_back(Part::Audio(std::move(m)));
  }
  return parts;
}

// About how many prompt tokens a clip takes, from its probe (no picture decoded): per sampled frame its soft tokens
// and ~8 of timestamp and markers, and for its sound (when opt.audio) 25 tokens a second and two markers a piece.
// For the context check before any work (g4 run, g4 serve).
inline size_t VideoTokenEstimate(const VideoInfo& info, const VideoOptions& opt, int budget, std::string_view where) {
  CheckImageBudget(budget);
  const ImageSize size = TargetImageSize(info.width, info.height, budget);
  const size_t frames = SampleFrameIndices(info.frames, info.fps, opt, where).size();
  size_t tokens = frames * (static_cast<size_t>(size.width / kPatchPixels) * (size.height / kPatchPixels) + 8);
  if (opt.audio && info.has_audio) tokens += static_cast<size_t>(info.seconds() * 25) + 2 * (1 + static_cast<size_t>(info.seconds() / 30));
  return tokens;
}

inline std::vector<Part> VideoFileParts(const LoadedModel& lm, const std::string& path, const VideoOptions& opt = {},
                                        int budget = kDefaultVideoFrameBudget) {
  const MappedFile file(path);
  return VideoParts(lm, file.bytes(), path, opt, budget);
}

}  // namespace g4
