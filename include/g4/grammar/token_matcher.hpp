// Constrained decoding at the token level. A TokenGrammar (shared, immutable: a grammar, the vocabulary's
// TokenTrie, and the ids that may end the answer) is what a request carries (SamplerConfig::grammar); each
// sampler makes its own TokenMatcher from it, which holds the grammar state of the output so far.
//
// The mask of a state is one walk of the trie through the recogniser: a subtree is skipped at the first byte the
// grammar refuses, so a state that allows little (after `{`) costs a few hundred table reads, and one that allows
// almost everything (inside a string) one read per trie node (~1M for Gemma's 262144 tokens). Masks are kept per
// recogniser state, since outputs revisit states (every character inside a string is the same state).
// Text tokens are allowed when all their bytes are, control tokens where the grammar names them (grammar.hpp's
// SpecialTokenBytes), the end ids where the grammar has matched the whole output, unused tokens never. A lazy
// grammar (TokenGrammar::triggers) constrains only what follows a trigger token, up to an end id.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/grammar/grammar.hpp"
#include "g4/grammar/recognizer.hpp"
#include "g4/grammar/token_trie.hpp"

namespace g4 {

struct TokenGrammar {
  std::shared_ptr<const Grammar> grammar;
  std::shared_ptr<const TokenTrie> trie;
  std::vector<int32_t> end_ids;  // end what the grammar constrains; allowed once it has matched
  // Lazy (a tool call inside a free answer): the output is free until one of these tokens is emitted; the grammar
  // then constrains what follows, up to an end id, after which the output is free again.
  std::vector<int32_t> triggers;
  bool trigger_first = false;  // lazy: the first token must be a trigger (a call is required)
  // The output starts inside a constrained part whose first bytes the prompt already holds (a named tool_choice
  // ends the prompt with <|tool_call>call:NAME{): the matcher starts after them.
  std::string opened;
};

inline std::shared_ptr<const TokenGrammar> MakeTokenGrammar(Grammar grammar, std::shared_ptr<const TokenTrie> trie,
                                                            std::vector<int32_t> end_ids, std::vector<int32_t> triggers = {},
                                                            bool trigger_first = false, std::string opened = {}) {
  Require(trie != nullptr, "grammar", "no token trie");
  for (const auto* ids : {&end_ids, &triggers})
    for (const int32_t id : *ids)
      Require(id >= 0 && id < trie->vocab_size(), "grammar", "token id " + std::to_string(id) + " out of range");
  Require(!trigger_first || !triggers.empty(), "grammar", "trigger_first without triggers");
  Require(!trigger_first || opened.empty(), "grammar", "an output that starts inside a constrained part cannot start with a trigger");
  return std::make_shared<const TokenGrammar>(TokenGrammar{std::make_shared<const Grammar>(std::move(grammar)), std::move(trie),
                                                           std::move(end_ids), std::move(triggers), trigger_first,
                                                           std::move(opened)});
}

class TokenMatcher {
 public:
  explicit TokenMatcher(std::shared_ptr<const TokenGrammar> g)
      : g_(std::move(g)), rec_(g_->grammar), mode_(g_->triggers.empty() ? Mode::kGrammar : Mode::kFree), force_(g_->trigger_first) {
    state_ = rec_.Start();
    depth_states_.resize(g_->trie->max_depth() + 1);
    if (g_->opened.empty()) return;
    mode_ = Mode::kGrammar;
    for (size_t i = 0; i < g_->opened.size() && state_ != GrammarRecognizer::kDead; ++i)
      state_ = rec_.Next(state_, static_cast<uint8_t>(g_->opened[i]));
    Require(state_ != GrammarRecognizer::kDead, "grammar", "refuses the output's opening \"" + g_->opened + "\"");
  }

  // The tokens allowed next, one bit per id.
  const std::vector<uint64_t>& Allowed() {
    if (mode_ == Mode::kFree) {
      std::vector<uint64_t>& m = force_ ? triggers_only_ : all_;
      if (m.empty()) {
        m.assign(Words(), force_ ? 0 : ~uint64_t{0});
        if (force_)
          for (const int32_t id : g_->triggers) Set(m, id);
      }
      return m;
    }
    const auto it = masks_.find(state_);
    if (it != masks_.end()) return it->second;
    if (masks_.size() >= kMaxMasks) masks_.clear();
    std::vector<uint64_t>& mask = masks_[state_];
    mask.assign(Words(), 0);
    if (mode_ == Mode::kGrammar) {
      Walk(mask);
      if (rec_.Accepting(state_))
        for (const int32_t id : g_->end_ids) Set(mask, id);
    }
    return mask;
  }

