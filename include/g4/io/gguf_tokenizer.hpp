// The tokenizer a GGUF carries (tokenizer.ggml.*), checked for consistent lengths, for the text/ tokenizer and
// for `g4 quantize` to copy into the files it writes.
#pragma once
#include <string>
#include <vector>

#include "g4/io/gguf.hpp"
#include "g4/io/gguf_writer.hpp"

namespace g4 {

struct GgufTokenizer {
  std::string model;                 // tokenizer.ggml.model ("gemma4": BPE without byte remapping)
  std::string pre;                   // tokenizer.ggml.pre, if present
  std::vector<std::string> tokens;   // [n_vocab]
  std::vector<float> scores;         // [n_vocab] or empty
  std::vector<int32_t> token_type;   // [n_vocab] or empty (1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte)
  std::vector<std::string> merges;   // "a b" pairs, highest priority first
  int bos = -1, eos = -1, eot = -1, unk = -1, pad = -1;
  bool add_bos = false, add_space_prefix = false;
  std::string chat_template;         // tokenizer.chat_template, if present
};

inline GgufTokenizer ReadGgufTokenizer(const GgufFile& f) {
  GgufTokenizer t;
  t.model = f.GetString("tokenizer.ggml.model");
  if (f.Has("tokenizer.ggml.pre")) t.pre = f.GetString("tokenizer.ggml.pre");
  t.tokens = f.GetStringArray("tokenizer.ggml.tokens");
  const size_t n = t.tokens.size();
  if (f.Has("tokenizer.ggml.scores")) {
    t.scores = f.GetF32Array("tokenizer.ggml.scores");
    Require(t.scores.size() == n, f.path() + ": key 'tokenizer.ggml.scores'", std::to_string(t.scores.size()) + " scores for " + std::to_string(n) + " tokens");
  }
  if (f.Has("tokenizer.ggml.token_type")) {
    for (int64_t v : f.GetIntArray("tokenizer.ggml.token_type")) t.token_type.push_back(static_cast<int32_t>(v));
    Require(t.token_type.size() == n, f.path() + ": key 'tokenizer.ggml.token_type'",
            std::to_string(t.token_type.size()) + " types for " + std::to_string(n) + " tokens");
  }
  if (f.Has("tokenizer.ggml.merges")) t.merges = f.GetStringArray("tokenizer.ggml.merges");
  auto id = [&](const char* key, int* out) {
    if (f.Has(key)) *out = static_cast<int>(f.GetInt(key, 0, static_cast<int64_t>(n) - 1));
  };
  id("tokenizer.ggml.bos_token_id", &t.bos);
  id("tokenizer.ggml.eos_token_id", &t.eos);
  id("tokenizer.ggml.eot_token_id", &t.eot);
  id("tokenizer.ggml.unknown_token_id", &t.unk);
  id("tokenizer.ggml.padding_token_id", &t.pad);
  if (f.Has("tokenizer.ggml.add_bos_token")) t.add_bos = f.GetBool("tokenizer.ggml.add_bos_token");
  if (f.Has("tokenizer.ggml.add_space_prefix")) t.add_space_prefix = f.GetBool("tokenizer.ggml.add_space_prefix");
  if (f.Has("tokenizer.chat_template")) t.chat_template = f.GetString("tokenizer.chat_template");
  return t;
}

// The inverse of ReadGgufTokenizer: the keys llama.cpp reads (ids of -1 and empty arrays are left out).
inline void SetGgufTokenizer(GgufWriter& w, const GgufTokenizer& t) {
  w.Set("tokenizer.ggml.model", GgufValue::String(t.model));
  if (!t.pre.empty()) w.Set("tokenizer.ggml.pre", GgufValue::String(t.pre));
  w.Set("tokenizer.ggml.tokens", GgufValue::StringArray(t.tokens));
  if (!t.scores.empty()) w.Set("tokenizer.ggml.scores", GgufValue::Array(GgufType::F32, t.scores));
  if (!t.token_type.empty()) w.Set("tokenizer.ggml.token_type", GgufValue::Array(GgufType::I32, t.token_type));
  if (!t.merges.empty()) w.Set("tokenizer.ggml.merges", GgufValue::StringArray(t.merges));
  const std::pair<const char*, int> ids[] = {{"tokenizer.ggml.bos_token_id", t.bos}, {"tokenizer.ggml.eos_token_id", t.eos},
                                             {"tokenizer.ggml.eot_token_id", t.eot}, {"tokenizer.ggml.unknown_token_id", t.unk},
                                             {"tokenizer.ggml.padding_token_id", t.pad}};
  for (const auto& [key, id] : ids)
    if (id >= 0) w.Set(key, GgufValue::U32(static_cast<uint32_t>(id)));
  w.Set("tokenizer.ggml.add_bos_token", GgufValue::Bool(t.add_bos));
  w.Set("tokenizer.ggml.add_space_prefix", GgufValue::Bool(t.add_space_prefix));
  if (!t.chat_template.empty()) w.Set("tokenizer.chat_template", GgufValue::String(t.chat_template));
}

}  // namespace g4
