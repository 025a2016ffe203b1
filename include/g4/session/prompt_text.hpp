// A prompt as a person reads it (g4 run --print-prompt): text and control tokens decoded, and each run of soft
// tokens collapsed as "[70 x <|video|>]" (its count and placeholder), so that a user sees what the model gets.
#pragma once
#include <string>
#include <vector>

#include "g4/model/prompt.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

inline std::string PromptText(const Prompt& prompt, const Tokenizer& tok) {
  const std::vector<int32_t>& ids = prompt.tokens();
  const std::vector<int32_t>& blocks = prompt.block_ids();
  const std::vector<int8_t> types = prompt.token_types();
  std::string out;
  std::vector<int32_t> text;
  for (size_t i = 0; i < ids.size();) {
    if (types[i] == 0) {
      text.push_back(ids[i++]);
      continue;
    }
    out += tok.Decode(text);
    text.clear();
    size_t j = i;
    while (j < ids.size() && types[j] == types[i] && blocks[j] == blocks[i]) ++j;
    out += "[" + std::to_string(j - i) + " x " + std::string(tok.Piece(ids[i])) + "]";
    i = j;
  }
  return out + tok.Decode(text);
}

}  // namespace g4
