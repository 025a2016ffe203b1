// Finds a model's tokenizer wherever the model keeps it: a folder with tokenizer.json (Hugging Face layout), a
// tokenizer.json itself, or a .gguf whose tokenizer.ggml.* arrays hold the vocabulary.
#pragma once
#include <filesystem>
#include <string>

#include "g4/core/error.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/gguf_tokenizer.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

// A GGUF vocabulary of llama.cpp's "gemma4" model (BPE over "▁"-spelled text, no GPT-2 byte remapping). Other
// tokenizer models would need other pre-processing, so they are refused rather than mis-tokenized.
inline Tokenizer TokenizerFromGguf(const GgufTokenizer& g, const std::string& where) {
  Require(g.model == "gemma4", where,
          "tokenizer.ggml.model '" + g.model + "' is not supported (only gemma4's byte-pair encoding)");
  Require(!g.add_space_prefix, where, "tokenizer.ggml.add_space_prefix is set; Gemma 4 adds no prefix space");
  SpecialIds ids;
  ids.bos = g.bos;
  ids.eos = g.eos;
  ids.unk = g.unk;
  ids.pad = g.pad;
  return Tokenizer::FromVocab(g.tokens, g.scores, g.token_type, g.merges, ids, where);
}

inline Tokenizer LoadTokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path json = fs::path(path) / "tokenizer.json";
    Require(fs::exists(json, ec), path, "folder has no tokenizer.json");
    return Tokenizer::FromJsonFile(json.string());
  }
  if (fs::path(path).extension() == ".gguf") {
    const GgufFile f(path);
    return TokenizerFromGguf(ReadGgufTokenizer(f), path);
  }
  return Tokenizer::FromJsonFile(path);
}

}  // namespace g4
