// g4 tokenize: prints the tokens of a text, one "id -> 'text'" line each as llama.cpp's llama-tokenize does, or
// the ids alone, or JSON with the vocabulary pieces.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "command.hpp"
#include "g4/text/load_tokenizer.hpp"

namespace g4cli::cmd_tokenize {

using namespace g4;

const char* kHelp = R"(usage: g4 tokenize (-m MODEL | --tokenizer FILE) [options] TEXT

Prints the token ids of TEXT ("-" reads standard input), one "id -> 'text'" line per token.

  -m, --model MODEL     a model folder with tokenizer.json, or a .gguf file
  --tokenizer FILE      a Hugging Face tokenizer.json
  --ids-only            print only the ids, as [2, 9259, ...]
  --json                print {"ids": [...], "pieces": [...]} with the vocabulary pieces ("▁Hello", "<0x0A>")
  --bos                 start with <bos> (as a model's prompt does)
  --no-special          read control tokens such as <bos> in TEXT as plain text
  -h, --help            this text
)";

// The token's text made visible: quotes and control characters escaped, bytes of an incomplete or invalid UTF-8
// sequence (a byte-fallback piece alone) as \xNN.
std::string Visible(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = utf8::Decode(s, i, &cp);
    const auto b = static_cast<unsigned char>(s[i]);
    if (cp >= 0x110000 || b < 0x20 || b == 0x7F || b == '\'' || b == '\\') {
      char buf[8];
      if (b == '\n')
        out += "\\n";
      else if (b == '\t')
        out += "\\t";
      else if (b == '\r')
        out += "\\r";
      else if (b == '\'' || b == '\\')
        out += {'\\', static_cast<char>(b)};
      else
        std::snprintf(buf, sizeof buf, "\\x%02X", b), out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

int Run(std::vector<std::string> argv) {
  const g4cli::Args args(argv, {"--model", "--tokenizer"}, {"--ids-only", "--json", "--bos", "--no-special", "--help"},
                         {{"-m", "--model"}, {"-h", "--help"}});
  if (args.has("--help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  Require(args.has("--model") != args.has("--tokenizer"), "arguments",
          "give exactly one of -m MODEL and --tokenizer FILE (see --help)");
  Require(args.positional().size() == 1, "arguments",
          "expected one TEXT argument (or - for standard input), got " + std::to_string(args.positional().size()));
  Require(!(args.has("--json") && args.has("--ids-only")), "arguments", "--json and --ids-only exclude each other");

  const Tokenizer tok =
      args.has("--model") ? LoadTokenizer(args.get("--model")) : Tokenizer::FromJsonFile(args.get("--tokenizer"));
  std::string text = args.positional()[0];
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  const std::vector<int32_t> ids =
      tok.Encode(text, {.add_bos = args.has("--bos"), .parse_special = !args.has("--no-special")});

  if (args.has("--json")) {
    nlohmann::json pieces = nlohmann::json::array();
    for (const int32_t id : ids) pieces.push_back(tok.Piece(id));
    const nlohmann::json out = {{"ids", ids}, {"pieces", pieces}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (args.has("--ids-only")) {
    std::string line = "[";
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? ", " : "") + std::to_string(ids[i]);
    std::printf("%s]\n", line.c_str());
  } else {
    for (const int32_t id : ids) std::printf("%6d -> '%s'\n", id, Visible(tok.TokenText(id)).c_str());
  }
  return 0;
}

const g4cli::RegisterCommand reg("tokenize", "print the token ids of a text (llama-tokenize style)", Run);

}  // namespace g4cli::cmd_tokenize
