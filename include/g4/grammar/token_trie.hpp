// Every token's bytes in one prefix tree, laid out in preorder so that a walk is a forward scan that skips whole
// subtrees: node i has its byte, its depth and the index past its subtree. Built once per tokenizer (Gemma's
// 262144 tokens: 0.3 s, 600k nodes); the token mask walks it in step with the grammar recogniser.
//
// Tokens that stand for text are in it by their bytes, control tokens by SpecialTokenBytes (only a grammar that
// names them allows them); unused tokens, tokens whose text is empty, and text tokens holding the byte 0xFF
// (invalid in UTF-8, so no grammar allows it as text; it would spell control tokens out) are left out.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/grammar/grammar.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

class TokenTrie {
 public:
  // entries: (token id, its bytes).
  explicit TokenTrie(int32_t vocab_size, std::vector<std::pair<int32_t, std::string_view>> entries) : vocab_(vocab_size) {
    Require(vocab_size > 0, "token trie", "empty vocabulary");
    std::vector<std::string_view> by_id(static_cast<size_t>(vocab_size));
    for (const auto& [id, bytes] : entries)
      if (id >= 0 && id < vocab_) by_id[static_cast<size_t>(id)] = bytes;
    for (const std::string_view b : by_id) {
      offset_.push_back(static_cast<uint32_t>(text_.size()));
      text_ += b;
    }
    offset_.push_back(static_cast<uint32_t>(text_.size()));
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second < b.second : a.first < b.first; });
    std::vector<uint32_t> path;  // node indices from the root's child down
    std::string_view prev;
    for (const auto& [id, bytes] : entries) {
      if (id < 0 || id >= vocab_) Fail("token trie", "token id " + std::to_string(id) + " out of range");
      if (bytes.empty()) continue;
      if (bytes.size() >= 65535) Fail("token trie", "token " + std::to_string(id) + " is too long");
      size_t common = 0;
      while (common < prev.size() && common < bytes.size() && prev[common] == bytes[common]) ++common;
      common = std::min(common, path.size());
      while (path.size() > common) {
        end_[path.back()] = static_cast<uint32_t>(byte_.size());
        path.pop_back();
      }
      for (size_t d = common; d < bytes.size(); ++d) {
        path.push_back(static_cast<uint32_t>(byte_.size()));
        byte_.push_back(static_cast<uint8_t>(bytes[d]));
        depth_.push_back(static_cast<uint16_t>(d + 1));
        end_.push_back(0);
        token_begin_.push_back(static_cast<uint32_t>(tokens_.size()));
      }
      tokens_.push_back(id);  // sorted order: a token ends at the newest node (duplicates too)
      max_depth_ = std::max<size_t>(max_depth_, bytes.size());
      prev = bytes;
    }
    while (!path.empty()) {
      end_[path.back()] = static_cast<uint32_t>(byte_.size());
      path.pop_back();
    }
    token_begin_.push_back(static_cast<uint32_t>(tokens_.size()));
  }

  // The tokens of a tokenizer that stand for text (see above). vocab_size: the model's logits, when the
  // embedding is padded past the tokenizer's last id.
  static TokenTrie FromTokenizer(const Tokenizer& tok, int32_t vocab_size = 0) {
    std::vector<std::pair<int32_t, std::string_view>> entries;
    std::vector<std::string> specials;
    specials.reserve(static_cast<size_t>(tok.size()));  // the views below must not move
    for (int32_t id = 0; id < tok.size(); ++id) {
      if (tok.Kind(id) == TokenKind::kUnused || tok.TokenText(id).empty()) continue;
      if (tok.IsControl(id)) {
        specials.push_back(SpecialTokenBytes(tok.TokenText(id)));
        entries.emplace_back(id, specials.back());
      } else if (tok.TokenText(id).find('\xFF') == std::string_view::npos) {  // <0xFF> could spell a control token out
        entries.emplace_back(id, tok.TokenText(id));
      }
    }
    return TokenTrie(std::max(tok.size(), vocab_size), std::move(entries));
  }

  size_t size() const { return byte_.size(); }
  uint8_t byte(size_t i) const { return byte_[i]; }
  size_t depth(size_t i) const { return depth_[i]; }
  size_t subtree_end(size_t i) const { return end_[i]; }
  // The tokens whose bytes end at node i.
  std::pair<const int32_t*, const int32_t*> tokens(size_t i) const {
    return {tokens_.data() + token_begin_[i], tokens_.data() + token_begin_[i + 1]};
  }
  // A token's bytes; empty for the tokens left out.
  std::string_view text(int32_t id) const {
    if (id < 0 || id >= vocab_) Fail("token trie", "token id " + std::to_string(id) + " out of range");  // per token
    return std::string_view(text_).substr(offset_[static_cast<size_t>(id)], offset_[static_cast<size_t>(id) + 1] - offset_[static_cast<size_t>(id)]);
  }
  size_t max_depth() const { return max_depth_; }
  int32_t vocab_size() const { return vocab_; }
  size_t token_count() const { return tokens_.size(); }

 private:
  int32_t vocab_;
  std::vector<uint8_t> byte_;
  std::vector<uint16_t> depth_;
  std::vector<uint32_t> end_;
  std::vector<uint32_t> token_begin_;  // node i's tokens: tokens_[token_begin_[i] .. token_begin_[i + 1])
  std::vector<int32_t> tokens_;
  size_t max_depth_ = 0;
  std::string text_;             // every token's bytes, by id
  std::vector<uint32_t> offset_;  // [vocab + 1] into text_
};

}  // namespace g4
