// g4 run: the command line over the session layer (g4/session): load a model, build the prompt (chat through the
// model's own template, or raw text; with images, audio and video), stream the answer; with --draft, decode speculatively
// with an MTP drafter; with --tools, print the model's tool calls as JSON. Ends with prompt and generation
// tokens/s (and the drafts accepted per round).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "memory_check.hpp"
#include "g4/grammar/model_grammar.hpp"
#include "g4/session/prompt_text.hpp"
#include "g4/session/session.hpp"
#if G4_HAVE_VIDEO
#include "g4/session/video_parts.hpp"
#endif

namespace g4cli::cmd_run {

using namespace g4;

const char* kHelp = R"(usage: g4 run -m MODEL [options]

Generates text with a Gemma 4 model: a Hugging Face folder (config.json + safetensors) or a GGUF file.

input:
  -p, --prompt TEXT       the prompt (or the first user turn with -i)
  -f, --file FILE         read the prompt from FILE
  -i, --interactive       chat: read user turns from standard input until EOF or an empty line
  --system TEXT           system instruction (chat mode)
  --tools FILE            a JSON array of OpenAI tool declarations (chat mode): tool calls print as JSON; with
                          -i, each call's result is read from standard input as the tool's answer
  --think                 thinking mode (the thoughts go to standard error)
  --chat-template FILE    a Jinja chat template instead of the model's own
  --raw                   no chat template: continue the prompt as plain text (base models, the demo model)
  --image FILE            an image (PNG, JPEG, BMP, GIF, PPM); repeatable. Needs --mmproj for GGUF models
  --image-budget N        soft tokens per image: 70, 140, 280 (default), 560 or 1120
  --audio FILE            a WAV file; repeatable. Clips over 30 s are an error unless --audio-split
  --audio-split           cut long audio into 30 s pieces
  --video FILE            a video (any container and codec FFmpeg reads); repeatable: frames sampled as transformers
                          does (32 by default), each at --video-budget soft tokens with its mm:ss timestamp, then
                          the sound track as audio in 30 s pieces
  --video-frames N        frames to sample from each video (default 32)
  --video-fps F           or: frames per second of video to sample (e.g. 1)
  --video-budget N        soft tokens per frame: 70 (default), 140, 280, 560 or 1120
  --no-video-audio        leave the videos' sound out
  --max-video-seconds S   longest video accepted (default 60)
  --print-prompt          print the prompt (soft-token runs as [70 x <|video|>]) and stop
  --mmproj FILE           vision/audio embedders of a GGUF model (llama.cpp's mmproj file)
  --tokenizer FILE        a tokenizer.json to use instead of the model's own

generation:
  -n, --n-predict N       tokens to generate (default 256)
  -c, --ctx-size N        context length in tokens (default 4096)
  --cache-type T          KV cache of keys and values: f32 (default; matches transformers to ~1e-5), f16
                          (half the memory and cache reads; logits move by ~1e-3), or ggml's blocks q8_0 (34/128
                          of f32; ~2e-2 on the demo model) and q4_0 (18/128; ~0.3)
  -ctk, --cache-type-k T  the keys' type alone; -ctv, --cache-type-v T the values' (llama.cpp's flags)
  -t, --threads N         threads (default: all)
  --temp T                temperature (default 1.0; 0 = greedy)
  --top-k K               (default 64)    --top-p P   (default 0.95)    --min-p P  (default 0)
  --repeat-penalty R      (default 1.0)   --presence-penalty P (default 0)
  --seed S                random seed (default 0)
  --stop TEXT             stop when the output contains TEXT; repeatable
  --json-schema FILE      constrain the answer to JSON valid under this JSON Schema (docs/grammar.md)
  --grammar FILE          constrain the answer to this grammar (docs/grammar.md)
  --draft FILE            MTP drafter (google/gemma-4-12B-it-assistant or its GGUF): speculative decoding
  --draft-k K             drafts per round (default 4)   --draft-adaptive: grow/shrink k with acceptance
  --draft-compare         also decode without the drafter and print both speeds
  --no-warmup             do not read the weights into memory before the first token
  --no-repack             no second copy of the quantized weights in 16-row groups (made where the AVX2 and
                          AVX-512 kernels read it): less memory, slower quantized matmuls (on AVX2 and AVX-512
                          without VNNI, several times slower)
  --no-memory-check       start even where the weights, KV cache and buffers need more than the available memory
                          (MemAvailable, a cgroup limit, or G4_AVAILABLE_MEMORY=SIZE), which is refused by default
)";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  Require(f.good(), path, "cannot open");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

#if G4_HAVE_VIDEO
VideoOptions VideoOptionsFrom(const g4cli::Args& args) {
  VideoOptions opt;
  Require(!(args.has("--video-frames") && args.has("--video-fps")), "--video-fps", "give --video-frames or --video-fps, not both");
  if (args.has("--video-frames")) opt.frames = static_cast<int>(args.get_int("--video-frames", kDefaultVideoFrames, 1, 1 << 20));
  if (args.has("--video-fps")) opt.fps = args.get_double("--video-fps", 1.0);
  opt.audio = !args.has("--no-video-audio");
  opt.max_seconds = args.get_double("--max-video-seconds", kDefaultMaxVideoSeconds);
  Require(opt.max_seconds > 0, "--max-video-seconds", "must be positive");
  return opt;
}
#endif

// The --image, --audio and --video files as soft tokens (each video: its frames, then its sound as audio items),
// images first, each kind in command-line order.
std::vector<Media> EmbedMedia(const LoadedModel& lm, const g4cli::Args& args) {
  std::vector<Media> out;
  const int budget = static_cast<int>(args.get_int("--image-budget", kDefaultImageBudget, 1, 1 << 20));
  for (const std::string& path : args.all("--image")) out.push_back(lm.EmbedImage(LoadImage(path), budget));
  for (const std::string& path : args.all("--audio"))
    for (Media& m : lm.EmbedAudio(LoadAudio16k(path), args.has("--audio-split") ? LongAudio::kSplit : LongAudio::kError))
      out.push_back(std::move(m));
#if G4_HAVE_VIDEO
  const int frame_budget = static_cast<int>(args.get_int("--video-budget", kDefaultVideoFrameBudget, 1, 1 << 20));
  for (const std::string& path : args.all("--video"))
    for (Part& p : VideoFileParts(lm, path, VideoOptionsFrom(args), frame_budget)) out.push_back(std::move(p.media));
#endif
  return out;
}

// Whether the videos fit the context, from their headers and packet counts, before any frame is decoded.
void CheckVideosFit(const g4cli::Args& args, size_t context) {
  if (!args.has("--video")) return;
#if G4_HAVE_VIDEO
  const VideoOptions opt = VideoOptionsFrom(args);
  const int budget = static_cast<int>(args.get_int("--video-budget", kDefaultVideoFrameBudget, 1, 1 << 20));
  size_t tokens = 0;
  for (const std::string& path : args.all("--video")) tokens += VideoTokenEstimate(ProbeVideoFile(path, opt), opt, budget, path);
  Require(tokens < context, "--video", "the videos take about " + std::to_string(tokens) + " tokens, over the context of " +
                                           std::to_string(context) + " (-c): sample fewer frames (--video-frames, --video-fps), "
                                           "a smaller --video-budget, or --no-video-audio");
#else
  (void)context;
  Fail("--video", "this g4 was built without video support (FFmpeg's libraries were not found when it was configured)");
#endif
}

bool Print(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return true;
}

struct Timing {
  size_t prompt_tokens = 0, generated = 0;
  double prompt_s = 0, gen_s = 0;
  void Add(const Reply& r) {
    prompt_tokens += r.prompt_tokens - r.cached_tokens;
    generated += r.tokens.size();
    prompt_s += r.prompt_seconds;
    gen_s += r.generation_seconds;
    if (r.draft_stats.rounds)
      std::fprintf(stderr, "[drafts accepted per round: %.2f over %zu rounds]\n", r.draft_stats.acceptance_per_round(), r.draft_stats.rounds);
  }
  void Report(const char* what) const {
    std::fprintf(stderr, "[%s: prompt %zu tokens at %.2f tokens/s; generation %zu tokens at %.2f tokens/s]\n", what, prompt_tokens,
                 prompt_tokens / std::max(prompt_s, 1e-9), generated, generated > 1 ? (generated - 1) / std::max(gen_s, 1e-9) : 0.0);
  }
};

int RunRun(std::vector<std::string> argv) {
  const g4cli::Args args(
      argv,
      {"--model", "--prompt", "--file", "--system", "--image", "--image-budget", "--audio", "--mmproj", "--tokenizer",
       "--n-predict", "--ctx-size", "--threads", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
       "--presence-penalty", "--seed", "--stop", "--draft", "--draft-k", "--cache-type", "--cache-type-k", "--cache-type-v", "--tools", "--chat-template",
       "--json-schema", "--grammar", "--video", "--video-frames", "--video-fps", "--video-budget", "--max-video-seconds"},
      {"--help", "--interactive", "--raw", "--audio-split", "--draft-adaptive", "--draft-compare", "--no-warmup",
       "--no-repack", "--think", "--no-video-audio", "--print-prompt", g4cli::kNoMemoryCheck},
      {{"-m", "--model"}, {"-p", "--prompt"}, {"-f", "--file"}, {"-i", "--interactive"}, {"-n", "--n-predict"},
       {"-c", "--ctx-size"}, {"-t", "--threads"}, {"-h", "--help"}, {"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"}});
  if (args.has("--help")) return std::printf("%s", kHelp), 0;
  Require(args.has("--model"), "run", "-m MODEL is required (see --help)");
  Require(args.positional().empty(), args.positional().empty() ? "" : args.positional()[0], "unexpected argument (see --help)");
  Require(!(args.has("--prompt") && args.has("--file")), "--file", "give -p or -f, not both");
  const bool interactive = args.has("--interactive"), raw = args.has("--raw");
  Require(!(interactive && raw), "--raw", "interactive chat needs the chat template");
  const std::string first_prompt = args.has("--file") ? ReadFile(args.get("--file")) : args.get("--prompt");
  Require(interactive || !first_prompt.empty() || args.has("--image") || args.has("--audio") || args.has("--video"), "run",
          "nothing to do: give -p PROMPT, -f FILE or -i");
  CheckImageBudget(static_cast<int>(args.get_int("--image-budget", kDefaultImageBudget, 1, 1 << 20)));

  GenerateParams params;
  params.max_tokens = static_cast<size_t>(args.get_int("--n-predict", 256, 1, 1 << 24));
  params.sampling.temperature = static_cast<float>(args.get_double("--temp", 1.0));
  params.sampling.top_k = static_cast<int32_t>(args.get_int("--top-k", 64, 0, 1 << 30));
  params.sampling.top_p = static_cast<float>(args.get_double("--top-p", 0.95));
  params.sampling.min_p = static_cast<float>(args.get_double("--min-p", 0.0));
  params.sampling.repetition_penalty = static_cast<float>(args.get_double("--repeat-penalty", 1.0));
  params.sampling.presence_penalty = static_cast<float>(args.get_double("--presence-penalty", 0.0));
  params.sampling.seed = static_cast<uint64_t>(args.get_int("--seed", 0, 0, INT64_MAX));
  params.stop_strings = args.all("--stop");
  params.draft = {static_cast<int>(args.get_int("--draft-k", 4, 1, 15)), args.has("--draft-adaptive"), 8};
  params.enable_thinking = args.has("--think");
  Require(!args.has("--draft-compare") || args.has("--draft"), "--draft-compare", "needs --draft");
  SessionOptions so;
  so.context = static_cast<size_t>(args.get_int("--ctx-size", 4096, 16, 1 << 24));
  so.cache_type = KVCacheTypesFromNames(args.get("--cache-type"), args.get("--cache-type-k"), args.get("--cache-type-v"));
  CheckVideosFit(args, so.context);  // before the model loads or a frame is decoded

  const ModelFiles files{args.get("--model"), args.get("--mmproj"), args.get("--draft"), args.get("--tokenizer"),
                         args.has("--no-repack") ? Repack::kNone : Repack::kWhereRead, args.get("--chat-template")};
  g4cli::CheckMemory(args, {"--ctx-size", "--cache-type", "", ""}, [&](const MemoryFlags& f) { return PlanMemory(files, MemoryShape::For(so), f); });

  ThreadPool pool(static_cast<size_t>(args.get_int("--threads", 0, 1, ThreadPool::kMaxThreads)));
  const LoadedModel lm(files, pool);
  if (!args.has("--no-warmup")) {  // with a progress bar on a terminal
    const bool tty = isatty(STDERR_FILENO);
    int shown = -1;
    lm.Prefault([&](uint64_t done, uint64_t total) {
      const int pct = static_cast<int>(100 * done / (total ? total : 1));
      if (tty && pct != shown) std::fprintf(stderr, "\rloading [%-40.*s] %3d%% of %.2f GB", (shown = pct) * 40 / 100, "========================================", pct, total / 1e9);
    });
    if (tty) std::fprintf(stderr, "\n");
  }
  params.sampling.grammar = ConstraintFromFiles(lm, args.get("--json-schema"), args.get("--grammar"));
  const std::vector<Media> media = EmbedMedia(lm, args);
  if (!media.empty()) std::fprintf(stderr, "(%zu media item(s) embedded)\n", media.size());
  const char* label = lm.drafter() ? "with drafter" : "g4";
  const bool print_prompt = args.has("--print-prompt");
  if (raw && print_prompt) return std::printf("%s\n", PromptText(Session::RawPrompt(lm, first_prompt, media), lm.tokenizer()).c_str()), 0;
  if (raw) {  // with --draft-compare, again without the drafter
    for (bool plain : {false, true}) {
      if (plain && !args.has("--draft-compare")) break;
      params.speculative = !plain;
      Session fresh(lm, so);
      Timing t;
      Print(first_prompt);
      t.Add(fresh.Complete(first_prompt, media, params, Print));
      std::printf("\n");
      t.Report(plain ? "without drafter" : label);
    }
    return 0;
  }

  if (!lm.chat_note().empty()) std::fprintf(stderr, "note: %s\n", lm.chat_note().c_str());
  Session session(lm, so);
  Timing timing;
  using Json = nlohmann::ordered_json;
  Json request = {{"tools", args.has("--tools") ? Json::parse(ReadFile(args.get("--tools"))) : Json::array()}, {"messages", Json::array()}};
  Require(request["tools"].is_array(), args.get("--tools"), "is not a JSON array of tool declarations");
  Json& messages = request["messages"];  // (no key is added to request after this)
  if (args.has("--system")) messages.push_back({{"role", "system"}, {"content", args.get("--system")}});
  const DeltaCallback thoughts = [](const MessageDelta& d) {
    if (!d.reasoning_content.empty()) std::fprintf(stderr, "%s", d.reasoning_content.c_str());
    return true;
  };
  std::string user = first_prompt;
  for (bool first_turn = true;; first_turn = false) {
    if (interactive && user.empty()) {
      std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, user) || user.empty()) break;
    }
    Json parts = Json::array();
    if (first_turn)  // the command line's media belong to the first user turn
      for (const Media& e : media)
        parts.push_back({{"type", e->kind == MediaEmbedding::Kind::kImage ? "image" : e->kind == MediaEmbedding::Kind::kVideo ? "video" : "audio"}});
    if (!user.empty()) parts.push_back({{"type", "text"}, {"text", user}});
    messages.push_back({{"role", "user"}, {"content", parts}});
    if (print_prompt)
      return std::printf("%s\n", PromptText(Session::ChatPrompt(lm, request, media, params.enable_thinking), lm.tokenizer()).c_str()), 0;
    for (bool more = true; more;) {  // the answer, and another after each round of tool results
      const Reply reply = session.RespondTo(request, media, params, Print, thoughts);
      std::printf("\n");
      timing.Add(reply);
      for (const std::string& w : reply.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
      messages.push_back(reply.message());
      if (!reply.tool_calls.empty()) std::printf("%s\n", Json{{"tool_calls", reply.tool_calls}}.dump().c_str());
      more = interactive && !reply.tool_calls.empty();
      for (const Json& call : more ? reply.tool_calls : Json::array()) {
        std::fprintf(stderr, "%s result> ", call["function"]["name"].get<std::string>().c_str());
        std::string result;
        if (!std::getline(std::cin, result)) return timing.Report(label), 0;
        messages.push_back({{"role", "tool"}, {"tool_call_id", call["id"]}, {"content", result}});
      }
    }
    user.clear();
    if (!interactive) break;
  }
  timing.Report(label);
  return 0;
}

const g4cli::RegisterCommand kRegister("run", "generate text (chat or raw), with images, audio and MTP drafting", RunRun);

}  // namespace g4cli::cmd_run
