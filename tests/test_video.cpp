// Video input (docs/video.md): frame sampling and timestamps against transformers' formula worked out here in
// exact integer arithmetic; the prompt's layout (ids, mm_token_type_ids, block ids) written out by hand. With FFmpeg
// (G4_HAVE_VIDEO): clips made by the ffmpeg program in a temporary folder, each sampled frame compared with the one
// the ffmpeg program decodes to raw RGB, each frame's soft tokens with the vision embedder's on that frame, the
// audio track with the WAV path on the same samples, and hostile files refused naming the file.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "g4/media/video.hpp"
#include "g4/model/prompt.hpp"
#include "g4/session/prompt_text.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"
#include "support/test_data.hpp"
#if G4_HAVE_VIDEO
#include "g4/media/audio.hpp"
#include "g4/session/video_parts.hpp"
#endif

namespace g4_test_video {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::testing;

// floor(i * total / n) for i < n: arange(0, total, total / n) truncated, in exact arithmetic.
std::vector<int64_t> ExactIndices(int64_t total, int64_t n) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(i * total / n);
  return out;
}

TEST_CASE("video sampling: indices are transformers' arange(0, total, total / n) truncated, for both modes") {
  VideoOptions opt;
  CHECK(SampleFrameIndices(55, 25, opt, "v").size() == 32);  // the default: 32 frames
  opt.frames = 8;  // 55 / 8 = 6.875: 0, 6.875, 13.75, 20.625, 27.5, 34.375, 41.25, 48.125
  CHECK(SampleFrameIndices(55, 25, opt, "v") == std::vector<int64_t>{0, 6, 13, 20, 27, 34, 41, 48});
  for (int64_t total : {1, 7, 30, 31, 55, 97, 100, 241, 1799, 1800, 3600})
    for (int64_t n : {1, 2, 3, 7, 8, 30, 32, 60})
      if (n <= total) {
        opt.frames = static_cast<int>(n);
        CHECK_MESSAGE(SampleFrameIndices(total, 30, opt, "v") == ExactIndices(total, n), total, " frames, ", n, " sampled");
      }
  // fps mode: n = int(total / video_fps * fps).
  VideoOptions by_rate;
  by_rate.fps = 2;
  CHECK(SampleFrameIndices(75, 30, by_rate, "v") == ExactIndices(75, 5));  // 75 / 30 * 2 = 5
  by_rate.fps = 1;
  CHECK(SampleFrameIndices(100, 29.97, by_rate, "v") == ExactIndices(100, 3));  // 3.34 -> 3
  CHECK(SampleFrameIndices(1799, 29.97, by_rate, "v") == ExactIndices(1799, 60));  // 60.03 -> 60
  CHECK(SampleFrameIndices(1800, 30, by_rate, "v").size() == 60);
  by_rate.fps = 0.5;
  CHECK(SampleFrameIndices(1000, 24, by_rate, "v") == ExactIndices(1000, 20));  // 20.83 -> 20

  // What transformers refuses (more frames than there are) and what gives nothing are errors naming the clip.
  opt.frames = 33;
  ExpectError([&] { SampleFrameIndices(32, 30, opt, "clip.mkv"); }, "clip.mkv", "at most 32");
  by_rate.fps = 0.1;
  ExpectError([&] { SampleFrameIndices(50, 30, by_rate, "clip.mkv"); }, "clip.mkv", "gives no frame");
  ExpectError([&] { SampleFrameIndices(0, 30, {}, "clip.mkv"); }, "clip.mkv", "no video frames");
  VideoOptions both;
  both.frames = 4;
  both.fps = 1;
  ExpectError([&] { SampleFrameIndices(50, 30, both, "clip.mkv"); }, "clip.mkv", "not both");
}

