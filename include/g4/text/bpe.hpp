// Byte-pair merging of one chunk of text, exactly as Hugging Face tokenizers' BPE model does it: the symbols form a
// linked list, a min-heap holds every adjacent pair that has a merge keyed by (rank, position), and popping the
// lowest applies it unless the entry went stale. O(n log n) in the chunk length, so even a chunk of a whole
// document (tokenizers whose merges cross spaces never allow splitting) stays cheap.
#pragma once
#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace g4 {

class BpeMerges {
 public:
  size_t size() const { return table_.size(); }
  void Reserve(size_t n) { table_.reserve(n); }

  // Rank is the merge's position in the file: lower merges first. A pair listed twice keeps its last entry, as
  // tokenizers' map built from the list does.
  void Add(int32_t left, int32_t right, int32_t result, uint32_t rank) { table_[Key(left, right)] = {rank, result}; }

  // Merges `ids` (the chunk's initial symbols) in place until no adjacent pair has a merge.
  void Apply(std::vector<int32_t>& ids) const {
    const int32_t n = static_cast<int32_t>(ids.size());
    if (n < 2) return;
    std::vector<Symbol> sym(n);
    for (int32_t i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};
    std::vector<Candidate> heap;
    heap.reserve(n);
    auto push = [&](int32_t pos) {
      const auto it = table_.find(Key(sym[pos].id, sym[sym[pos].next].id));
      if (it == table_.end()) return;
      heap.push_back({it->second.rank, pos, it->second.result});
      std::push_heap(heap.begin(), heap.end());
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const Candidate top = heap.back();
      heap.pop_back();
      Symbol& s = sym[top.pos];
      if (s.id < 0 || s.next < 0) continue;  // removed, or nothing to its right any more
      const auto it = table_.find(Key(s.id, sym[s.next].id));
      if (it == table_.end() || it->second.result != top.result) continue;  // stale: a neighbour changed
      Symbol& right = sym[s.next];
      s.id = top.result;
      s.next = right.next;
      right.id = -1;
      if (s.next >= 0) sym[s.next].prev = top.pos;
      if (s.prev >= 0) push(s.prev);
      if (s.next >= 0) push(top.pos);
    }
    ids.clear();
    for (int32_t i = 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
  }

 private:
  struct Entry {
    uint32_t rank;
    int32_t result;
  };
  struct Symbol {
    int32_t id, prev, next;  // id -1: merged into its left neighbour
  };
  struct Candidate {
    uint32_t rank;
    int32_t pos;  // the left symbol of the pair
    int32_t result;
    // std::*_heap builds a max-heap: "less" here means "merges later" (higher rank, then further right).
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  static uint64_t Key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  std::unordered_map<uint64_t, Entry> table_;
};

}  // namespace g4
