// Added tokens (control tokens such as <bos> or <|turn>, and user-defined ones such as "\n\n") are matched whole
// in the text before BPE sees it, as Hugging Face tokenizers does: scanning left to right, the longest token that
// starts at the earliest position wins. A byte trie makes the scan one table probe per byte of ordinary text.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace g4 {

class AddedTokenMatcher {
 public:
  struct Match {
    size_t begin = 0, end = 0;  // byte range in the scanned text
    int32_t id = -1;            // -1: no match
  };

  bool empty() const { return nodes_.size() == 1; }

  // special: matched only when the caller allows control tokens (Encode's parse_special).
  void Add(std::string_view text, int32_t id, bool special) {
    if (text.empty()) return;
    int32_t node = 0;
    for (const char c : text) {
      const auto b = static_cast<uint8_t>(c);
      int32_t child = Child(node, b);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(b, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    if (nodes_[node].id < 0) {  // the first of two equal texts wins
      nodes_[node].id = id;
      nodes_[node].special = special;
    }
    starts_[static_cast<uint8_t>(text[0])] = true;
  }

  // The leftmost-longest match at or after `from`; id -1 when none.
  Match Find(std::string_view text, size_t from, bool allow_special) const {
    for (size_t i = from; i < text.size(); ++i) {
      if (!starts_[static_cast<uint8_t>(text[i])]) continue;
      Match best;
      int32_t node = 0;
      for (size_t j = i; j < text.size(); ++j) {
        node = Child(node, static_cast<uint8_t>(text[j]));
        if (node < 0) break;
        const Node& n = nodes_[node];
        if (n.id >= 0 && (allow_special || !n.special)) best = Match{i, j + 1, n.id};
      }
      if (best.id >= 0) return best;
    }
    return Match{};
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // few per node: a linear scan beats a map
    int32_t id = -1;
    bool special = false;
  };

  int32_t Child(int32_t node, uint8_t b) const {
    for (const auto& [byte, child] : nodes_[node].children)
      if (byte == b) return child;
    return -1;
  }

  std::vector<Node> nodes_ = std::vector<Node>(1);  // nodes_[0] is the root
  bool starts_[256] = {};                           // first bytes of any token: the fast reject
};

}  // namespace g4