TEST_CASE("video timestamps: mm:ss of index / fps, as the processor formats int(s // 60) and int(s % 60)") {
  CHECK(TimestampText(0) == "00:00");
  CHECK(TimestampText(6.0 / 25) == "00:00");
  CHECK(TimestampText(59.99) == "00:59");
  CHECK(TimestampText(60) == "01:00");
  CHECK(TimestampText(61.5) == "01:01");
  CHECK(TimestampText(3599.9) == "59:59");
  CHECK(TimestampText(3600) == "60:00");
  VideoInfo info;
  info.frames = 1830;
  info.fps = 30;  // 61 s
  ExpectError([&] { CheckVideoLength(info, {}, "long.mp4"); }, "long.mp4", "over the 60 s limit: cut a piece");
  VideoOptions longer;
  longer.max_seconds = 61;
  CheckVideoLength(info, longer, "long.mp4");
}

TEST_CASE("video prompt: per frame its timestamp text, <|image>, N x <|video|> (type 2, a block of its own), <image|>") {
  Gemma4Config cfg;
  cfg.hidden_size = 2;
  const int32_t boi = cfg.tokens.boi, eoi = cfg.tokens.eoi, vid = cfg.tokens.video, img = cfg.tokens.image;
  MediaEmbedding video;
  video.kind = MediaEmbedding::Kind::kVideo;
  video.n = 5;
  video.rows = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  video.frames = {{3, {11, 12}}, {2, {13, 14, 15}}};  // "00:00 " and " 00:01 " as a tokenizer would give them
  MediaEmbedding image{MediaEmbedding::Kind::kImage, {0.5f, 0.5f}, 1, {}};
  Prompt p(cfg);
  const std::vector<int32_t> ids = {2, 105, vid, 99, img, 106};
  const std::vector<MediaEmbedding> media = {video, image};
  p.AddExpandingPlaceholders(ids, media);
  CHECK(p.tokens() == std::vector<int32_t>{2, 105, 11, 12, boi, vid, vid, vid, eoi, 13, 14, 15, boi, vid, vid, eoi, 99, boi, img, eoi, 106});
  CHECK(p.token_types() == std::vector<int8_t>{0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 1, 0, 0});
  CHECK(p.block_ids() == std::vector<int32_t>{-1, -1, -1, -1, -1, 0, 0, 0, -1, -1, -1, -1, -1, 1, 1, -1, -1, -1, 2, -1, -1});
  const ForwardInput in = p.input();
  CHECK(std::vector<int32_t>(in.soft_index.begin(), in.soft_index.end()) ==
        std::vector<int32_t>{-1, -1, -1, -1, -1, 0, 1, 2, -1, -1, -1, -1, -1, 3, 4, -1, -1, -1, 5, -1, -1});
  CHECK(std::vector<float>(in.soft_embeddings.begin(), in.soft_embeddings.end()) ==
        std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0.5f, 0.5f});

  // A video in an image's place, frames that do not hold the video's rows, and expanded <|video|> runs are refused.
  Prompt wrong(cfg);
  const std::vector<int32_t> swapped = {img, vid};
  CHECK(ErrorOf([&] { wrong.AddExpandingPlaceholders(swapped, media); }).find("is a video but its placeholder is <|image|>") != std::string::npos);
  MediaEmbedding short_frames = video;
  short_frames.frames[1].tokens = 1;
  Prompt q(cfg);
  CHECK(ErrorOf([&] { q.AddMedia(short_frames); }).find("frames hold 4 of its 5") != std::string::npos);
  Prompt r(cfg);
  const std::vector<int32_t> expanded = {vid, vid};
  CHECK(ErrorOf([&] { r.AddExpanded(expanded, media); }).find("<|video|>") != std::string::npos);
}

#if G4_HAVE_VIDEO

