// g4 check CASE_DIR: runs a reference case (tests/data/golden/*, tests/data/demo) and compares with the
// vectors Hugging Face transformers produced. One line per compared tensor with its relative error
// (max |ours - ref| / max |ref|); exits 1 if any exceeds the tolerance or any greedy token differs.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/json.hpp"
#include "g4/io/safetensors.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/audio_embedder.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/vision_embedder.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/prompt.hpp"
#include "g4/model/generate.hpp"

namespace g4cli::cmd_check {

using namespace g4;

const char* kHelp = R"(usage: g4 check CASE_DIR [options]

Runs a reference case folder (config.json, model.safetensors, golden.safetensors, case.json) and compares every
output with the reference. Kinds: text, multimodal, mtp.

options:
  -m, --model FILE      model to run instead of CASE_DIR's safetensors (e.g. a GGUF of the same checkpoint)
  --mmproj FILE         vision/audio embedders (GGUF) for a GGUF model
  --target FILE         mtp cases: the target model (default: the case's target_case folder)
  --centroid-top-k K    mtp cases with a centroid head from a GGUF (which does not record it)
  --tolerance T         relative error bound for every compared output, looser or tighter than the defaults
                        (1e-3 for logits, hidden states and cached K/V; 1e-4 for the embedders and the drafter)
  --quantized           the weights or the cache are quantized: greedy continuations are reported, not required
                        to match; the logits must keep top-1 agreement >= --min-top1 (default 0.9) and --tolerance
  --cache-type T        text cases: the KV cache's type, f32 (default), f16, q8_0 or q4_0; -ctk / -ctv
                        (--cache-type-k / -v) set the keys' or the values' alone (the demo with Q8_0: relative
                        error 2.3e-2, top-1 66 of 67; see tests/meson.build)
  -t, --threads N       threads (default: all)
)";

class Report {
 public:
  // Quantized weights: greedy continuations may legitimately diverge after a near tie, so they are reported
  // and not failed; the logits' error and top-1 agreement carry the check.
  bool quantized = false;