  bool Allows(int32_t id) {
    if (id < 0 || id >= g_->trie->vocab_size()) return false;
    return (Allowed()[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1;
  }

  // Sets the logits of every token not allowed to -inf. A state that allows nothing is an error (the grammar can
  // never be completed by this vocabulary from here).
  void Mask(std::span<float> logits) {
    if (mode_ == Mode::kFree && !force_) return;  // free text: nothing to mask
    const std::vector<uint64_t>& mask = Allowed();
    Require(logits.size() == static_cast<size_t>(g_->trie->vocab_size()), "grammar",
            "logits have " + std::to_string(logits.size()) + " entries for a vocabulary of " + std::to_string(g_->trie->vocab_size()));
    bool any = false;
    constexpr float kNone = -std::numeric_limits<float>::infinity();
    for (size_t w = 0; w < mask.size(); ++w) {
      const uint64_t m = mask[w];
      any |= m != 0;
      if (m == ~uint64_t{0}) continue;
      const size_t end = std::min(logits.size(), (w + 1) * 64);
      for (size_t i = w * 64; i < end; ++i)
        if (!((m >> (i & 63)) & 1)) logits[i] = kNone;
    }
    Require(any, "grammar", "no token can continue the output (the grammar needs bytes no token provides)");
  }

  // Advances over an emitted token; one the mask did not allow is an error.
  void Accept(int32_t id) {
    if (!Allows(id)) Fail("grammar", "token " + std::to_string(id) + " is not allowed by the grammar here");  // per token
    if (mode_ == Mode::kFree) {
      if (std::find(g_->triggers.begin(), g_->triggers.end(), id) != g_->triggers.end()) {
        mode_ = Mode::kGrammar;
        force_ = false;
        state_ = rec_.Start();
      }
      return;
    }
    if (IsEnd(id)) {
      mode_ = g_->triggers.empty() ? Mode::kDone : Mode::kFree;
      if (mode_ == Mode::kDone) masks_.clear();
      return;
    }
    for (const char c : g_->trie->text(id)) state_ = rec_.Next(state_, static_cast<uint8_t>(c));
    if (rec_.state_count() > kMaxStates || rec_.node_count() > kMaxNodes) {
      state_ = rec_.Compact(state_);
      masks_.clear();
    }
  }

  bool done() const { return mode_ == Mode::kDone; }  // an end id was accepted (not lazy)
  // The output may end here: the grammar has matched it whole, or (lazy) no constrained part is open.
  bool accepting() const { return mode_ == Mode::kFree ? !force_ : mode_ == Mode::kDone || rec_.Accepting(state_); }

 private:
  static constexpr size_t kMaxMasks = 64;          // 32 KB each for 262144 tokens
  static constexpr size_t kMaxStates = 1 << 14;    // 1 KB of transitions each
  static constexpr size_t kMaxNodes = size_t{1} << 22;

  enum class Mode { kFree, kGrammar, kDone };

  size_t Words() const { return (static_cast<size_t>(g_->trie->vocab_size()) + 63) / 64; }
  static void Set(std::vector<uint64_t>& mask, int32_t id) { mask[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63); }
  bool IsEnd(int32_t id) const { return std::find(g_->end_ids.begin(), g_->end_ids.end(), id) != g_->end_ids.end(); }

  void Walk(std::vector<uint64_t>& mask) {
    const TokenTrie& t = *g_->trie;
    depth_states_[0] = state_;
    const size_t n = t.size();
    for (size_t i = 0; i < n;) {
      const size_t d = t.depth(i);
      const int32_t s = rec_.Next(depth_states_[d - 1], t.byte(i));
      if (s == GrammarRecognizer::kDead) {
        i = t.subtree_end(i);
        continue;
      }
      depth_states_[d] = s;
      const auto [b, e] = t.tokens(i);
      for (const int32_t* p = b; p != e; ++p) Set(mask, *p);
      ++i;
    }
  }

  std::shared_ptr<const TokenGrammar> g_;
  GrammarRecognizer rec_;
  int32_t state_ = 0;
  Mode mode_;
  bool force_;                                   // free, but the next token must be a trigger
  std::vector<uint64_t> all_, triggers_only_;    // the masks of free mode, made on first use
  std::vector<int32_t> depth_states_;  // the walk's recogniser state at each trie depth
  std::unordered_map<int32_t, std::vector<uint64_t>> masks_;  // by recogniser state
};

}  // namespace g4
