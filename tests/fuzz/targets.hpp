// The entry points of the fuzz harnesses, shared with the regression suite (tests/test_fuzz_regressions.cpp) so
// that a saved crashing input replays through exactly the code that found it. Each target takes arbitrary bytes;
// throwing g4::Error is a clean refusal, anything else (another exception, a crash, a sanitizer report) is a bug.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/available_memory.hpp"
#include "g4/core/error.hpp"
#include "g4/grammar/gbnf.hpp"
#include "g4/grammar/json_schema.hpp"
#include "g4/grammar/recognizer.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/hf_config.hpp"
#include "g4/io/json.hpp"
#include "g4/io/safetensors.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/image.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/wav.hpp"
#if G4_HAVE_VIDEO
#include "g4/media/video_ffmpeg.hpp"
#endif
#include "g4/text/chat_template.hpp"
#include "g4/text/jinja/template.hpp"
#include "g4/text/load_tokenizer.hpp"
#include "g4/text/tokenizer.hpp"
#include "g4/text/tool_calls.hpp"
#include "g4/text/tool_request.hpp"

// Where tests/data is when G4_TEST_DATA is unset (the fuzz build passes the source tree's).
#ifndef G4_FUZZ_DEFAULT_DATA
#define G4_FUZZ_DEFAULT_DATA "tests/data"
#endif

namespace g4::fuzz {

using Bytes = std::span<const uint8_t>;

// Inputs that stand for several files (a GGUF and its mmproj, a safetensors index and its shards) are the files
// joined by this line; the seed script writes them that way.
inline constexpr std::string_view kPartSeparator = "\n--g4-fuzz-part--\n";

inline std::vector<std::string_view> SplitParts(Bytes in) {
  const std::string_view s(reinterpret_cast<const char*>(in.data()), in.size());
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t at; (at = s.find(kPartSeparator, start)) != std::string_view::npos; start = at + kPartSeparator.size())
    parts.push_back(s.substr(start, at - start));
  parts.push_back(s.substr(start));
  return parts;
}

