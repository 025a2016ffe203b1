// Gemma's tokenizer: a SentencePiece-derived byte-pair encoding with spaces spelled U+2581 ("▁"), no prefix space,
// byte-fallback pieces <0xXX> for characters outside the vocabulary, and added tokens (<bos>, <|turn>, "\n\n", ...)
// matched whole before BPE. Loaded from a Hugging Face tokenizer.json or from a GGUF's tokenizer.ggml.* arrays;
// both give the ids Hugging Face tokenizers gives.
//
// Encode pipeline: added tokens split the raw text -> spaces become "▁" -> the text is cut into chunks at character
// pairs that no merge result contains (so no merge could ever join them and BPE per chunk equals BPE of the whole)
// -> each short chunk is merged once and cached (repeated words cost one hash lookup).
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/text/added_tokens.hpp"
#include "g4/text/bpe.hpp"
#include "g4/text/utf8.hpp"

namespace g4 {

// Ids of the tokens the runtime needs by role; -1 when the vocabulary has none.
struct SpecialIds {
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  int32_t pad = -1;
};

// What a token is, in ggml's token_type numbering (tokenizer.ggml.token_type).
enum class TokenKind : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

class Tokenizer {
 public:
  // From GGUF metadata: tokenizer.ggml.tokens / scores / token_type / merges ("left right"). token_types may be
  // empty (all normal). Scores are checked for length only: BPE ranks merges by their order, not by score.
  // Control (3) and unknown (2) tokens are matched whole only when Encode allows special tokens; user-defined (4)
  // ones always, as llama.cpp does.
  static Tokenizer FromVocab(std::vector<std::string> tokens, std::vector<float> scores,
                             std::vector<int32_t> token_types, std::vector<std::string> merges, SpecialIds special,
                             const std::string& where = "GGUF tokenizer");

  // From a Hugging Face tokenizer.json (model type BPE, Gemma's normalizer). Every error names the file.
  static Tokenizer FromJsonFile(const std::string& path);
  static Tokenizer FromJson(const nlohmann::json& j, const std::string& where);

  struct EncodeOptions {
    bool add_bos = false;
    bool parse_special = true;  // match control tokens such as <bos> in the text; false for untrusted text
  };
  std::vector<int32_t> Encode(std::string_view text, EncodeOptions options) const;
  std::vector<int32_t> Encode(std::string_view text) const { return Encode(text, EncodeOptions{}); }

  // Bytes of the tokens: "▁" -> " ", <0xXX> -> that byte (so a multi-byte character may span tokens). Control
  // tokens render as their text unless skip_control.
  std::string Decode(std::span<const int32_t> ids, bool skip_control = false) const;
  std::string_view TokenText(int32_t id) const { return text_[Checked(id)]; }
  std::string_view Piece(int32_t id) const { return pieces_[Checked(id)]; }
  TokenKind Kind(int32_t id) const { return kinds_[Checked(id)]; }
  bool IsControl(int32_t id) const { return Kind(id) == TokenKind::kControl || Kind(id) == TokenKind::kUnknown; }
  std::optional<int32_t> Find(std::string_view piece) const {
    const auto it = piece_ids_.find(std::string(piece));
    return it == piece_ids_.end() ? std::nullopt : std::optional<int32_t>(it->second);
  }

  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  size_t merge_count() const { return merges_.size(); }
  const SpecialIds& special_ids() const { return special_; }
  const std::string& where() const { return where_; }

 private:
  struct Added {
    std::string text;
    int32_t id;
    bool special;     // matched only with parse_special
    bool normalized;  // matched in the normalized text (spaces already "▁")
  };
  // What both loaders hand to Build.
  struct Spec {
    std::vector<std::string> pieces;  // by id
    std::vector<TokenKind> kinds;     // by id
    std::vector<Added> added;
    std::vector<std::pair<std::string, std::string>> merges;  // by rank
    bool spaces_to_metaspace = true;
    bool byte_fallback = true;
    bool fuse_unk = true;
    SpecialIds special;
  };
  struct Part {
    int32_t id;         // an added token, or -1 for the normalized text range below
    size_t begin, end;  // in the normalized buffer
  };
  // Chunks already merged, kept across calls since words recur ("▁the"). Short chunks only, and emptied when
  // full, so it stays under a few MB; the mutex makes Encode safe to call from several threads.
  struct ChunkCache {
    static constexpr size_t kMaxChunkBytes = 48, kMaxEntries = size_t{1} << 16;
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> ids;
  };

