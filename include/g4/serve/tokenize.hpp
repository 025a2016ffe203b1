// POST /tokenize and /detokenize in llama-server's shapes: {"content", "add_special" (false), "with_pieces"
// (false)} -> {"tokens": [id, ...]} or, with pieces, [{"id", "piece"}] (the piece a string when it is valid UTF-8
// alone, else its bytes as numbers); {"tokens": [id, ...]} -> {"content"}. Text is never parsed for control tokens
// (a client's "<bos>" stays text), as in chat requests.
#pragma once
#include <string>
#include <vector>

#include "g4/serve/openai.hpp"
#include "g4/text/tokenizer.hpp"
#include "g4/text/utf8.hpp"

namespace g4::serve {

inline Json TokenizeJson(const Tokenizer& tok, const Json& body) {
  const std::string content = detail::String(body, "content", "content").value_or("");
  const bool add_special = detail::Bool(body, "add_special").value_or(false);
  const bool with_pieces = detail::Bool(body, "with_pieces").value_or(false);
  const std::vector<int32_t> ids = tok.Encode(content, {.add_bos = add_special, .parse_special = false});
  Json tokens = Json::array();
  for (const int32_t id : ids) {
    if (!with_pieces) {
      tokens.push_back(id);
      continue;
    }
    const int32_t one[] = {id};
    const std::string piece = tok.Decode(one);
    Json p = piece;
    if (!utf8::Valid(piece)) {
      p = Json::array();
      for (const unsigned char c : piece) p.push_back(c);
    }
    tokens.push_back({{"id", id}, {"piece", std::move(p)}});
  }
  return {{"tokens", std::move(tokens)}};
}

inline Json DetokenizeJson(const Tokenizer& tok, const Json& body) {
  const Json* list = detail::Find(body, "tokens");
  if (!list) return {{"content", ""}};
  if (!list->is_array()) Bad("tokens", "tokens must be an array of token ids");
  std::vector<int32_t> ids;
  for (const Json& v : *list) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok.size())
      Bad("tokens", "tokens must hold ids in [0, " + std::to_string(tok.size()) + "), got " + v.dump());
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return {{"content", tok.Decode(ids)}};
}

}  // namespace g4::serve