// Runs the ffmpeg program (Debian's ffmpeg package; the test's independent decoder and its fixture writer).
void Ffmpeg(const std::string& args) {
  const std::string cmd = "ffmpeg -hide_banner -nostdin -loglevel error -y " + args;
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Frame `n` of a file as the ffmpeg program decodes it to rgb24 (its swscale conversion bilinear, as ours).
std::vector<uint8_t> CliFrame(const std::string& file, int64_t n, const std::string& dir) {
  const std::string out = dir + "/frame" + std::to_string(n) + ".rgb";
  Ffmpeg("-sws_flags bilinear -i " + file + " -vf \"select=eq(n\\," + std::to_string(n) + ")\" -fps_mode passthrough -frames:v 1 -f rawvideo -pix_fmt rgb24 " + out);
  return ReadAll(out);
}

// A 440 Hz tone at 16 kHz mono as a WAV file, and 2.2 s of a moving test picture at 25 fps (55 frames, odd sizes)
// with that WAV's samples as its sound, lossless (FFV1 storing RGB, a keyframe every 10 frames; PCM).
struct Clip {
  std::string dir = TempDir("video_clip");
  std::string mkv = dir + "/clip.mkv", wav = dir + "/tone.wav";
  Clip() {
    Ffmpeg("-f lavfi -i sine=frequency=440:sample_rate=16000:duration=2.2 -c:a pcm_s16le " + wav);
    Ffmpeg("-f lavfi -i testsrc2=size=100x70:rate=25:duration=2.2 -i " + wav + " -c:v ffv1 -g 10 -pix_fmt bgr0 -c:a pcm_s16le " + mkv);
  }
};

TEST_CASE("video decoding: each sampled frame equals the ffmpeg program's decoding of that frame, lossless and H.264") {
  const Clip clip;
  VideoOptions opt;
  opt.frames = 8;
  const DecodedVideo v = LoadVideo(clip.mkv, opt);
  CHECK(v.info.width == 100);
  CHECK(v.info.height == 70);
  CHECK(v.info.frames == 55);
  CHECK(v.info.fps == 25);
  CHECK(v.info.has_audio);
  REQUIRE(v.indices == std::vector<int64_t>{0, 6, 13, 20, 27, 34, 41, 48});
  for (size_t i = 0; i < v.indices.size(); ++i) {
    CHECK(v.timestamps[i] == static_cast<double>(v.indices[i]) / 25);
    CHECK_MESSAGE(v.frames[i].pixels == CliFrame(clip.mkv, v.indices[i], clip.dir), "frame ", v.indices[i]);
  }
  // Consecutive frames differ (the picture moves), so a frame off by one would have failed above.
  CHECK(v.frames[0].pixels != v.frames[1].pixels);

  // H.264 with B-frames (decode order differs from display order), 4:2:0 chroma, odd size, 30 fps, in MP4: seeks
  // to keyframes and decodes forward; the default 32 frames of 45.
  const std::string mp4 = clip.dir + "/h264.mp4";
  Ffmpeg("-f lavfi -i testsrc2=size=98x66:rate=30:duration=1.5 -c:v libx264 -bf 2 -g 12 -pix_fmt yuv420p " + mp4);
  const DecodedVideo h = LoadVideo(mp4);
  REQUIRE(h.indices == ExactIndices(45, 32));
  for (size_t i : {size_t{0}, size_t{1}, size_t{7}, size_t{16}, size_t{30}, size_t{31}})
    CHECK_MESSAGE(h.frames[i].pixels == CliFrame(mp4, h.indices[i], clip.dir), "frame ", h.indices[i]);
}

TEST_CASE("video audio: the track comes out as the WAV path gives the same samples (16 kHz mono; 44.1 kHz stereo)") {
  const Clip clip;
  const DecodedVideo v = LoadVideo(clip.mkv);
  const std::vector<float> wav = LoadAudio16k(clip.wav);
  REQUIRE(wav.size() == 35200);
  CHECK(v.audio_16k == wav);
  VideoOptions silent;
  silent.audio = false;
  CHECK(LoadVideo(clip.mkv, silent).audio_16k.empty());

  // Stereo at 44.1 kHz (left and right differ): mixed down by averaging, then the WAV path's resampler.
  const std::string stereo = clip.dir + "/stereo.mkv", stereo_wav = clip.dir + "/stereo.wav";
  Ffmpeg("-f lavfi -i sine=frequency=440:sample_rate=44100:duration=1 -f lavfi -i sine=frequency=1000:sample_rate=44100:duration=1 "
         "-filter_complex \"[0:a][1:a]join=inputs=2:channel_layout=stereo[a]\" -map \"[a]\" -c:a pcm_s16le " + stereo_wav);
  Ffmpeg("-f lavfi -i testsrc2=size=64x48:rate=10:duration=1 -i " + stereo_wav + " -c:v ffv1 -c:a pcm_s16le " + stereo);
  const DecodedVideo s = LoadVideo(stereo, [] { VideoOptions o; o.frames = 2; return o; }());
  const std::vector<float> s_wav = LoadAudio16k(stereo_wav);
  REQUIRE(s_wav.size() == 16000);
  CHECK(s.audio_16k == s_wav);
}

TEST_CASE("video: hostile and unusable files are g4::Errors naming the file") {
  const Clip clip;
  const std::string& d = clip.dir;
  const std::vector<uint8_t> good = ReadAll(clip.mkv);
  auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = d + "/" + name;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  };
  ExpectError([&] { LoadVideo(write("empty.mkv", {})); }, d + "/empty.mkv", "empty video file");
  std::vector<uint8_t> noise(5000);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>(i * 7919 % 251);
  ExpectError([&] { LoadVideo(write("noise.mkv", noise)); }, d + "/noise.mkv", "cannot read as a video file");
  ExpectError([&] { LoadVideo(clip.wav); }, clip.wav, "has no video stream (audio only");

  // Truncated: an MP4 with its index first keeps a header that states more frames than are left; one with its
  // index last loses it. A Matroska file cut short keeps the frames before the cut (all of them decoded, or an error).
  const std::string faststart = d + "/fast.mp4";
  Ffmpeg("-f lavfi -i testsrc2=size=98x66:rate=30:duration=1.5 -c:v libx264 -g 12 -movflags +faststart " + faststart);
  std::vector<uint8_t> fast = ReadAll(faststart);
  fast.resize(fast.size() * 6 / 10);
  ExpectError([&] { LoadVideo(write("fast_cut.mp4", fast)); }, d + "/fast_cut.mp4", "is truncated");
  const std::string plain = d + "/plain.mp4";
  Ffmpeg("-f lavfi -i testsrc2=size=98x66:rate=30:duration=1.5 -c:v libx264 -g 12 " + plain);
  std::vector<uint8_t> tail_index = ReadAll(plain);
  tail_index.resize(tail_index.size() / 2);
  ExpectError([&] { LoadVideo(write("plain_cut.mp4", tail_index)); }, d + "/plain_cut.mp4", "cannot read");
  std::vector<uint8_t> cut = good;
  cut.resize(cut.size() / 2);
  const std::string cut_path = write("cut.mkv", cut);
  VideoOptions four;
  four.frames = 4;
  try {
    const DecodedVideo v = LoadVideo(cut_path, four);
    CHECK(v.info.frames < 55);
    CHECK(v.frames.size() == 4);
  } catch (const Error& e) {
    CHECK_MESSAGE(std::string(e.what()).find(cut_path) != std::string::npos, e.what());
  }

  // A video stream without frames; a frame wider than the 65536-pixel limit; a clip over the 60 s limit.
  const std::string no_frames = d + "/no_frames.mkv";
  Ffmpeg("-f lavfi -i sine=duration=1 -f lavfi -i testsrc2=size=32x32:rate=5:duration=1 -map 0 -map 1 -frames:v 0 -c:v ffv1 " + no_frames);
  ExpectError([&] { LoadVideo(no_frames); }, no_frames, "has no video frames");
  const std::string huge = d + "/huge.nut";
  Ffmpeg("-f lavfi -i color=size=65600x16:rate=1:duration=1 -c:v ffv1 " + huge);
  ExpectError([&] { LoadVideo(huge); }, huge, "larger than the 65536-pixel side");
  const std::string long_clip = d + "/long.mkv";
  Ffmpeg("-f lavfi -i color=size=16x16:rate=2:duration=61 -c:v ffv1 " + long_clip);
  ExpectError([&] { LoadVideo(long_clip); }, long_clip, "s long, over the 60 s limit: cut a piece");
  VideoOptions longer;
  longer.max_seconds = 62;
  longer.fps = 1;
  CHECK(LoadVideo(long_clip, longer).frames.size() == 61);
  ExpectError([&] { ProbeVideoFile(long_clip); }, long_clip, "over the 60 s limit");
}