  static Tokenizer Build(Spec spec, const std::string& where);
  size_t Checked(int32_t id) const {
    if (id < 0 || id >= size())
      Fail(where_, "token id " + std::to_string(id) + " out of range [0, " + std::to_string(size()) + ")");
    return static_cast<size_t>(id);
  }
  static uint64_t PairKey(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }
  void Normalize(std::string_view raw, std::string& out) const {
    for (const char c : raw) {
      if (c == ' ' && spaces_to_metaspace_)
        out += "\u2581";
      else
        out += c;
    }
  }
  void AppendNormalized(std::string_view raw, bool parse_special, std::string& norm, std::vector<Part>& parts) const;
  void EncodeText(std::string_view s, std::vector<int32_t>& out, std::vector<int32_t>& scratch) const;
  void EncodeChunk(std::string_view chunk, std::vector<int32_t>& symbols) const;

  std::string where_;
  std::vector<std::string> pieces_;  // by id, as in the vocabulary
  std::vector<std::string> text_;    // by id, the bytes the token decodes to
  std::vector<TokenKind> kinds_;
  std::unordered_map<std::string, int32_t> piece_ids_;
  std::unordered_map<uint32_t, int32_t> char_ids_;  // code point -> id of its one-character piece
  int32_t byte_ids_[256];                           // <0xXX> piece ids, -1 where missing
  BpeMerges merges_;
  std::unordered_set<uint64_t> joinable_;  // code point pairs adjacent inside some merge result
  bool split_chunks_ = true;               // false: merges touch byte pieces or unknowns fuse, so never cut
  AddedTokenMatcher raw_added_, normalized_added_;
  std::unique_ptr<ChunkCache> cache_ = std::make_unique<ChunkCache>();
  bool spaces_to_metaspace_ = true, byte_fallback_ = true, fuse_unk_ = true;
  SpecialIds special_;
};

// ---------------------------------------------------------------------------------------------------------------
// Loading

inline Tokenizer Tokenizer::FromVocab(std::vector<std::string> tokens, std::vector<float> scores,
                                      std::vector<int32_t> token_types, std::vector<std::string> merges,
                                      SpecialIds special, const std::string& where) {
  Require(!tokens.empty(), where, "empty token list");
  Require(scores.empty() || scores.size() == tokens.size(), where,
          "scores has " + std::to_string(scores.size()) + " entries for " + std::to_string(tokens.size()) + " tokens");
  Require(token_types.empty() || token_types.size() == tokens.size(), where,
          "token_type has " + std::to_string(token_types.size()) + " entries for " + std::to_string(tokens.size()) +
              " tokens");
  Spec spec;
  spec.kinds.assign(tokens.size(), TokenKind::kNormal);
  for (size_t i = 0; i < token_types.size(); ++i) {
    const int32_t t = token_types[i];
    if (t < 1 || t > 6) Fail(where, "token " + std::to_string(i) + " has unknown token type " + std::to_string(t));
    spec.kinds[i] = static_cast<TokenKind>(t);
    const auto id = static_cast<int32_t>(i);
    if (t == 2 || t == 3) spec.added.push_back({tokens[i], id, true, false});
    if (t == 4) spec.added.push_back({tokens[i], id, false, false});
  }
  spec.merges.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    // Pieces never hold an ASCII space (it is "▁"), but a piece may start with one in foreign vocabularies: look
    // for the separator from the second byte on, as llama.cpp does.
    const std::string& m = merges[r];
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos) Fail(where, "merge " + std::to_string(r) + " '" + m + "' is not 'left right'");
    spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  spec.pieces = std::move(tokens);
  spec.special = special;
  return Build(std::move(spec), where);
}