  // Compares `ours` with the reference tensor; prints and records the outcome.
  void Compare(const std::string& name, std::span<const float> ours, std::span<const float> ref, double tol) {
    double diff = 0, scale = 0;
    const bool size_ok = ours.size() == ref.size();
    size_t non_finite = 0;  // std::max would skip a NaN difference, so they are counted apart
    for (size_t i = 0; size_ok && i < ref.size(); ++i) {
      non_finite += !std::isfinite(ours[i]);
      diff = std::max(diff, std::abs(static_cast<double>(ours[i]) - ref[i]));
      scale = std::max(scale, std::abs(static_cast<double>(ref[i])));
    }
    const double rel = diff / (scale > 0 ? scale : 1.0);
    const bool ok = size_ok && non_finite == 0 && std::isfinite(rel) && rel <= tol;
    if (!size_ok) {
      std::printf("  %-34s size %zu, reference %zu  FAIL\n", name.c_str(), ours.size(), ref.size());
    } else if (non_finite > 0) {
      std::printf("  %-34s %zu of %zu values not finite  FAIL\n", name.c_str(), non_finite, ours.size());
    } else {
      std::printf("  %-34s rel %.3e  (tol %.0e)  %s\n", name.c_str(), rel, tol, ok ? "ok" : "FAIL");
    }
    failures_ += !ok;
  }
  // Pixel values: mean and max |diff| in units of 1/255 (an independent resize differs by a few steps).
  void Pixels(const std::string& name, std::span<const float> ours, std::span<const float> ref, double mean_tol, double max_tol) {
    double sum = 0, mx = 0;
    const bool size_ok = ours.size() == ref.size();
    for (size_t i = 0; size_ok && i < ref.size(); ++i) {
      const double d = std::abs(static_cast<double>(ours[i]) - ref[i]) * 255.0;
      sum += d;
      mx = std::max(mx, d);
    }
    const double mean = size_ok && !ref.empty() ? sum / static_cast<double>(ref.size()) : INFINITY;
    const bool ok = size_ok && mean <= mean_tol && mx <= max_tol;
    std::printf("  %-34s mean %.3f/255 max %.0f/255  (tol %.1f, %.0f)  %s\n", name.c_str(), mean, mx, mean_tol, max_tol, ok ? "ok" : "FAIL");
    failures_ += !ok;
  }
  // Fraction of rows of [rows, vocab] logits whose argmax agrees with the reference's.
  void Top1(const std::string& name, std::span<const float> ours, std::span<const float> ref, size_t vocab, double min_agree) {
    const size_t rows = ref.size() / vocab;
    size_t agree = 0;
    for (size_t i = 0; i < rows && ours.size() == ref.size(); ++i)
      agree += Argmax(ours.subspan(i * vocab, vocab)) == Argmax(ref.subspan(i * vocab, vocab));
    const double frac = rows ? static_cast<double>(agree) / static_cast<double>(rows) : 0.0;
    const bool ok = frac >= min_agree;
    std::printf("  %-34s %zu/%zu = %.1f%%  (min %.1f%%)  %s\n", name.c_str(), agree, rows, 100 * frac, 100 * min_agree, ok ? "ok" : "FAIL");
    failures_ += !ok;
  }
  // Greedy continuations: must match exactly unless the weights are quantized.
  void Greedy(const std::string& name, const std::vector<int32_t>& ours, std::span<const int32_t> ref) {
    Tokens(name, ours, ref, !quantized);
  }
  void Tokens(const std::string& name, const std::vector<int32_t>& ours, std::span<const int32_t> ref, bool must_match = true) {
    size_t same = 0;
    while (same < ours.size() && same < ref.size() && ours[same] == ref[same]) ++same;
    const bool ok = ours.size() == ref.size() && same == ref.size();
    std::printf("  %-34s %zu/%zu tokens identical  %s\n", name.c_str(), same, ref.size(), ok ? "ok" : must_match ? "FAIL" : "(reported)");
    if (!ok && must_match) {
      std::printf("    ours:");
      for (int32_t t : ours) std::printf(" %d", t);
      std::printf("\n    ref: ");
      for (int32_t t : ref) std::printf(" %d", t);
      std::printf("\n");
    }
    failures_ += !ok && must_match;
  }
  int failures() const { return failures_; }

 private:
  int failures_ = 0;
};

struct Golden {
  std::unique_ptr<Safetensors> st;
  std::string path;
  const TensorView& Get(const std::string& name) const {
    const TensorView* t = st->Find(name);
    Require(t != nullptr, path, "no tensor '" + name + "'");
    return *t;
  }
  bool Has(const std::string& name) const { return st->Find(name) != nullptr; }
  std::span<const float> F32(const std::string& name) const {
    const TensorView& t = Get(name);
    Require(t.type == Type::F32, path, "'" + name + "' is not F32");
    return t.as<float>();
  }
  std::vector<int32_t> I32(const std::string& name) const {
    const TensorView& t = Get(name);
    Require(t.type == Type::I32, path, "'" + name + "' is not I32");
    const auto s = t.as<int32_t>();
    return {s.begin(), s.end()};
  }
};

// Greedy decode through the KV cache, keeping every step's logits.
std::vector<int32_t> GreedyWithScores(const Gemma4& model, std::span<const int32_t> prompt, size_t n, KVTypes cache,
                                      std::vector<float>& scores) {
  Sequence seq = model.NewSequence(prompt.size() + n + 1, 512, cache);
  ForwardOutput out;
  model.Forward(seq, {prompt}, out);
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < n; ++i) {
    scores.insert(scores.end(), out.logits.begin(), out.logits.end());
    tokens.push_back(Argmax(out.logits));
    if (i + 1 < n) {
      const int32_t one[] = {tokens.back()};
      model.Forward(seq, {one}, out);
    }
  }
  return tokens;
}

// Relative error bounds: `coarse` for logits, hidden states and cached K/V, `fine` for the embedders and the drafter
// (both --tolerance when given).
struct Tolerances {
  double coarse = 1e-3, fine = 1e-4;
};

