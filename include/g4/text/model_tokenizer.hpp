// The tokenizer that belongs to a model: tokenizer.json beside a Hugging Face checkpoint, or the vocabulary a GGUF
// carries (tokenizer.ggml.*), or an explicit tokenizer.json that overrides both.
#pragma once
#include <filesystem>
#include <string>

#include "g4/io/checkpoint.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

inline Tokenizer LoadModelTokenizer(const Checkpoint& ck, const std::string& tokenizer_json = "") {
  namespace fs = std::filesystem;
  if (!tokenizer_json.empty()) return Tokenizer::FromJsonFile(tokenizer_json);
  if (const auto gguf = ck.tokenizer()) {
    return Tokenizer::FromVocab(gguf->tokens, gguf->scores, gguf->token_type, gguf->merges,
                                SpecialIds{gguf->bos, gguf->eos, gguf->unk, gguf->pad}, ck.path());
  }
  const fs::path dir = fs::is_directory(ck.path()) ? fs::path(ck.path()) : fs::path(ck.path()).parent_path();
  const fs::path json = dir / "tokenizer.json";
  Require(fs::exists(json), ck.path(), "has no tokenizer (no tokenizer.json beside it, no tokenizer.ggml.* keys); pass one");
  return Tokenizer::FromJsonFile(json.string());
}

}  // namespace g4