// The multimodal reference case's GGUF pair: vision and audio embedders at small widths.
struct Multimodal {
  ThreadPool pool{2};
  LoadedModel lm;
  static ModelFiles Files() {
    ModelFiles f;
    f.model = DataDir() + "/golden-gguf/multimodal-bf16.gguf";
    f.mmproj = DataDir() + "/golden-gguf/multimodal-mmproj-bf16.gguf";
    return f;
  }
  Multimodal() : lm(Files(), pool) {}
};

TEST_CASE("video embedding: each frame's soft tokens are the vision embedder's on that frame, pixels scaled x / 255") {
  const Clip clip;
  const Multimodal mm;
  VideoOptions opt;
  opt.frames = 3;
  opt.audio = false;
  const DecodedVideo v = LoadVideo(clip.mkv, opt);
  const std::vector<Part> parts = VideoFileParts(mm.lm, clip.mkv, opt, 70);
  REQUIRE(parts.size() == 1);  // no audio asked for
  const MediaEmbedding& video = *parts[0].media;
  REQUIRE(video.kind == MediaEmbedding::Kind::kVideo);
  REQUIRE(video.frames.size() == 3);
  const VisionEmbedder embedder(*mm.lm.checkpoint().vision());
  const size_t H = static_cast<size_t>(embedder.hidden());
  size_t row = 0;
  for (size_t f = 0; f < 3; ++f) {
    const ImagePatches patches = PreprocessImage(v.frames[f], 70, embedder.order(), PixelScale::kVideo);
    CHECK(video.frames[f].tokens == patches.size());
    CHECK(patches.size() == 70);  // 100x70 at 70 tokens: x4.8 -> 480x336, 10 x 7 patches
    const std::vector<float> want = embedder.Embed(patches, mm.lm.pool());
    CHECK(std::vector<float>(video.rows.begin() + static_cast<std::ptrdiff_t>(row * H),
                             video.rows.begin() + static_cast<std::ptrdiff_t>((row + patches.size()) * H)) == want);
    row += patches.size();
  }
  CHECK(row == video.n);

  // The video processor's x / 255.0f, not the image processor's x * float(1 / 255): they differ for some x.
  RgbImage grey;
  grey.width = grey.height = 48;
  grey.pixels.resize(48 * 48 * 3);
  for (size_t i = 0; i < grey.pixels.size(); ++i) grey.pixels[i] = static_cast<uint8_t>(i % 256);
  const ImagePatches as_video = Patchify(grey, PatchOrder::kHWC, PixelScale::kVideo);
  const ImagePatches as_image = Patchify(grey, PatchOrder::kHWC, PixelScale::kImage);
  int differ = 0;
  for (size_t i = 0; i < 256; ++i) {
    CHECK(as_video.values[i] == static_cast<float>(i) / 255.0f);
    differ += as_video.values[i] != as_image.values[i];
  }
  CHECK(differ > 0);
}