void CheckText(const Checkpoint& ck, const Golden& g, double tol, double min_top1, KVTypes cache, ThreadPool& pool, Report& r) {
  // Greedy references run to their full length: stop tokens must not end them early.
  Gemma4Config cfg = ck.config();
  cfg.tokens.stop_ids.clear();
  Gemma4 model(cfg, ck.text(), pool);
  const auto ids = g.I32("input_ids");
  std::vector<std::vector<float>> hidden;
  ForwardOutput out;
  out.all_logits = true;
  out.hidden = &hidden;
  Sequence seq = model.NewSequence(ids.size(), 512, cache);
  model.Forward(seq, {ids}, out);
  r.Compare("logits", out.logits, g.F32("logits"), tol);
  r.Top1("logits top-1 agreement", out.logits, g.F32("logits"), static_cast<size_t>(cfg.vocab_size), r.quantized ? min_top1 : 1.0);
  for (size_t i = 0; i < hidden.size(); ++i) {
    const std::string name = "hidden." + std::to_string(i);
    if (g.Has(name)) r.Compare(name, hidden[i], g.F32(name), tol);
  }
  if (g.Has("greedy_prompt")) {
    std::vector<float> scores;
    const auto want = g.I32("greedy_tokens");
    const auto got = GreedyWithScores(model, g.I32("greedy_prompt"), want.size(), cache, scores);
    r.Greedy("greedy_tokens", got, want);
    if (g.Has("greedy_scores")) {
      // Scores are comparable while the prefixes agree: up to and including the first differing step.
      size_t same = 0;
      while (same < got.size() && same < want.size() && got[same] == want[same]) ++same;
      const size_t rows = std::min(same + 1, want.size()), V = static_cast<size_t>(cfg.vocab_size);
      r.Compare("greedy_scores (" + std::to_string(rows) + " steps)", std::span(scores).first(rows * V),
                g.F32("greedy_scores").first(rows * V), tol);
    }
  }
  for (int p = 1; g.Has("prompt" + std::to_string(p) + ".input_ids"); ++p) {
    const std::string name = "prompt" + std::to_string(p);
    const auto want = g.I32(name + ".greedy_tokens");
    Sequence s = model.NewSequence(g.I32(name + ".input_ids").size() + want.size(), 512, cache);
    r.Greedy(name + ".greedy_tokens", Generate(model, s, {g.I32(name + ".input_ids")}, {want.size()}, GreedyVerify()), want);
  }
}

// HWC patch rows (as the reference's pixel_values) in the order the checkpoint's vision weights expect.
std::vector<float> PatchRowsFor(const VisionEmbedder& embedder, std::span<const float> hwc, size_t n) {
  std::vector<float> rows(hwc.begin(), hwc.begin() + static_cast<std::ptrdiff_t>(n * kPatchValues));
  if (embedder.order() == PatchOrder::kCHW) HwcToChwRows(rows, kPatchPixels);
  return rows;
}

