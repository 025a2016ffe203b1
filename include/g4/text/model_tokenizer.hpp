// The tokenizer that belongs to an opened model: the vocabulary a GGUF carries (tokenizer.ggml.*), or the
// tokenizer.json beside a Hugging Face checkpoint; an explicit tokenizer file overrides both.
#pragma once
#include <filesystem>
#include <string>

#include "g4/io/checkpoint.hpp"
#include "g4/text/load_tokenizer.hpp"

namespace g4 {

inline Tokenizer LoadModelTokenizer(const Checkpoint& ck, const std::string& tokenizer_file = "") {
  namespace fs = std::filesystem;
  if (!tokenizer_file.empty()) return LoadTokenizer(tokenizer_file);
  if (const auto gguf = ck.tokenizer()) return TokenizerFromGguf(*gguf, ck.path());
  const fs::path path(ck.path());
  return LoadTokenizer(fs::is_directory(path) ? path.string() : path.parent_path().string());
}

}  // namespace g4