TEST_CASE("video in a chat: the prompt holds each frame's timestamp text and block, then the sound as audio") {
  const Clip clip;
  const Multimodal mm;
  VideoOptions opt;
  opt.frames = 4;  // indices 0, 13, 27, 41 of 55 at 25 fps: 0.00, 0.52, 1.08, 1.64 s
  const std::vector<Part> parts = VideoFileParts(mm.lm, clip.mkv, opt, 70);
  REQUIRE(parts.size() == 2);  // the video, and 2.2 s of sound in one piece
  CHECK(parts[1].kind == Part::Kind::kAudio);
  CHECK(parts[1].media->n == 55);  // ceil(35200 / 640)
  std::vector<Part> content = parts;
  content.push_back(Part::Text("What happens?"));
  const std::vector<Message> chat{{"user", content}};
  const Prompt prompt = Session::ChatPrompt(mm.lm, chat, false);

  const Tokenizer& tok = mm.lm.tokenizer();
  const Gemma4Config& cfg = mm.lm.model().config();
  auto text = [&](const std::string& s) { return tok.Encode(s, {.add_bos = false, .parse_special = false}); };
  std::vector<int32_t> want_ids;
  std::vector<int8_t> want_types;
  std::vector<int32_t> want_blocks;
  auto put = [&](const std::vector<int32_t>& ids, int8_t type, int32_t block) {
    for (int32_t id : ids) {
      want_ids.push_back(id);
      want_types.push_back(type);
      want_blocks.push_back(block);
    }
  };
  const char* stamps[] = {"00:00 ", " 00:00 ", " 00:01 ", " 00:01 "};
  for (int f = 0; f < 4; ++f) {
    put(text(stamps[f]), 0, -1);
    put({cfg.tokens.boi}, 0, -1);
    put(std::vector<int32_t>(70, cfg.tokens.video), 2, f);
    put({cfg.tokens.eoi}, 0, -1);
  }
  put({cfg.tokens.boa}, 0, -1);
  put(std::vector<int32_t>(55, cfg.tokens.audio), 3, -1);
  put({cfg.tokens.eoa}, 0, -1);
  // Find the video's first frame in the prompt: the chat's header comes before it.
  const std::vector<int32_t>& ids = prompt.tokens();
  const auto at = std::search(ids.begin(), ids.end(), want_ids.begin(), want_ids.end());
  REQUIRE(at != ids.end());
  const size_t start = static_cast<size_t>(at - ids.begin());
  const std::vector<int8_t> types = prompt.token_types();
  CHECK(std::vector<int8_t>(types.begin() + static_cast<std::ptrdiff_t>(start), types.begin() + static_cast<std::ptrdiff_t>(start + want_types.size())) == want_types);
  CHECK(std::vector<int32_t>(prompt.block_ids().begin() + static_cast<std::ptrdiff_t>(start),
                             prompt.block_ids().begin() + static_cast<std::ptrdiff_t>(start + want_blocks.size())) == want_blocks);
  size_t soft = 0;
  for (int8_t t : types) soft += t != 0;
  CHECK(soft == 4 * 70 + 55);  // nothing else in the prompt is a soft token

  // --print-prompt's view of it.
  const std::string shown = PromptText(prompt, tok);
  CHECK(shown.find("00:00 <|image>[70 x <|video|>]<image|> 00:00 <|image>[70 x <|video|>]<image|> 00:01 ") != std::string::npos);
  CHECK(shown.find("<|audio>[55 x <|audio|>]<audio|>What happens?") != std::string::npos);

  // The model runs on it (the reference model's answer is noise; that it runs is the point).
  Session session(mm.lm);
  GenerateParams greedy;
  greedy.sampling.temperature = 0;
  greedy.max_tokens = 2;
  CHECK(session.Respond(chat, greedy).prompt_tokens == prompt.size());
}

#endif  // G4_HAVE_VIDEO

}  // namespace g4_test_video
