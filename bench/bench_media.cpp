// Image and audio input on the Gemma 4 12B shape with synthetic weights (built in memory; no download):
// for each soft-token budget, the time to preprocess a 4000x3000 photo (target size, antialiased bicubic
// resize, patchify) and to embed its patches; then 30 s of 44.1 kHz audio resampled to 16 kHz, framed and
// embedded; with FFmpeg (G4_HAVE_VIDEO), a 10 s 640x360 clip (bench/support/synthetic_clip.hpp) decoded at the 32
// frames transformers samples, each preprocessed and embedded at 70 soft tokens as g4 run --video does; beside each,
// the prefill time of the soft tokens it produces through the decoder's first --prefill-layers layers of the 12B
// (default 4; 48 = the whole model) and its output head. Prints a table, and JSON with --json FILE.
//   bench_media [--type BF16|F16|F32|Q8_0|Q4_0] [--threads N] [--prefill-layers N] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "g4/core/quantize.hpp"
#include "g4/media/audio_embedder.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/vision_embedder.hpp"
#include "g4/model/prompt.hpp"
#include "support/synthetic_model.hpp"
#if G4_HAVE_VIDEO
#include "g4/media/video_ffmpeg.hpp"
#include "support/synthetic_clip.hpp"
#endif

using namespace g4;

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Random values (scaled like trained weights) stored as `type`.
Tensor RandomTensor(const std::string& name, Type type, Shape shape, float scale, std::mt19937& rng) {
  Tensor t(name, type, shape);
  std::normal_distribution<float> nd(0.0f, scale);
  const size_t cols = static_cast<size_t>(shape.last()), rows = static_cast<size_t>(shape.rows());
  std::vector<float> row(cols);
  for (size_t r = 0; r < rows; ++r) {
    for (float& v : row) v = nd(rng);
    QuantizeRow(type, row.data(), cols, t.data() + r * t.view().row_bytes());
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Type type = Type::BF16;
    size_t threads = 2;
    int prefill_layers = 4;
    std::string json;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      Require(i + 1 < argc, a, "missing value");
      const std::string v = argv[++i];
      if (a == "--type") {
        const auto t = TypeFromName(v);
        Require(t.has_value(), "--type", "unknown type " + v);
        type = *t;
      } else if (a == "--threads") {
        threads = std::stoul(v);
      } else if (a == "--prefill-layers") {
        prefill_layers = std::stoi(v);
        Require(prefill_layers >= 0 && prefill_layers <= 48, a, "must be in [0, 48]");
      } else if (a == "--json") {
        json = v;
      } else {
        Fail(a, "unknown option (use --type, --threads, --prefill-layers, --json)");
      }
    }
    ThreadPool pool(threads);
    std::mt19937 rng(1);
    const int64_t dim = 3840, hidden = 3840, n_pos = 1120;
    // Matrices in the chosen type; 1-D weights and the position table as the checkpoints ship them.
    const Tensor dense = RandomTensor("patch_dense", type, Shape{dim, kPatchValues}, 0.01f, rng);
    const Tensor proj = RandomTensor("projection", type, Shape{hidden, dim}, 0.02f, rng);
    const Tensor audio_proj = RandomTensor("audio_projection", type, Shape{hidden, 640}, 0.04f, rng);
    const Tensor pos = RandomTensor("pos_embedding", Type::BF16, Shape{n_pos, 2, dim}, 0.1f, rng);
    const Tensor ln1w = RandomTensor("ln1_w", Type::F32, Shape{kPatchValues}, 1.0f, rng);
    const Tensor ln1b = RandomTensor("ln1_b", Type::F32, Shape{kPatchValues}, 0.1f, rng);
    const Tensor vec = RandomTensor("vec", Type::F32, Shape{dim}, 1.0f, rng);
    VisionWeights w;
    w.patch_ln1_w = ln1w.view();
    w.patch_ln1_b = ln1b.view();
    w.patch_dense_w = dense.view();
    w.patch_dense_b = w.patch_ln2_w = w.patch_ln2_b = w.pos_norm_w = w.pos_norm_b = vec.view();
    w.pos_embedding = pos.view();
    w.projection = proj.view();
    const VisionEmbedder vision(w);
    const AudioEmbedder audio(audio_proj.view());
    // The decoder that reads the soft tokens: the 12B's first layers, weights of the same type.
    Gemma4Config cfg = Gemma4Config::Gemma4_12B();
    cfg.n_layers = std::max(prefill_layers, 1);
    cfg.layers.resize(static_cast<size_t>(cfg.n_layers));
    const bench::SyntheticModel decoder_weights(cfg, type);
    const Gemma4 decoder(cfg, decoder_weights.weights(), pool);
    // Seconds to prefill the media sequence (boi/boa, soft tokens, eoi/eoa; a video's timestamps).
    auto prefill = [&](const MediaEmbedding& media) {
      if (prefill_layers == 0) return 0.0;
      Prompt prompt(cfg);
      prompt.AddMedia(media);
      Sequence seq = decoder.NewSequence(prompt.size() + 1, std::max<size_t>(prompt.size(), 512));
      ForwardOutput out;
      const auto t0 = std::chrono::steady_clock::now();
      decoder.Forward(seq, prompt.input(), out);
      return Seconds(t0);
    };

    RgbImage photo;  // 4000x3000 of smooth colour gradients plus noise
    photo.width = 4000;
    photo.height = 3000;
    photo.pixels.resize(size_t{4000} * 3000 * 3);
    for (size_t i = 0; i < photo.pixels.size(); ++i) photo.pixels[i] = static_cast<uint8_t>((i / 3 % 4000) / 16 + (rng() & 15));

    std::printf("bench_media: %s weights, %zu threads, 12B shape (patch 6912 -> %lld -> %lld; audio 640 -> %lld)\n",
                std::string(TypeName(type)).c_str(), threads, static_cast<long long>(dim), static_cast<long long>(hidden),
                static_cast<long long>(hidden));
    const std::string prefill_head = "prefill s (" + std::to_string(prefill_layers) + "/48 layers)";
    std::printf("%-22s %8s %14s %12s %14s %22s\n", "input", "tokens", "preprocess s", "embed s", "embed tok/s", prefill_head.c_str());
    std::ostringstream rows;
    auto row = [&](const std::string& what, size_t tokens, double pre, double emb, double fill) {
      std::printf("%-22s %8zu %14.3f %12.3f %14.1f %22.2f\n", what.c_str(), tokens, pre, emb, static_cast<double>(tokens) / emb, fill);
      rows << (rows.tellp() > 0 ? ",\n" : "") << "  {\"input\": \"" << what << "\", \"tokens\": " << tokens
           << ", \"preprocess_s\": " << pre << ", \"embed_s\": " << emb << ", \"prefill_s\": " << fill << ", \"prefill_layers\": " << prefill_layers << "}";
    };
    for (int budget : kImageBudgets) {
      auto t0 = std::chrono::steady_clock::now();
      const ImagePatches p = PreprocessImage(photo, budget, PatchOrder::kHWC);
      const double pre = Seconds(t0);
      t0 = std::chrono::steady_clock::now();
      const std::vector<float> soft = vision.Embed(p, pool);
      const double emb = Seconds(t0);
      row("image 4000x3000 @" + std::to_string(budget), p.size(), pre, emb, prefill({MediaEmbedding::Kind::kImage, soft, p.size(), {}}));
    }
    std::vector<float> wave(44100 * 30);
    for (size_t i = 0; i < wave.size(); ++i) wave[i] = static_cast<float>(0.3 * std::sin(i * 0.07) + 0.01 * (rng() % 100) / 100.0);
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<AudioFrames> frames = FrameAudio(Resample(wave, 44100, kAudioSampleRate));
    const double pre = Seconds(t0);
    t0 = std::chrono::steady_clock::now();
    const std::vector<float> soft = audio.Embed(frames[0], pool);
    const double emb = Seconds(t0);
    row("audio 30 s @44.1 kHz", frames[0].size(), pre, emb, prefill({MediaEmbedding::Kind::kAudio, soft, frames[0].size(), {}}));
#if G4_HAVE_VIDEO
    {
      // Preprocess s: decoding the sampled frames (demuxing, seeking, RGB) and their resize and patchify.
      const bench::SyntheticClip clip = bench::MakeClip(640, 360, 30, 10);
      MediaEmbedding video{MediaEmbedding::Kind::kVideo, {}, 0, {}};
      double embed_s = 0, patch_s = 0;
      VideoOptions frames_only;  // the frames transformers samples (32); the sound is the audio row's work
      frames_only.audio = false;
      t0 = std::chrono::steady_clock::now();
      const DecodedVideo decoded = DecodeVideo(clip.bytes, "clip", frames_only, [&](size_t, double, RgbImage frame) {
        auto t = std::chrono::steady_clock::now();
        const ImagePatches p = PreprocessImage(frame, kDefaultVideoFrameBudget, PatchOrder::kHWC, PixelScale::kVideo);
        patch_s += Seconds(t);
        t = std::chrono::steady_clock::now();
        const std::vector<float> frame_soft = vision.Embed(p, pool);
        embed_s += Seconds(t);
        video.rows.insert(video.rows.end(), frame_soft.begin(), frame_soft.end());
        video.n += p.size();
        video.frames.push_back({p.size(), {236770, 236771, 236772}});  // ~ the ids of "mm:ss "
      });
      const double clip_s = Seconds(t0) - embed_s;
      const size_t n = decoded.indices.size();
      row("video 640x360 " + std::to_string(n) + "f @70", video.n, clip_s, embed_s, prefill(video));
      std::printf("  video: %s, %zu KB, %lld frames at %.0f fps; per clip %.1f ms decode + %.1f ms resize/patchify + %.1f ms "
                  "embed, per frame %.2f + %.2f + %.2f ms\n",
                  clip.how.c_str(), clip.bytes.size() / 1024, static_cast<long long>(decoded.info.frames), decoded.info.fps,
                  (clip_s - patch_s) * 1e3, patch_s * 1e3, embed_s * 1e3, (clip_s - patch_s) * 1e3 / n, patch_s * 1e3 / n, embed_s * 1e3 / n);
      rows << ",\n  {\"input\": \"video 640x360 parts\", \"clip\": \"" << clip.how << "\", \"frames\": " << n << ", \"decode_s\": " << clip_s - patch_s
           << ", \"patchify_s\": " << patch_s << ", \"embed_s\": " << embed_s << ", \"ms_per_frame\": " << (clip_s + embed_s) * 1e3 / n << "}";
    }
#else
    std::printf("  video: not measured (this bench was built without FFmpeg)\n");
#endif
    if (!json.empty()) {
      std::ofstream f(json);
      Require(f.good(), json, "cannot write");
      f << "{\"type\": \"" << TypeName(type) << "\", \"threads\": " << threads << ", \"rows\": [\n" << rows.str() << "\n]}\n";
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_media: %s\n", e.what());
    return 1;
  }
  return 0;
}