// A scratch folder of this process (parallel fuzzers must not share files), emptied for every input.
inline std::filesystem::path FreshScratchDir() {
  static const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("g4-fuzz-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

// Every tensor a reader hands out must be readable end to end; a view past its bytes would be read later by the
// kernels, far from the parser that let it through. (Touching both ends faults on a view outside its mapping, and
// ASan checks the copies AlignedViews makes of misaligned tensors.)
inline void TouchViews(const std::vector<TensorView>& views) {
  for (const TensorView& t : views) {
    if (t.nbytes == 0) continue;
    volatile std::byte first = t.data[0], last = t.data[t.nbytes - 1];
    (void)first;
    (void)last;
  }
}

// The demo model's tokenizer (a real Gemma-style BPE vocabulary), loaded once per process.
inline const Tokenizer& DemoTokenizer() {
  static const Tokenizer tok = [] {
    const char* data = std::getenv("G4_TEST_DATA");
    return Tokenizer::FromJsonFile(std::string(data ? data : G4_FUZZ_DEFAULT_DATA) + "/demo/tokenizer.json");
  }();
  return tok;
}

// A .gguf model (part 0) with an optional mmproj (part 1): the container, then the whole checkpoint binding, the
// tokenizer arrays and the chat template it carries.
inline void Gguf(Bytes in) {
  const auto parts = SplitParts(in);
  const auto dir = FreshScratchDir();
  const std::string model = WriteFile(dir / "model.gguf", parts[0]);
  const std::string mmproj = parts.size() > 1 ? WriteFile(dir / "mmproj.gguf", parts[1]) : "";
  {
    const GgufFile f(model);
    const uint64_t size = std::filesystem::file_size(model);
    for (const GgufTensorInfo& t : f.tensor_infos())
      if (f.data_offset() > size || t.offset > size - f.data_offset() || t.nbytes > size - f.data_offset() - t.offset)
        std::abort();
    TouchViews(f.tensors());
  }
  const Checkpoint ckpt(model, mmproj);
  if (const auto t = ckpt.tokenizer()) {
    const Tokenizer tok = TokenizerFromGguf(*t, model);
    tok.Decode(tok.Encode("Hello, world <|turn>"));
  }
  if (ckpt.gguf()->Has("tokenizer.chat_template"))
    ChatOptionsFromJinja(ckpt.gguf()->GetString("tokenizer.chat_template"), model);
}

// One .safetensors file (a single part), or a folder: part 0 is model.safetensors.index.json and part k the shard
// model-0000k-of-0000n.safetensors.
inline void Safetensors(Bytes in) {
  const auto parts = SplitParts(in);
  const auto dir = FreshScratchDir();
  std::string path;
  if (parts.size() == 1) {
    path = WriteFile(dir / "model.safetensors", parts[0]);
  } else {
    WriteFile(dir / g4::Safetensors::kIndexName, parts[0]);
    const std::string n = std::to_string(parts.size() - 1);
    for (size_t k = 1; k < parts.size(); ++k)
      WriteFile(dir / ("model-0000" + std::to_string(k) + "-of-0000" + n + ".safetensors"), parts[k]);
    path = dir.string();
  }
  const g4::Safetensors st(path);
  TouchViews(st.tensors());
}

inline void HfConfig(Bytes in) {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  ReadHfConfig(ParseJsonText(text, "config.json"), "config.json");
}

// A tokenizer.json from the input; when it loads, it encodes and decodes a fixed text.
inline void TokenizerJson(Bytes in) {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  const Tokenizer tok = Tokenizer::FromJson(ParseJsonText(text, "tokenizer.json"), "tokenizer.json");
  tok.Decode(tok.Encode("Hello <bos> w\xC3\xB6rld \xF0\x9F\x98\x80 \xFF", {.add_bos = true, .parse_special = true}));
}

// Arbitrary bytes through the demo tokenizer: with and without special tokens, and back. Without special
// tokens the text is all the tokens say, so decoding must give it back byte for byte, except that a "▁" of the
// input comes back as the space it stands for (as with Hugging Face's Gemma tokenizer).
inline void TokenizerEncode(Bytes in) {
  const Tokenizer& tok = DemoTokenizer();
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  tok.Decode(tok.Encode(text, {.add_bos = true, .parse_special = true}));
  const std::vector<int32_t> plain = tok.Encode(text, {.add_bos = false, .parse_special = false});
  std::string expected(text);
  for (size_t at; (at = expected.find("\u2581")) != std::string::npos;) expected.replace(at, 3, " ");
  if (tok.Decode(plain) != expected) std::abort();
  // The same bytes as token ids, some of them out of range (a clean g4::Error).
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 4 <= in.size(); i += 4) {
    uint32_t v;
    std::memcpy(&v, in.data() + i, 4);
    ids.push_back(static_cast<int32_t>(v % static_cast<uint32_t>(tok.size() + 8)));
  }
  tok.Decode(ids, (in.empty() ? 0 : in[0]) & 1);
}

inline void Wav(Bytes in) {
  const MonoAudio a = DecodeWav(std::as_bytes(in), "input.wav");
  FrameAudio(Resample(a.samples, a.sample_rate, kAudioSampleRate), LongAudio::kSplit);
}

#if G4_HAVE_VIDEO
// A video file through the demuxer, the decoders and the RGB and audio conversions (FFmpeg's libraries): 4 sampled
// frames, or 2 per second when the last byte is odd, and the audio track, at a 30 s limit.
inline void Video(Bytes in) {
  VideoOptions opt;
  if (!in.empty() && in.back() % 2) opt.fps = 2;
  else opt.frames = 4;
  opt.max_seconds = 30;
  DecodeVideo(std::as_bytes(in), "input video", opt, [](size_t, double, const RgbImage&) {});
}
#endif

// A decoded image through the whole preprocessing, at the budget the input's last byte picks.
inline void Image(Bytes in) {
  const RgbImage img = DecodeImage(std::as_bytes(in), "input image");
  const int budget = kImageBudgets[in.empty() ? 0 : in.back() % std::size(kImageBudgets)];
  PreprocessImage(img, budget, in.size() % 2 ? PatchOrder::kHWC : PatchOrder::kCHW);
}

// Messages from the input: each NUL-separated record is one message; its first byte picks the role and the
// kind of each part, the rest (split at 0x01) is the parts' text. The first byte of the input picks the options.
inline void ChatTemplate(Bytes in) {
  static const char* const kRoles[] = {"system", "developer", "user", "assistant", "model", "tool"};
  const std::string_view s(reinterpret_cast<const char*>(in.data()), in.size());
  const uint8_t flags = in.empty() ? 0 : in[0];
  const ChatOptions opt{.add_generation_prompt = (flags & 1) != 0, .enable_thinking = (flags & 2) != 0,
                        .close_empty_thought = (flags & 4) != 0};
  std::vector<ChatMessage> messages;
  for (size_t start = in.empty() ? 0 : 1; start < s.size();) {
    const size_t end = std::min(s.find('\0', start), s.size());
    const std::string_view rec = s.substr(start, end - start);
    start = end + 1;
    if (rec.empty()) continue;
    const uint8_t head = static_cast<uint8_t>(rec[0]);
    ChatMessage m{kRoles[head % std::size(kRoles)], {}};
    std::string_view rest = rec.substr(1);
    for (int k = 0;; ++k) {
      const size_t cut = rest.find('\x01');
      const int kind = (head >> (3 + (k % 5))) & 3;
      m.parts.push_back(kind == 1 ? ChatPart::Image() : kind == 2 ? ChatPart::Audio()
                                                      : ChatPart::Text(std::string(rest.substr(0, cut))));
      if (cut == std::string_view::npos) break;
      rest = rest.substr(cut + 1);
    }
    messages.push_back(std::move(m));
  }
  RenderChat(messages, opt);
  TokenizeChat(DemoTokenizer(), messages, opt);
  ChatOptionsFromJinja(s, "chat template");
}

// A Jinja template (part 0) rendered with a chat request (part 1, JSON; a small conversation when absent or not
// JSON) under limits that keep each input fast; the output then goes through the tool-call parser in two pieces.
inline void Jinja(Bytes in) {
  const auto parts = SplitParts(in);
  nlohmann::ordered_json request;
  if (parts.size() > 1) request = nlohmann::ordered_json::parse(parts[1], nullptr, /*allow_exceptions=*/false);
  if (!request.is_object())
    request = {{"messages", {{{"role", "system"}, {"content", " Be brief. "}}, {{"role", "user"}, {"content", "Hi"}}}}};
  const jinja::Limits limits{.max_output_bytes = 1 << 20, .max_loop_iterations = 100000, .max_recursion = 500};
  const std::string out =
      jinja::RenderChatTemplate(parts[0], AdaptRequestToTemplate(request, parts[0]), limits);
  ToolCallParser parser;
  parser.Feed(std::string_view(out).substr(0, out.size() / 2));
  parser.Feed(std::string_view(out).substr(out.size() / 2));
  parser.Finish();
}

// Structured output's compilers: input that parses as JSON is a JSON Schema (compiled to grammar text, then
// parsed), anything else grammar text; the grammar then runs over the input's own bytes, as a model's output would.
inline void JsonSchema(Bytes in) {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  const auto schema = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  Grammar g = schema.is_discarded() ? ParseGrammar(text) : JsonSchemaGrammar(schema);
  GrammarRecognizer r(std::make_shared<const Grammar>(std::move(g)));
  int32_t st = r.Start();
  for (size_t i = 0; i < in.size() && i < 4096 && st != GrammarRecognizer::kDead; ++i) {
    const int32_t next = r.Next(st, in[i]);
    if (next != GrammarRecognizer::kDead && !r.Possible(st).Has(in[i])) std::abort();  // taken, so it was possible
    st = next;
  }
}

// The texts MachineAvailableMemory reads (/proc/meminfo, /proc/self/cgroup, memory.max / memory.current and
// memory.stat), each parser on the whole input; a parsed byte count must print back to the digits it came from.
inline void AvailableMemoryTexts(Bytes in) {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  (void)ParseMemAvailable(text);
  (void)ParseCgroupV2Path(text);
  (void)ParseMemoryStat(text, "inactive_file");
  if (const std::optional<uint64_t> n = ParseByteCount(text); n && !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) {
    const std::string_view digits = text.substr(std::min(text.find_first_not_of('0'), text.size() - 1));
    if (std::to_string(*n) != digits) std::abort();
  }
}

}  // namespace g4::fuzz
