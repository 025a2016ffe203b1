// A Hugging Face tokenizer.json as the tokenizer.ggml.* arrays llama.cpp's converter writes for Gemma 4
// (model "gemma4": BPE over "▁"-spelled text, ids and merges unchanged), so `g4 quantize` of a safetensors
// checkpoint yields a GGUF that carries its vocabulary. The vocabulary and token kinds come from text/'s own
// tokenizer.json loader (the one the runtime uses); only the merge list, which that loader does not expose as text,
// is read here.
#pragma once
#include <filesystem>
#include <string>

#include "g4/io/gguf_tokenizer.hpp"
#include "g4/io/json.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

inline GgufTokenizer GgufTokenizerFromHf(const std::string& tokenizer_json, const std::string& chat_template_path = "") {
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
  std::error_code ec;
  if (!chat_template_path.empty() && std::filesystem::exists(chat_template_path, ec)) {
    const MappedFile f(chat_template_path);
    g.chat_template.assign(reinterpret_cast<const char*>(f.bytes().data()), f.size());
  }
  return g;
}

}  // namespace g4
