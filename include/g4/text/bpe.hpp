// Byte-pair merging of one chunk of text, exactly as Hugging Face tokenizers' BPE model does it: the symbols form a
// linked list, a min-heap holds every adjacent pair that has a merge keyed by (rank, position), and popping the
// lowest applies it unless the entry went stale. O(n log n) in the chunk length, so even a chunk of a whole
// document (tokenizers whose merges cross spaces never allow splitting) stays cheap.
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace g4 {

class BpeMerges {
 public:
  size_t size() const { return size_; }

  // Rank is the merge's position in the file: lower merges first. A pair listed twice keeps its last entry, as
  // tokenizers' map built from the list does.
  void Add(int32_t left, int32_t right, int32_t result, uint32_t rank) {
    if (2 * (size_ + 1) > slots_.size()) Grow();
    Slot& s = slots_[Locate(Key(left, right))];
    if (s.key == kEmpty) ++size_;
    s = {Key(left, right), rank, result};
  }

  // Merges `ids` (the chunk's initial symbols) in place until no adjacent pair has a merge.
  void Apply(std::vector<int32_t>& ids) const {
    const int32_t n = static_cast<int32_t>(ids.size());
    if (n < 2) return;
    std::vector<Symbol> sym(n);
    for (int32_t i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};
    std::vector<Candidate> heap;
    heap.reserve(n);
    auto push = [&](int32_t pos) {
      const Slot* m = Find(sym[pos].id, sym[sym[pos].next].id);
      if (!m) return;
      heap.push_back({m->rank, pos, m->result});
      std::push_heap(heap.begin(), heap.end());
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const Candidate top = heap.back();
      heap.pop_back();
      Symbol& s = sym[top.pos];
      if (s.id < 0 || s.next < 0) continue;  // removed, or nothing to its right any more
      const Slot* m = Find(s.id, sym[s.next].id);
      if (!m || m->result != top.result) continue;  // stale: a neighbour changed
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
  // An open-addressing hash table (linear probing, at most half full): a lookup is usually one cache miss, which
  // is most of the cost of merging.
  struct Slot {
    uint64_t key;  // (left << 32) | right; kEmpty never occurs since ids are < 2^31
    uint32_t rank;
    int32_t result;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
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

  const Slot* Find(int32_t a, int32_t b) const {
    if (slots_.empty()) return nullptr;
    const Slot& s = slots_[Locate(Key(a, b))];
    return s.key == kEmpty ? nullptr : &s;
  }
  // Index of the slot holding key, or of the empty slot where it would go.
  size_t Locate(uint64_t key) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;; i = (i + 1) & mask)
      if (slots_[i].key == key || slots_[i].key == kEmpty) return i;
  }
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{kEmpty, 0, 0});
    shift_ = 64 - static_cast<int>(std::countr_zero(slots_.size()));
    for (const Slot& s : old)
      if (s.key != kEmpty) slots_[Locate(s.key)] = s;
  }

  std::vector<Slot> slots_;  // size a power of two
  int shift_ = 64;           // hash -> slot: the top log2(size) bits of a multiplicative hash
  size_t size_ = 0;
};

}  // namespace g4
