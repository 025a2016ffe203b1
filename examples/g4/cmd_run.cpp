// g4 run: load a Gemma 4 model (Hugging Face folder or GGUF), build the prompt (chat template, or raw text),
// optionally with images and audio, and stream the answer; with --draft, decode speculatively with an MTP drafter.
// Ends with prompt and generation tokens/s (and the drafts accepted per round).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/audio_embedder.hpp"
#include "g4/media/image.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/vision_embedder.hpp"
#include "g4/model/prompt.hpp"
#include "g4/model/sampler.hpp"
#include "g4/model/speculative.hpp"
#include "g4/text/chat_template.hpp"
#include "g4/text/model_tokenizer.hpp"
#include "g4/text/stop_strings.hpp"
#include "g4/text/stream_decoder.hpp"

namespace {

using namespace g4;
using Clock = std::chrono::steady_clock;

const char* kHelp = R"(usage: g4 run -m MODEL [options]

Generates text with a Gemma 4 model: a Hugging Face folder (config.json + safetensors) or a GGUF file.

input:
  -p, --prompt TEXT       the prompt (or the first user turn with -i)
  -f, --file FILE         read the prompt from FILE
  -i, --interactive       chat: read user turns from standard input until EOF or an empty line
  --system TEXT           system instruction (chat mode)
  --raw                   no chat template: continue the prompt as plain text (base models, the demo model)
  --image FILE            an image (PNG, JPEG, BMP, GIF, PPM); repeatable. Needs --mmproj for GGUF models
  --image-budget N        soft tokens per image: 70, 140, 280 (default), 560 or 1120
  --audio FILE            a WAV file; repeatable. Clips over 30 s are an error unless --audio-split
  --audio-split           cut long audio into 30 s pieces
  --mmproj FILE           vision/audio embedders of a GGUF model (llama.cpp's mmproj file)
  --tokenizer FILE        a tokenizer.json to use instead of the model's own

generation:
  -n, --n-predict N       tokens to generate (default 256)
  -c, --ctx-size N        context length in tokens (default 4096)
  --cache-type T          KV cache: f32 (default; matches transformers to ~1e-5) or f16 (half the memory
                          and cache reads; logits move by ~2e-4)
  -t, --threads N         threads (default: all)
  --temp T                temperature (default 1.0; 0 = greedy)
  --top-k K               (default 64)    --top-p P   (default 0.95)    --min-p P  (default 0)
  --repeat-penalty R      (default 1.0)   --presence-penalty P (default 0)
  --seed S                random seed (default 0)
  --stop TEXT             stop when the output contains TEXT; repeatable
  --draft FILE            MTP drafter (google/gemma-4-12B-it-assistant or its GGUF): speculative decoding
  --draft-k K             drafts per round (default 4)   --draft-adaptive: grow/shrink k with acceptance
  --draft-compare         also decode without the drafter and print both speeds
  --no-warmup             do not read the weights into memory before the first token
  --no-repack             no second copy of the quantized weights in 16-row groups (made where the AVX2 and
                          AVX-512 kernels read it): less memory, slower quantized matmuls (on AVX2 and AVX-512
                          without VNNI, several times slower)
)";

// Reads every page of the model's tensors once, with a progress bar: turns the first token's page faults into a
// visible, sequential read of the file (and tells the user how long loading a multi-GB model takes).
void Warmup(const Checkpoint& ck, bool show) {
  std::vector<const TensorView*> views;
  auto add = [&](const TensorView& v) { if (v.data) views.push_back(&v); };
  add(ck.text().embed);
  for (const LayerWeights& l : ck.text().layers)
    for (const TensorView* v : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) add(*v);
  uint64_t total = 0, done = 0;
  for (const TensorView* v : views) total += v->nbytes;
  volatile uint8_t sink = 0;
  int shown = -1;
  const auto t0 = Clock::now();
  for (const TensorView* v : views) {
    const auto* p = reinterpret_cast<const uint8_t*>(v->data);
    for (size_t off = 0; off < v->nbytes; off += 4096) sink = sink + p[off];
    done += v->nbytes;
    const int pct = static_cast<int>(100 * done / (total ? total : 1));
    if (show && pct != shown) {
      shown = pct;
      std::fprintf(stderr, "\rloading %s [%-40.*s] %3d%% of %.2f GB", ck.path().c_str(), pct * 40 / 100,
                   "========================================", pct, static_cast<double>(total) / 1e9);
    }
  }
  if (show) {
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::fprintf(stderr, " in %.1f s\n", s);
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  Require(f.good(), path, "cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Media {
  std::unique_ptr<VisionEmbedder> vision;
  std::unique_ptr<AudioEmbedder> audio;
  PatchOrder order = PatchOrder::kHWC;
};

// Embeds the --image and --audio files, in the order given on the command line (images first, then audio).
std::vector<MediaEmbedding> EmbedMedia(const Checkpoint& ck, const g4cli::Args& args, ThreadPool& pool) {
  std::vector<MediaEmbedding> out;
  const auto images = args.all("--image"), audios = args.all("--audio");
  if (!images.empty()) {
    Require(ck.vision().has_value(), "--image", ck.path() + " has no vision embedder" + (ck.is_gguf() ? " (pass --mmproj)" : ""));
    const VisionEmbedder embedder(*ck.vision());
    const int budget = static_cast<int>(args.get_int("--image-budget", kDefaultImageBudget, 1, 1 << 20));
    CheckImageBudget(budget);
    for (const std::string& path : images) {
      const ImagePatches patches = PreprocessImage(LoadImage(path), budget, embedder.order());
      out.push_back({MediaEmbedding::Kind::kImage, embedder.Embed(patches, pool), patches.size()});
    }
  }
  if (!audios.empty()) {
    Require(ck.audio().has_value(), "--audio", ck.path() + " has no audio embedder" + (ck.is_gguf() ? " (pass --mmproj)" : ""));
    const AudioEmbedder embedder(ck.audio()->projection);
    for (const std::string& path : audios) {
      for (const AudioFrames& clip : FrameAudio(LoadAudio16k(path), args.has("--audio-split") ? LongAudio::kSplit : LongAudio::kError))
        out.push_back({MediaEmbedding::Kind::kAudio, embedder.Embed(clip, pool), clip.size()});
    }
  }
  return out;
}

struct Timing {
  size_t prompt_tokens = 0, generated = 0;
  double prompt_s = 0, gen_s = 0;
};

int RunRun(std::vector<std::string> argv) {
  const g4cli::Args args(
      argv,
      {"--model", "--prompt", "--file", "--system", "--image", "--image-budget", "--audio", "--mmproj", "--tokenizer",
       "--n-predict", "--ctx-size", "--threads", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
       "--presence-penalty", "--seed", "--stop", "--draft", "--draft-k", "--cache-type"},
      {"--help", "--interactive", "--raw", "--audio-split", "--draft-adaptive", "--draft-compare", "--no-warmup",
       "--no-repack"},
      {{"-m", "--model"}, {"-p", "--prompt"}, {"-f", "--file"}, {"-i", "--interactive"}, {"-n", "--n-predict"},
       {"-c", "--ctx-size"}, {"-t", "--threads"}, {"-h", "--help"}});
  if (args.has("--help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  Require(args.has("--model"), "run", "-m MODEL is required (see --help)");
  Require(args.positional().empty(), args.positional().empty() ? "" : args.positional()[0], "unexpected argument (see --help)");
  Require(!(args.has("--prompt") && args.has("--file")), "--file", "give -p or -f, not both");
  const bool interactive = args.has("--interactive"), raw = args.has("--raw");
  Require(!(interactive && raw), "--raw", "interactive chat needs the chat template");
  std::string first_prompt = args.has("--file") ? ReadFile(args.get("--file")) : args.get("--prompt");
  Require(interactive || !first_prompt.empty() || args.has("--image") || args.has("--audio"), "run",
          "nothing to do: give -p PROMPT, -f FILE or -i");
  const size_t n_predict = static_cast<size_t>(args.get_int("--n-predict", 256, 1, 1 << 24));
  const size_t context = static_cast<size_t>(args.get_int("--ctx-size", 4096, 16, 1 << 24));
  const Type kv_type = KVCacheTypeFromName(args.get("--cache-type", "f32"), "--cache-type");

  ThreadPool pool(static_cast<size_t>(args.get_int("--threads", 0, 1, ThreadPool::kMaxThreads)));
  const Checkpoint ck(args.get("--model"), args.get("--mmproj"));
  if (!args.has("--no-warmup")) Warmup(ck, isatty(STDERR_FILENO) != 0);
  const Tokenizer tok = LoadModelTokenizer(ck, args.get("--tokenizer"));
  Gemma4Config cfg = ck.config();
  Require(tok.size() <= cfg.vocab_size, "tokenizer", std::to_string(tok.size()) + " tokens for a model vocabulary of " + std::to_string(cfg.vocab_size));
  if (!raw)
    for (int32_t id : ChatStopIds(tok))
      if (std::find(cfg.tokens.stop_ids.begin(), cfg.tokens.stop_ids.end(), id) == cfg.tokens.stop_ids.end()) cfg.tokens.stop_ids.push_back(id);
  Gemma4 model(cfg, ck.text(), pool, args.has("--no-repack") ? Repack::kNone : Repack::kWhereRead);
  Sequence seq = model.NewSequence(context, 512, kv_type);

  std::unique_ptr<Checkpoint> draft_ck;
  std::unique_ptr<Drafter> drafter;
  if (args.has("--draft")) {
    draft_ck = std::make_unique<Checkpoint>(args.get("--draft"));
    Require(draft_ck->assistant().has_value(), args.get("--draft"), "is not an MTP drafter (assistant) checkpoint");
    drafter = std::make_unique<Drafter>(draft_ck->config(), draft_ck->text(), *draft_ck->assistant(), model);
  }
  const int draft_k = static_cast<int>(args.get_int("--draft-k", 4, 1, 15));

  SamplerConfig sc;
  sc.temperature = static_cast<float>(args.get_double("--temp", 1.0));
  sc.top_k = static_cast<int32_t>(args.get_int("--top-k", 64, 0, 1 << 30));
  sc.top_p = static_cast<float>(args.get_double("--top-p", 0.95));
  sc.min_p = static_cast<float>(args.get_double("--min-p", 0.0));
  sc.repetition_penalty = static_cast<float>(args.get_double("--repeat-penalty", 1.0));
  sc.presence_penalty = static_cast<float>(args.get_double("--presence-penalty", 0.0));
  sc.seed = static_cast<uint64_t>(args.get_int("--seed", 0, 0, INT64_MAX));
  for (int32_t id : cfg.tokens.suppress)
    if (id < cfg.vocab_size) sc.suppressed.push_back(id);
  sc.stop_ids = cfg.tokens.stop_ids;
  Sampler sampler(sc, cfg.vocab_size);

  const std::vector<MediaEmbedding> media = EmbedMedia(ck, args, pool);
  if (!media.empty() && cfg.vision) std::fprintf(stderr, "(%zu media item(s) embedded)\n", media.size());

  ChatOptions chat_opt;
  if (const auto gt = ck.tokenizer(); gt && !gt->chat_template.empty()) chat_opt = ChatOptionsFromJinja(gt->chat_template, ck.path());
  std::vector<ChatMessage> history;
  if (args.has("--system")) history.push_back({"system", {ChatPart::Text(args.get("--system"))}});
  std::vector<int32_t> in_cache;  // tokens whose K/V the sequence holds, in order

  // One exchange: the whole conversation so far (placeholders for every media item of every turn) in, the
  // answer out. Only what the cache does not already hold is computed.
  auto answer = [&](const std::vector<int32_t>& ids, std::span<const MediaEmbedding> all_media, Timing& t) -> std::vector<int32_t> {
    Prompt full(cfg);
    full.AddExpandingPlaceholders(ids, all_media);
    Require(full.size() + 1 <= context, "prompt",
            std::to_string(full.size()) + " tokens do not fit the context of " + std::to_string(context) + " (raise -c)");
    // Reuse the cache for the common prefix when the rollback stays within what the sliding rings keep.
    size_t keep = full.CommonPrefix(in_cache);
    if (in_cache.size() - keep >= seq.cache.max_chunk()) keep = 0;
    seq.pos = static_cast<int64_t>(keep);
    in_cache.resize(keep);
    const ForwardInput fresh = full.input(keep);
    for (int32_t id : fresh.tokens) sampler.Accept(id);
    const size_t budget = std::min(n_predict, context - full.size());
    StreamDecoder stream(tok, /*skip_control=*/true);
    StopStrings stops(args.all("--stop"));
    const auto t0 = Clock::now();
    auto t_first = t0;
    size_t emitted = 0;
    auto on_token = [&](int32_t id) {
      if (emitted++ == 0) t_first = Clock::now();
      sampler.Accept(id);
      if (sampler.IsStop(id)) return true;  // the model's own stop: not printed
      const std::string text = stops.Push(stream.Push(id));
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return !stops.stopped();
    };
    std::vector<int32_t> out;
    SpeculativeStats stats;
    if (drafter) {
      const VerifyRule pick = sc.temperature <= 0
                                  ? GreedyVerify()
                                  : SamplingVerify([&](std::span<const float> l, std::vector<float>& p) { sampler.Probabilities(l, p); },
                                                   [&] { return sampler.Uniform(); });
      out = GenerateSpeculative(model, *drafter, seq, fresh, budget, {draft_k, args.has("--draft-adaptive"), 8}, pick, &stats, on_token);
    } else {
      out = model.Generate(seq, fresh, budget, [&](std::span<const float> l) { return sampler.Sample(l); }, on_token);
    }
    const std::string tail = stops.stopped() ? std::string() : stops.Push(stream.Flush()) + stops.Flush();
    std::fwrite(tail.data(), 1, tail.size(), stdout);
    std::printf("\n");
    const auto t1 = Clock::now();
    t.prompt_tokens += fresh.tokens.size();
    t.generated += out.size();
    t.prompt_s += std::chrono::duration<double>(t_first - t0).count();
    t.gen_s += std::chrono::duration<double>(t1 - t_first).count();
    in_cache = full.tokens();
    in_cache.insert(in_cache.end(), out.begin(), out.end() - (out.empty() ? 0 : 1));
    if (drafter) std::fprintf(stderr, "[drafts accepted per round: %.2f over %zu rounds, k=%d]\n", stats.acceptance_per_round(), stats.rounds, draft_k);
    return out;
  };

  auto report = [&](const Timing& t, const char* what) {
    std::fprintf(stderr, "[%s: prompt %zu tokens at %.2f tokens/s; generation %zu tokens at %.2f tokens/s]\n", what, t.prompt_tokens,
                 t.prompt_tokens / std::max(t.prompt_s, 1e-9), t.generated, t.generated > 1 ? (t.generated - 1) / std::max(t.gen_s, 1e-9) : 0.0);
  };

  Timing timing;
  if (raw) {
    std::vector<int32_t> ids = tok.Encode(first_prompt, {.add_bos = true, .parse_special = false});
    std::vector<int32_t> placeholders;  // raw prompts put the media first
    for (const MediaEmbedding& m : media) placeholders.push_back(m.kind == MediaEmbedding::Kind::kImage ? cfg.tokens.image : cfg.tokens.audio);
    ids.insert(ids.begin() + (ids.empty() ? 0 : 1), placeholders.begin(), placeholders.end());
    std::printf("%s", first_prompt.c_str());
    answer(ids, media, timing);
    report(timing, drafter ? "with drafter" : "g4");
    if (drafter && args.has("--draft-compare")) {
      Timing plain;
      drafter.reset();
      in_cache.clear();
      std::printf("%s", first_prompt.c_str());
      answer(ids, media, plain);
      report(plain, "without drafter");
    }
    return 0;
  }

  std::string user = first_prompt;
  bool first_turn = true;
  for (;;) {
    if (interactive && user.empty()) {
      std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, user) || user.empty()) break;
    }
    ChatMessage m{"user", {}};
    if (first_turn)  // the command line's media belong to the first user turn
      for (const MediaEmbedding& e : media) m.parts.push_back(e.kind == MediaEmbedding::Kind::kImage ? ChatPart::Image() : ChatPart::Audio());
    if (!user.empty()) m.parts.push_back(ChatPart::Text(user));
    history.push_back(m);
    std::vector<int32_t> out = answer(TokenizeChat(tok, history, chat_opt), media, timing);
    while (!out.empty() && sampler.IsStop(out.back())) out.pop_back();
    history.push_back({"model", {ChatPart::Text(tok.Decode(out, true))}});
    user.clear();
    first_turn = false;
    if (!interactive) break;
  }
  report(timing, drafter ? "with drafter" : "g4");
  return 0;
}

const g4cli::RegisterCommand kRegister("run", "generate text (chat or raw), with images, audio and MTP drafting", RunRun);

}  // namespace