void CheckMultimodal(const Checkpoint& ck, const nlohmann::json& info, const Golden& g, Tolerances t, ThreadPool& pool, Report& r) {
  Require(ck.vision() && ck.audio(), ck.path(), "has no vision/audio embedders (a GGUF needs --mmproj)");
  const VisionEmbedder vision(*ck.vision());
  const AudioEmbedder audio(ck.audio()->projection);
  const double tol = t.coarse, etol = t.fine;

  // Preprocessing: our resize and patchify of the source image, our framing of the waveform.
  const TensorView& rgb = g.Get("image_rgb_u8");
  Require(rgb.type == Type::U8 && rgb.shape.rank == 3 && rgb.shape[2] == 3, g.path, "image_rgb_u8 is not [H, W, 3] uint8");
  RgbImage img;
  img.height = static_cast<int>(rgb.shape[0]);
  img.width = static_cast<int>(rgb.shape[1]);
  img.pixels.assign(reinterpret_cast<const uint8_t*>(rgb.data), reinterpret_cast<const uint8_t*>(rgb.data) + rgb.nbytes);
  const int budget = info.at("image").at("max_soft_tokens").get<int>();
  const ImagePatches patches = PreprocessImage(img, budget, PatchOrder::kHWC);
  const size_t n_img = patches.size();
  const auto ref_pos = g.I32("image_position_ids");
  Require(ref_pos.size() >= 2 * n_img, g.path, "fewer reference patches than ours");
  r.Pixels("pixel_values", patches.values, g.F32("pixel_values").first(n_img * kPatchValues), 0.5, 3.0);
  r.Tokens("image_position_ids", patches.positions, std::span(ref_pos).first(2 * n_img));
  bool padding_ok = true;  // rows past the image are padding at position (-1, -1)
  for (size_t i = 2 * n_img; i < ref_pos.size(); ++i) padding_ok &= ref_pos[i] == -1;
  r.Tokens("image_position_ids padding", {padding_ok}, std::vector<int32_t>{1});
  const auto wave = g.F32("audio_waveform");
  const std::vector<AudioFrames> clips = FrameAudio(wave);
  r.Compare("audio_features", clips.at(0).values, g.F32("audio_features"), 0.0);

  // The embedders, on the reference's own pixel_values and audio_features.
  const size_t H = static_cast<size_t>(ck.config().hidden_size);
  const auto ref_pixels = g.F32("pixel_values");
  MediaEmbedding image{MediaEmbedding::Kind::kImage, std::vector<float>(n_img * H), n_img, {}};
  vision.Embed(PatchRowsFor(vision, ref_pixels, n_img), std::span(ref_pos).first(2 * n_img), n_img, image.rows.data(), pool);
  r.Compare("image_embeddings", image.rows, g.F32("image_embeddings"), etol);
  const auto ref_frames = g.F32("audio_features");
  const size_t n_aud = ref_frames.size() / kAudioFrameSamples;
  MediaEmbedding sound{MediaEmbedding::Kind::kAudio, std::vector<float>(n_aud * H), n_aud, {}};
  audio.Embed(ref_frames.data(), n_aud, sound.rows.data(), pool);
  r.Compare("audio_embeddings", sound.rows, g.F32("audio_embeddings"), etol);

  // The mixed prompt, with the official mask and with plain causal attention.
  Gemma4Config cfg = ck.config();
  cfg.tokens.stop_ids.clear();
  Gemma4 model(cfg, ck.text(), pool);
  const auto ids = g.I32("input_ids");
  std::vector<MediaEmbedding> media;  // in the order their runs appear
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0 && ids[i] == ids[i - 1]) continue;
    if (ids[i] == cfg.tokens.image) media.push_back(image);
    if (ids[i] == cfg.tokens.audio) media.push_back(sound);
  }
  Prompt prompt(cfg);
  prompt.AddExpanded(ids, media);
  std::vector<std::vector<float>> hidden;
  ForwardOutput out;
  out.all_logits = true;
  out.hidden = &hidden;
  Sequence seq = model.NewSequence(ids.size() + 16);
  model.Forward(seq, prompt.input(), out);
  r.Compare("logits (official mask)", out.logits, g.F32("logits"), tol);
  if (g.Has("hidden.0")) r.Compare("hidden.0", hidden.front(), g.F32("hidden.0"), tol);
  if (g.Has("hidden.last")) r.Compare("hidden.last", hidden.back(), g.F32("hidden.last"), tol);
  ForwardInput causal = prompt.input();
  causal.block_id = {};
  ForwardOutput causal_out;
  causal_out.all_logits = true;
  Sequence seq2 = model.NewSequence(ids.size());
  model.Forward(seq2, causal, causal_out);
  r.Compare("logits_causal_only", causal_out.logits, g.F32("logits_causal_only"), tol);

  // Greedy continuation after the prompt (generated tokens are text: causal).
  const auto want = g.I32("greedy_tokens");
  std::vector<float> scores;
  Sequence seq3 = model.NewSequence(ids.size() + want.size() + 1);
  const auto got = Generate(model, seq3, prompt.input(), {want.size()}, [&](std::span<const float> l, int32_t) {
    scores.insert(scores.end(), l.begin(), l.end());
    return std::pair<int32_t, bool>{Argmax(l), false};
  });
  r.Greedy("greedy_tokens", got, want);
  r.Compare("greedy_scores", scores, g.F32("greedy_scores"), tol);
}

