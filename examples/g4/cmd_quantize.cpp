// g4 quantize IN OUT --type T: writes a checkpoint (safetensors or GGUF) as a llama.cpp-layout GGUF in one
// weight type or the Q4_K_M mix; with --mmproj-out, also the vision/audio embedders as a clip mmproj GGUF.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf_export.hpp"
#include "g4/text/gguf_vocab.hpp"
#include "g4/text/load_tokenizer.hpp"
#include "g4/text/model_chat_template.hpp"

namespace g4cli::cmd_quantize {

using namespace g4;

const char* kHelp = R"(usage: g4 quantize IN OUT --type TYPE [options]

IN is a safetensors checkpoint (folder, or .safetensors next to config.json) or a .gguf; OUT is the GGUF to
write, with llama.cpp's tensor names and gemma4 / gemma4-assistant metadata.

TYPE: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, or Q4_K_M (the types llama-quantize chooses: Q4_K matrices; Q6_K
for the tied embedding/output, for ffn_down on llama.cpp's "more bits" layers, and for attn_v on the "more bits"
ones of the layers that have attn_v). Norms, biases and 1-D tensors stay F32. A matrix whose rows do not fill
whole blocks of TYPE falls back to Q8_0 or BF16; each fallback is printed.

options:
  --mmproj FILE       the input's vision/audio embedders (GGUF mmproj), when IN is a GGUF
  --mmproj-out FILE   also write the vision/audio embedders as a clip mmproj GGUF (TYPE applies to the projections)
  --tokenizer FILE    tokenizer.json to embed (default: IN's folder's tokenizer.json, with chat_template.jinja)
  -t, --threads N     threads for quantizing (default: all)
)";

int RunQuantize(std::vector<std::string> argv) {
  for (const std::string& a : argv)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    }
  const g4cli::Args args(argv, {"--type", "--mmproj", "--mmproj-out", "--threads", "--tokenizer"}, {}, {{"-t", "--threads"}});
  if (args.positional().size() != 2 || !args.has("--type")) {
    std::fputs(kHelp, stderr);
    return 2;
  }
  const auto scheme = ParseQuantScheme(args.get("--type"));
  Require(scheme.has_value(), "--type", "unknown type '" + args.get("--type") + "' (see --help)");
  const std::string in = args.positional()[0], out = args.positional()[1];
  const Checkpoint ck(in, args.get("--mmproj"));
  const auto log = [](const std::string& m) { std::printf("  %s\n", m.c_str()); };
  std::printf("writing %s (%s, %s) from %s\n", out.c_str(), ck.config().assistant ? "gemma4-assistant" : "gemma4",
              scheme->name().c_str(), in.c_str());
  ThreadPool pool(static_cast<size_t>(args.get_int("--threads", 0, 0, ThreadPool::kMaxThreads)));
  // A safetensors checkpoint's vocabulary lives in its tokenizer.json, its chat template beside that; GGUF sources
  // carry their own.
  std::optional<GgufTokenizer> tokenizer;
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string tok_json = args.get("--tokenizer", ck.is_gguf() ? "" : HfTokenizerJson(in).string());
  if (!tok_json.empty() && (args.has("--tokenizer") || fs::exists(tok_json, ec))) {
    tokenizer = GgufTokenizerFromHf(tok_json, ModelChatTemplate(fs::absolute(tok_json).parent_path().string()));
    std::printf("  tokenizer from %s (%zu tokens, %zu merges)\n", tok_json.c_str(), tokenizer->tokens.size(), tokenizer->merges.size());
  }
  ExportModelGguf(ck, out, *scheme, pool, log, tokenizer ? &*tokenizer : nullptr);
  if (args.has("--mmproj-out")) {
    std::printf("writing %s (clip mmproj)\n", args.get("--mmproj-out").c_str());
    ExportMmprojGguf(ck, args.get("--mmproj-out"), *scheme, pool, log);
  }
  return 0;
}

const g4cli::RegisterCommand reg("quantize", "write a checkpoint as a llama.cpp-layout GGUF (F32 ... Q4_K_M)", RunQuantize);

}  // namespace g4cli::cmd_quantize