// Parsed without io/json.hpp's duplicate-key check, which doubles the parse time of a 33 MB file; a piece listed
// twice in the vocabulary still fails below, as the id it hid is left without a piece.
inline Tokenizer Tokenizer::FromJsonFile(const std::string& path) {
  const MappedFile f(path);
  const auto* text = reinterpret_cast<const char*>(f.bytes().data());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, text + f.size());
  } catch (const nlohmann::json::exception& e) {
    Fail(path, std::string("invalid JSON: ") + e.what());
  }
  return FromJson(j, path);
}

inline Tokenizer Tokenizer::FromJson(const nlohmann::json& j, const std::string& where) {
  using json = nlohmann::json;
  try {
    Require(j.is_object() && j.contains("model") && j["model"].is_object(), where, "no \"model\" object");
    const json& model = j["model"];
    const std::string type = model.value("type", std::string("BPE"));
    Require(type == "BPE", where, "unsupported tokenizer model type '" + type + "' (only BPE)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      Require(!model.contains(key) || model[key].is_null() || model[key] == "", where,
              std::string("unsupported BPE option ") + key);
    Require(!model.value("ignore_merges", false), where, "unsupported BPE option ignore_merges");
    Require(model.contains("vocab") && model["vocab"].is_object(), where, "model has no \"vocab\" object");

    Spec spec;
    spec.byte_fallback = model.value("byte_fallback", false);
    spec.fuse_unk = model.value("fuse_unk", false);

    // Spaces become "▁" by Gemma's normalizer Replace(" " -> "▁") (alone or as a one-step Sequence), or by a
    // Metaspace pre-tokenizer that neither prepends "▁" nor splits. A Split on " " after that normalizer is a no-op
    // (tokenizers splits the normalized text, which has no spaces left), so it is accepted as one. Anything else
    // would tokenize differently and is refused.
    const json* norm = j.contains("normalizer") && !j["normalizer"].is_null() ? &j["normalizer"] : nullptr;
    if (norm && norm->value("type", "") == "Sequence" && norm->at("normalizers").size() == 1)
      norm = &norm->at("normalizers").at(0);
    bool replace_space = norm && norm->value("type", "") == "Replace" && norm->contains("pattern") &&
                         norm->at("pattern").value("String", "") == " " && norm->value("content", "") == "\u2581";
    if (norm && !replace_space) Fail(where, "unsupported normalizer " + norm->dump().substr(0, 200));
    const json* pre = j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null() ? &j["pre_tokenizer"] : nullptr;
    bool pre_ok = pre == nullptr;
    if (pre && pre->value("type", "") == "Split")
      pre_ok = replace_space && pre->contains("pattern") && pre->at("pattern").value("String", "") == " ";
    if (pre && pre->value("type", "") == "Metaspace") {
      const std::string scheme = pre->contains("prepend_scheme")        ? pre->at("prepend_scheme").get<std::string>()
                                 : pre->value("add_prefix_space", true) ? "always"
                                                                        : "never";
      pre_ok = pre->value("replacement", "") == "\u2581" && scheme == "never" && !pre->value("split", true);
      replace_space = true;
    }
    if (!pre_ok) Fail(where, "unsupported pre_tokenizer " + pre->dump().substr(0, 200));
    spec.spaces_to_metaspace = replace_space;

    int32_t max_id = -1;
    for (const auto& [piece, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t(1) << 30))
        Fail(where, "vocab entry '" + piece + "' has a bad id " + id.dump());
      max_id = std::max(max_id, id.get<int32_t>());
    }
    std::vector<Added> added;
    if (j.contains("added_tokens")) {
      Require(j["added_tokens"].is_array(), where, "\"added_tokens\" is not an array");
      for (const json& a : j["added_tokens"]) {
        if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
            !a["content"].is_string())
          Fail(where, "added token without integer id and string content: " + a.dump().substr(0, 200));
        const int64_t id = a["id"].get<int64_t>();
        if (id < 0 || id >= (int64_t(1) << 30)) Fail(where, "added token has a bad id " + std::to_string(id));
        for (const char* key : {"lstrip", "rstrip", "single_word"})
          if (a.value(key, false)) Fail(where, std::string("unsupported added-token option ") + key);
        added.push_back({a["content"].get<std::string>(), static_cast<int32_t>(id), a.value("special", false),
                         a.value("normalized", false)});
        max_id = std::max(max_id, static_cast<int32_t>(id));
      }
    }
    spec.pieces.resize(static_cast<size_t>(max_id) + 1);
    spec.kinds.assign(spec.pieces.size(), TokenKind::kUnused);
    for (const auto& [piece, id] : model["vocab"].items()) {
      spec.pieces[id.get<size_t>()] = piece;
      spec.kinds[id.get<size_t>()] = TokenKind::kNormal;
    }
    for (const Added& a : added) {
      const auto i = static_cast<size_t>(a.id);
      if (spec.kinds[i] != TokenKind::kUnused && spec.pieces[i] != a.text)
        Fail(where, "added token '" + a.text + "' reuses id " + std::to_string(a.id) + " of '" + spec.pieces[i] + "'");
      spec.pieces[i] = a.text;
      spec.kinds[i] = a.special ? TokenKind::kControl : TokenKind::kUserDefined;
    }
    for (size_t i = 0; i < spec.pieces.size(); ++i)
      if (spec.kinds[i] == TokenKind::kUnused) Fail(where, "no token has id " + std::to_string(i));
    spec.added = std::move(added);

    if (model.contains("merges")) {
      Require(model["merges"].is_array(), where, "\"merges\" is not an array");
      spec.merges.reserve(model["merges"].size());
      for (const json& m : model["merges"]) {
        if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
          spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        } else {
          if (!m.is_string())
            Fail(where, "merge " + m.dump().substr(0, 100) + " is neither \"a b\" nor [\"a\", \"b\"]");
          const std::string& s = m.get_ref<const std::string&>();
          const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
          if (sp == std::string::npos) Fail(where, "merge '" + s + "' is not 'left right'");
          spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
        }
      }
    }

    auto id_of = [&](const std::string& piece) {
      for (size_t i = 0; i < spec.pieces.size(); ++i)
        if (spec.pieces[i] == piece) return static_cast<int32_t>(i);
      return int32_t{-1};
    };
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      spec.special.unk = id_of(model["unk_token"].get<std::string>());
      Require(spec.special.unk >= 0, where, "unk_token '" + model["unk_token"].get<std::string>() + "' not in vocab");
    }
    // tokenizer.json names no roles; Gemma's pieces do.
    spec.special.bos = id_of("<bos>");
    spec.special.eos = id_of("<eos>");
    spec.special.pad = id_of("<pad>");
    return Build(std::move(spec), where);
  } catch (const nlohmann::json::exception& e) {
    Fail(where, std::string("malformed tokenizer JSON: ") + e.what());
  }
}