void CheckMtp(const Checkpoint& drafter_ck, const Checkpoint& target_ck, int centroid_top_k, const Golden& g, Tolerances t,
              ThreadPool& pool, Report& r) {
  Gemma4Config tcfg = target_ck.config();
  tcfg.tokens.stop_ids.clear();
  Gemma4 target(tcfg, target_ck.text(), pool);
  Require(drafter_ck.assistant().has_value(), drafter_ck.path(), "not an MTP assistant checkpoint");
  Gemma4Config dcfg = drafter_ck.config();
  if (centroid_top_k > 0 && dcfg.assistant) dcfg.assistant->centroid_top_k = centroid_top_k;
  Drafter drafter(dcfg, drafter_ck.text(), *drafter_ck.assistant(), target);
  const auto prompt = g.I32("prompt");
  const auto want = g.I32("greedy_tokens");
  const size_t context = prompt.size() + want.size() + 16;

  // The target's cache after the prompt is the drafter's shared KV; chunks as long as the prompt size the sliding
  // rings to hold all of it, as the reference does.
  Sequence seq = target.NewSequence(context, std::max<size_t>(16, prompt.size()));
  ForwardOutput out;
  out.all_logits = true;
  target.Forward(seq, {prompt}, out);
  for (const char* kind : {"sliding_attention", "full_attention"}) {
    const int layer = tcfg.LastLayerOf(std::string(kind) == "full_attention" ? AttentionKind::kFull : AttentionKind::kSliding);
    LayerKV& kv = seq.cache.layer(layer);
    for (const char* kv_name : {"k", "v"}) {
      const std::string name = std::string("shared_kv.") + kind + "." + kv_name;
      if (!g.Has(name)) continue;
      std::vector<float> ours;  // [kv_heads, seq, head_dim] as the reference
      std::vector<float> key(kv.head_dim), value(kv.head_dim);
      for (size_t h = 0; h < kv.n_kv_heads; ++h)
        for (int64_t p = 0; p < seq.pos(); ++p) {
          kv.Load(h, p, key.data(), value.data());
          const std::vector<float>& src = kv_name[0] == 'k' ? key : value;
          ours.insert(ours.end(), src.begin(), src.end());
        }
      r.Compare(name, ours, g.F32(name), t.coarse);
    }
  }
  // One and two draft steps from the reference's explicit inputs.
  const double dtol = t.fine;
  const auto embeds = g.F32("drafter_inputs_embeds");  // [1, 2 H]: the embedding part is recomputed from the token
  const size_t H = static_cast<size_t>(tcfg.hidden_size);
  const int64_t position = g.I32("drafter_position_ids").at(0);
  std::vector<float> e(H), logits, h_next;
  target.EmbedToken(prompt.back(), e.data());
  r.Compare("drafter_inputs_embeds[:H]", e, embeds.first(H), dtol);
  r.Compare("drafter_inputs_embeds[H:]", std::span(out.final_hidden).subspan((prompt.size() - 1) * H, H), embeds.subspan(H, H), dtol);
  drafter.Step(seq, prompt.back(), embeds.subspan(H, H), position, seq.pos(), logits, h_next);
  r.Compare("drafter_logits", logits, g.F32("drafter_logits"), dtol);
  r.Compare("drafter_projected_state", h_next, g.F32("drafter_projected_state"), dtol);
  if (g.Has("drafter_step2_token_in")) {
    const int32_t tok2 = g.I32("drafter_step2_token_in").at(0);
    r.Tokens("drafter step-1 argmax", {Argmax(logits)}, std::vector<int32_t>{tok2});
    std::vector<float> logits2, h2;
    drafter.Step(seq, tok2, h_next, position, seq.pos(), logits2, h2);
    r.Compare("drafter_step2_logits", logits2, g.F32("drafter_step2_logits"), dtol);
    if (g.Has("drafter_step2_projected_state")) r.Compare("drafter_step2_projected_state", h2, g.F32("drafter_step2_projected_state"), dtol);
  }
  // Speculative greedy decoding reproduces the target's greedy continuation for every k.
  // With the smallest chunk a round of k_max = 8 allows (k_max + 2), a prompt longer than window + chunk (the
  // reference cases: 20 tokens, window 8) wraps the sliding rings before decoding starts, as long prompts do.
  for (int k = 1; k <= 8; ++k) {
    Sequence s = target.NewSequence(context, 10);
    SpeculativeStats stats;
    const auto got = Generate(target, &drafter, s, {prompt}, {want.size()}, {k, false, 8}, GreedyVerify(), &stats);
    char name[96];
    std::snprintf(name, sizeof name, "speculative k=%d (%.2f accepted/round)", k, stats.acceptance_per_round());
    r.Tokens(name, got, want);
  }
}

