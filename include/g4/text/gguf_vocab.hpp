// A tokenizer as the tokenizer.ggml.* arrays of a GGUF, both ways, for llama.cpp's "gemma4" model (BPE over
// "▁"-spelled text, ids and merges unchanged, no GPT-2 byte remapping): reading a GGUF's vocabulary, and writing a
// Hugging Face tokenizer.json into the GGUF `g4 quantize` makes of a safetensors checkpoint.
#pragma once
#include <optional>
#include <string>

#include "g4/core/error.hpp"
#include "g4/io/gguf_tokenizer.hpp"
#include "g4/io/json.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

// Other tokenizer models would need other pre-processing, so they are refused rather than mis-tokenized.
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

// The vocabulary and token kinds come from the runtime's own tokenizer.json loader; only the merge list, which that
// loader does not expose as text, is read here.
inline GgufTokenizer GgufTokenizerFromHf(const std::string& tokenizer_json,
                                         const std::optional<std::string>& chat_template = std::nullopt) {
  const Tokenizer tok = Tokenizer::FromJsonFile(tokenizer_json);
  GgufTokenizer g;
  g.model = "gemma4";
  for (int32_t id = 0; id < tok.size(); ++id) {
    g.tokens.emplace_back(tok.Piece(id));
    g.token_type.push_back(static_cast<int32_t>(tok.Kind(id)));
    const std::string& p = g.tokens.back();
    // llama.cpp types <0xXX> pieces BYTE; tokenizer.json lists them as ordinary vocabulary.
    if (p.size() == 6 && p.starts_with("<0x") && p.back() == '>' && tok.Kind(id) == TokenKind::kNormal)
      g.token_type.back() = static_cast<int32_t>(TokenKind::kByte);
  }
  g.scores.assign(g.tokens.size(), 0.0f);  // BPE ranks merges by order; llama.cpp ignores scores for it
  const nlohmann::json j = ReadJsonFile(tokenizer_json);
  for (const nlohmann::json& m : j["model"]["merges"])  // validated by Tokenizer::FromJsonFile above
    g.merges.push_back(m.is_array() ? m[0].get<std::string>() + " " + m[1].get<std::string>() : m.get<std::string>());
  const SpecialIds& s = tok.special_ids();
  g.bos = s.bos;
  g.eos = s.eos;
  g.unk = s.unk;
  g.pad = s.pad;
  g.add_bos = true;
  g.add_space_prefix = false;
  if (chat_template) g.chat_template = *chat_template;
  return g;
}

}  // namespace g4
