// Runs a Grammar over bytes: a pushdown recogniser whose configurations are built lazily into a DFA.
//
// A configuration is the set of parse stacks still alive (llama.cpp's grammar stacks). A stack is a path of
// interned nodes (element position, parent node), so equal stacks are one node id and a set of stacks is a sorted
// id list, interned as a State. Next(state, byte) is computed once and then read from a 256-entry row, so the
// token mask (grammar/token_matcher.hpp), which walks a trie of the vocabulary's bytes through this recogniser,
// costs one table read per trie node once the states it meets have been seen. Right recursion in tail position
// (how repetition is lowered) reuses the parent node, so `x*` loops on one state rather than growing stacks.
//
// Memory grows with the states and nodes met; Compact() starts the tables afresh from one state.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "g4/grammar/grammar.hpp"

namespace g4 {

class GrammarRecognizer {
 public:
  static constexpr int32_t kDead = -1;

  explicit GrammarRecognizer(std::shared_ptr<const Grammar> grammar) : g_(std::move(grammar)) {}

  // The state before any byte.
  int32_t Start() {
    std::vector<int32_t> tops;
    for (const uint32_t a : g_->alts[g_->root]) Expand(a, kBottom, tops);
    return InternState(std::move(tops));
  }
  // The state after `byte`, or kDead when no stack can take it.
  int32_t Next(int32_t state, uint8_t byte) {
    const size_t at = static_cast<size_t>(state) * 256 + byte;
    if (next_[at] == kUnknown) {
      const int32_t t = Advance(state, byte);  // may grow next_
      next_[at] = t;
    }
    return next_[at];
  }
  // The whole grammar matched here (a stack is empty): the output may end.
  bool Accepting(int32_t state) const { return states_[static_cast<size_t>(state)].accepting; }
  // Bytes some stack can take next (a superset of those with a live Next).
  const ByteSet& Possible(int32_t state) const { return states_[static_cast<size_t>(state)].possible; }
  size_t state_count() const { return states_.size(); }
  size_t node_count() const { return nodes_.size(); }

  // Forgets every state and node but `keep`'s, which becomes state 0 (returned). Ids from before are invalid.
  int32_t Compact(int32_t keep) {
    std::vector<std::vector<uint32_t>> stacks;  // keep's stacks as element positions, bottom first
    for (const int32_t n : states_[static_cast<size_t>(keep)].stacks) {
      std::vector<uint32_t> path;
      for (int32_t m = n; m >= 0; m = nodes_[static_cast<size_t>(m)].parent) path.push_back(nodes_[static_cast<size_t>(m)].pos);
      std::reverse(path.begin(), path.end());
      stacks.push_back(std::move(path));
    }
    const bool accepting = states_[static_cast<size_t>(keep)].accepting;
    nodes_.clear();
    node_ids_.clear();
    states_.clear();
    state_ids_.clear();
    next_.clear();
    std::vector<int32_t> ids;
    for (const auto& path : stacks) {
      int32_t parent = kBottom;
      for (const uint32_t pos : path) parent = Intern(pos, parent);
      ids.push_back(parent);
    }
    if (accepting) ids.push_back(kBottom);
    return InternState(std::move(ids));
  }

 private:
  static constexpr int32_t kUnknown = -2;
  static constexpr int32_t kBottom = -1;  // parent of a stack's last node; as a stack id: the empty stack
  using Elem = Grammar::Elem;
  struct Node {
    uint32_t pos;    // the element this stack matches next (kBytes), or a continuation after a rule reference
    int32_t parent;  // kBottom at the bottom
  };
  struct State {
    std::vector<int32_t> stacks;  // sorted node ids of the stacks' tops (kBottom: an empty stack)
    bool accepting = false;
    ByteSet possible;
  };

  int32_t Advance(int32_t state, uint8_t byte) {
    std::vector<int32_t> tops;
    const State& s = states_[static_cast<size_t>(state)];
    if (!s.possible.Has(byte)) return kDead;
    const std::vector<int32_t> from = s.stacks;  // Expand interns nodes, InternState may move states_
    for (const int32_t n : from) {
      if (n == kBottom) continue;
      const Node node = nodes_[static_cast<size_t>(n)];
      if (g_->byte_sets[g_->elems[node.pos].value].Has(byte)) Expand(node.pos + 1, node.parent, tops);
    }
    if (tops.empty()) return kDead;
    return InternState(std::move(tops));
  }

  // The stack tops reached from (pos, parent) without consuming a byte: a byte element is a top; a rule reference
  // pushes its continuation (unless that is the alternative's end: a tail call reuses the parent) under each of
  // the rule's alternatives; an alternative's end pops to the parent. Left recursion is refused at Build, so this
  // ends; `seen` keeps epsilon paths that meet from multiplying.
  void Expand(uint32_t pos, int32_t parent, std::vector<int32_t>& tops) {
    seen_.clear();
    work_.clear();
    work_.push_back({pos, parent});
    while (!work_.empty()) {
      auto [p, par] = work_.back();
      work_.pop_back();
      if (!seen_.insert(Key(p, par)).second) continue;
      const Elem e = g_->elems[p];
      if (e.kind == Elem::kBytes) {
        tops.push_back(Intern(p, par));
      } else if (e.kind == Elem::kEnd) {
        if (par == kBottom) {
          tops.push_back(kBottom);
        } else {
          const Node up = nodes_[static_cast<size_t>(par)];
          work_.push_back({up.pos, up.parent});
        }
      } else {
        const int32_t cont = g_->elems[p + 1].kind == Elem::kEnd ? par : Intern(p + 1, par);
        const auto& alts = g_->alts[e.value];
        for (auto it = alts.rbegin(); it != alts.rend(); ++it) work_.push_back({*it, cont});
      }
    }
  }

  static uint64_t Key(uint32_t pos, int32_t parent) { return uint64_t{pos} << 32 | static_cast<uint32_t>(parent); }

  int32_t Intern(uint32_t pos, int32_t parent) {
    const auto [it, added] = node_ids_.emplace(Key(pos, parent), static_cast<int32_t>(nodes_.size()));
    if (added) nodes_.push_back({pos, parent});
    return it->second;
  }

  int32_t InternState(std::vector<int32_t> tops) {
    std::sort(tops.begin(), tops.end());
    tops.erase(std::unique(tops.begin(), tops.end()), tops.end());
    const auto it = state_ids_.find(tops);
    if (it != state_ids_.end()) return it->second;
    State s;
    for (const int32_t n : tops) {
      if (n == kBottom) {
        s.accepting = true;
        continue;
      }
      const ByteSet& b = g_->byte_sets[g_->elems[nodes_[static_cast<size_t>(n)].pos].value];
      for (int w = 0; w < 4; ++w) s.possible.bits[w] |= b.bits[w];
    }
    s.stacks = tops;
    const auto id = static_cast<int32_t>(states_.size());
    states_.push_back(std::move(s));
    state_ids_.emplace(std::move(tops), id);
    next_.resize(next_.size() + 256, kUnknown);
    return id;
  }

  struct VecHash {
    size_t operator()(const std::vector<int32_t>& v) const {
      uint64_t h = 1469598103934665603ull;
      for (const int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
      return static_cast<size_t>(h);
    }
  };

  std::shared_ptr<const Grammar> g_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int32_t> node_ids_;
  std::vector<State> states_;
  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> state_ids_;
  std::vector<int32_t> next_;  // [state * 256 + byte]: the next state, kDead, or kUnknown
  std::unordered_set<uint64_t> seen_;
  std::vector<std::pair<uint32_t, int32_t>> work_;
};

}  // namespace g4