int RunCheck(std::vector<std::string> argv) {
  const g4cli::Args args(argv,
                         {"--model", "--mmproj", "--target", "--tolerance", "--threads", "--centroid-top-k", "--min-top1",
                          "--cache-type", "--cache-type-k", "--cache-type-v"},
                         {"--help", "--quantized"},
                         {{"-m", "--model"}, {"-t", "--threads"}, {"-h", "--help"}, {"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"}});
  if (args.has("--help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  Require(args.positional().size() == 1, "check", "expects one CASE_DIR (see --help)");
  namespace fs = std::filesystem;
  const fs::path dir = args.positional()[0];
  const nlohmann::json info = ReadJsonFile((dir / "case.json").string());
  Require(info.contains("kind") && info["kind"].is_string(), (dir / "case.json").string(), "no 'kind'");
  const std::string kind = info["kind"];
  Golden g{std::make_unique<Safetensors>((dir / "golden.safetensors").string()), (dir / "golden.safetensors").string()};
  Tolerances tol;
  if (args.has("--tolerance")) tol.coarse = tol.fine = args.get_double("--tolerance", 0);
  Require(tol.coarse >= 0 && tol.fine >= 0, "--tolerance", "must be >= 0");
  ThreadPool pool(static_cast<size_t>(args.get_int("--threads", 0, 0, ThreadPool::kMaxThreads)));
  const std::string model_path = args.get("--model", dir.string());
  const KVTypes cache = KVCacheTypesFromNames(args.get("--cache-type"), args.get("--cache-type-k"), args.get("--cache-type-v"));
  Require(kind == "text" || cache == KVTypes{}, "--cache-type", "is for text cases");
  std::printf("case %s (%s), model %s, %s cache\n", dir.string().c_str(), kind.c_str(), model_path.c_str(), cache.Name().c_str());
  Report r;
  r.quantized = args.has("--quantized");
  if (kind == "text") {
    const Checkpoint ck(model_path, args.get("--mmproj"));
    CheckText(ck, g, tol.coarse, args.get_double("--min-top1", 0.9), cache, pool, r);
  } else if (kind == "multimodal") {
    const Checkpoint ck(model_path, args.get("--mmproj"));
    CheckMultimodal(ck, info, g, tol, pool, r);
  } else if (kind == "mtp") {
    Require(info.contains("target_case") && info["target_case"].is_string(), (dir / "case.json").string(), "no 'target_case'");
    const std::string target_path = args.get("--target", (dir.parent_path() / info["target_case"].get<std::string>()).string());
    const Checkpoint drafter(model_path), target(target_path);
    CheckMtp(drafter, target, static_cast<int>(args.get_int("--centroid-top-k", 0, 1, 1 << 20)), g, tol, pool, r);
  } else {
    Fail((dir / "case.json").string(), "kind '" + kind + "' is not supported by this build");
  }
  std::printf("%s: %d failure%s\n", r.failures() ? "FAILED" : "PASSED", r.failures(), r.failures() == 1 ? "" : "s");
  return r.failures() ? 1 : 0;
}

const g4cli::RegisterCommand kRegister("check", "run a reference case and compare with its golden vectors", RunCheck);

}  // namespace g4cli::cmd_check