inline Tokenizer Tokenizer::Build(Spec spec, const std::string& where) {
  Tokenizer t;
  t.where_ = where;
  t.spaces_to_metaspace_ = spec.spaces_to_metaspace;
  t.byte_fallback_ = spec.byte_fallback;
  t.fuse_unk_ = spec.fuse_unk;
  t.special_ = spec.special;
  const size_t n = spec.pieces.size();
  for (const int32_t id : {spec.special.bos, spec.special.eos, spec.special.unk, spec.special.pad})
    Require(id >= -1 && id < static_cast<int64_t>(n), where,
            "special token id " + std::to_string(id) + " out of range");
  std::fill(std::begin(t.byte_ids_), std::end(t.byte_ids_), -1);
  t.piece_ids_.reserve(n);
  t.text_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = spec.pieces[i];
    const auto id = static_cast<int32_t>(i);
    t.piece_ids_.emplace(p, id);  // the first of two equal pieces keeps the name
    // <0xXX> pieces decode to their byte and count as byte tokens whatever their declared kind (tokenizers'
    // ByteFallback decoder does so; the demo vocabulary declares them special).
    unsigned byte = 0;
    const bool is_byte = p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
                         std::isxdigit(static_cast<unsigned char>(p[3])) &&
                         std::isxdigit(static_cast<unsigned char>(p[4])) &&
                         std::sscanf(p.c_str() + 3, "%2x", &byte) == 1;
    if (is_byte) {
      if (t.byte_ids_[byte] < 0) t.byte_ids_[byte] = id;
      t.text_[i] = std::string(1, static_cast<char>(byte));
      spec.kinds[i] = TokenKind::kByte;
      continue;
    }
    uint32_t cp;
    if (!p.empty() && utf8::Decode(p, 0, &cp) == p.size()) t.char_ids_.emplace(cp, id);
    std::string& text = t.text_[i];  // "▁" -> " "
    for (size_t k = 0; k < p.size(); ++k) {
      if (p.compare(k, 3, "\u2581") == 0) {
        text += ' ';
        k += 2;
      } else {
        text += p[k];
      }
    }
  }
  t.pieces_ = std::move(spec.pieces);
  t.kinds_ = std::move(spec.kinds);

  // Merges, and the character pairs they can join.
  std::vector<bool> result_seen(n, false);
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    const auto ia = t.piece_ids_.find(a), ib = t.piece_ids_.find(b), ic = t.piece_ids_.find(a + b);
    if (ia == t.piece_ids_.end() || ib == t.piece_ids_.end() || ic == t.piece_ids_.end())
      Fail(where, "merge " + std::to_string(r) + " '" + a + " " + b + "': " +
                      (ia == t.piece_ids_.end()   ? a
                       : ib == t.piece_ids_.end() ? b
                                                  : a + b) +
                      " is not in the vocabulary");
    t.merges_.Add(ia->second, ib->second, ic->second, static_cast<uint32_t>(r));
    if (t.kinds_[ia->second] == TokenKind::kByte || t.kinds_[ib->second] == TokenKind::kByte) t.split_chunks_ = false;
    if (result_seen[ic->second]) continue;
    result_seen[ic->second] = true;
    const std::string joined = a + b;
    uint32_t prev = 0;
    for (size_t k = 0; k < joined.size();) {
      uint32_t cp;
      const size_t len = utf8::Decode(joined, k, &cp);
      if (k > 0) t.joinable_.insert(PairKey(prev, cp));
      prev = cp;
      k += len;
    }
  }
  if (!t.byte_fallback_) t.split_chunks_ = false;  // unknown characters fuse into one <unk> across any cut

  for (const Added& a : spec.added) {
    if (!a.normalized) {
      t.raw_added_.Add(a.text, a.id, a.special);
      continue;
    }
    // tokenizers normalizes a normalized token's own text too before matching it.
    std::string text;
    t.Normalize(a.text, text);
    t.normalized_added_.Add(text, a.id, a.special);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

// Appends raw text with spaces turned into "▁" to norm, and the parts it splits into (normalized added tokens
// cut it further) to parts.
inline void Tokenizer::AppendNormalized(std::string_view raw, bool parse_special, std::string& norm,
                                        std::vector<Part>& parts) const {
  const size_t begin = norm.size();
  Normalize(raw, norm);
  const std::string_view s = std::string_view(norm).substr(begin);
  size_t pos = 0;
  while (pos < s.size()) {
    const AddedTokenMatcher::Match m = normalized_added_.Find(s, pos, parse_special);
    const size_t end = m.id >= 0 ? m.begin : s.size();
    if (end > pos) parts.push_back({-1, begin + pos, begin + end});
    if (m.id < 0) break;
    parts.push_back({m.id, 0, 0});
    pos = m.end;
  }
}

inline std::vector<int32_t> Tokenizer::Encode(std::string_view text, EncodeOptions options) const {
  std::vector<int32_t> out;
  if (options.add_bos) {
    Require(special_.bos >= 0, where_, "no <bos> token to add");
    out.push_back(special_.bos);
  }
  // Split on raw-text added tokens and normalize the rest into one buffer that outlives the chunk cache's views.
  std::string norm;
  norm.reserve(text.size() + text.size() / 4);
  std::vector<Part> parts;
  size_t pos = 0;
  while (true) {
    const AddedTokenMatcher::Match m = raw_added_.Find(text, pos, options.parse_special);
    const size_t end = m.id >= 0 ? m.begin : text.size();
    AppendNormalized(text.substr(pos, end - pos), options.parse_special, norm, parts);
    if (m.id < 0) break;
    parts.push_back({m.id, 0, 0});
    pos = m.end;
  }
  out.reserve(out.size() + text.size() / 3);
  std::vector<int32_t> scratch;
  for (const Part& p : parts) {
    if (p.id >= 0)
      out.push_back(p.id);
    else
      EncodeText(std::string_view(norm).substr(p.begin, p.end - p.begin), out, scratch);
  }
  return out;
}

// Cuts normalized text between characters that no merge can join, and merges each chunk (short ones once).
inline void Tokenizer::EncodeText(std::string_view s, std::vector<int32_t>& out, std::vector<int32_t>& scratch) const {
  auto emit = [&](std::string_view chunk) {
    const bool cacheable = chunk.size() <= ChunkCache::kMaxChunkBytes;
    std::string key;
    if (cacheable) {
      key.assign(chunk);
      const std::lock_guard<std::mutex> lock(cache_->mutex);
      const auto it = cache_->ids.find(key);
      if (it != cache_->ids.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    EncodeChunk(chunk, scratch);
    out.insert(out.end(), scratch.begin(), scratch.end());
    if (cacheable) {
      const std::lock_guard<std::mutex> lock(cache_->mutex);
      if (cache_->ids.size() >= ChunkCache::kMaxEntries) cache_->ids.clear();
      cache_->ids.emplace(std::move(key), scratch);
    }
  };
  if (!split_chunks_) {
    emit(s);
    return;
  }
  size_t start = 0;
  uint32_t prev = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t len = utf8::Decode(s, i, &cp);
    if (i > start && !joinable_.contains(PairKey(prev, cp))) {
      emit(s.substr(start, i - start));
      start = i;
    }
    prev = cp;
    i += len;
  }
  if (start < s.size()) emit(s.substr(start));
}

// One chunk: characters -> initial symbols (vocabulary character, else its bytes' <0xXX> pieces, else <unk>),
// then the merges.
inline void Tokenizer::EncodeChunk(std::string_view chunk, std::vector<int32_t>& symbols) const {
  symbols.clear();
  bool prev_unknown = false;
  for (size_t i = 0; i < chunk.size();) {
    uint32_t cp;
    const size_t len = utf8::Decode(chunk, i, &cp);
    const auto it = char_ids_.find(cp);
    bool bytes_ok = byte_fallback_;
    for (size_t k = 0; bytes_ok && k < len; ++k) bytes_ok = byte_ids_[static_cast<uint8_t>(chunk[i + k])] >= 0;
    if (it != char_ids_.end()) {
      symbols.push_back(it->second);
      prev_unknown = false;
    } else if (bytes_ok) {
      for (size_t k = 0; k < len; ++k) symbols.push_back(byte_ids_[static_cast<uint8_t>(chunk[i + k])]);
      prev_unknown = false;
    } else {
      Require(special_.unk >= 0, where_, "text has a character outside the vocabulary and there is no <unk>");
      if (!(fuse_unk_ && prev_unknown)) symbols.push_back(special_.unk);
      prev_unknown = true;
    }
    i += len;
  }
  merges_.Apply(symbols);
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

inline std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_control) const {
  std::string out;
  for (const int32_t id : ids) {
    if (skip_control && IsControl(id)) continue;
    out += TokenText(id);
  }
  return out;
}

}  // namespace g4
