// Where a model keeps its tokenizer, in one place for every caller: a GGUF's tokenizer.ggml.* arrays; a Hugging
// Face checkpoint's tokenizer.json (in the folder, or beside the .safetensors file); an explicit file overrides both.
#pragma once
#include <filesystem>
#include <string>

#include "g4/core/error.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf.hpp"
#include "g4/text/gguf_vocab.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

// The tokenizer.json of a Hugging Face model given as its folder or as one of its files (it may not exist).
inline std::filesystem::path HfTokenizerJson(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(model_path);
  return (fs::is_directory(p, ec) ? p : p.parent_path()) / "tokenizer.json";
}

// A model folder (its tokenizer.json), a .gguf (its vocabulary), or a tokenizer.json itself.
inline Tokenizer LoadTokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path json = HfTokenizerJson(path);
    Require(fs::exists(json, ec), path, "folder has no tokenizer.json");
    return Tokenizer::FromJsonFile(json.string());
  }
  if (fs::path(path).extension() == ".gguf") return TokenizerFromGguf(ReadGgufTokenizer(GgufFile(path)), path);
  return Tokenizer::FromJsonFile(path);
}

// The tokenizer of an opened model; `tokenizer_file`, when given, instead.
inline Tokenizer LoadModelTokenizer(const Checkpoint& ck, const std::string& tokenizer_file = "") {
  if (!tokenizer_file.empty()) return LoadTokenizer(tokenizer_file);
  if (const auto gguf = ck.tokenizer()) return TokenizerFromGguf(*gguf, ck.path());
  return LoadTokenizer(HfTokenizerJson(ck.path()).parent_path().string());
}

}  // namespace g4
