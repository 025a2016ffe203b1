// A context-free grammar over BYTES, in the flat form the recogniser (grammar/recognizer.hpp) runs: every rule is a
// list of alternatives, each a run of elements in one array ending in kEnd; an element matches one byte from a set
// (a 256-bit mask) or refers to a rule. Characters beyond ASCII are byte sequences (GrammarBuilder::Class turns
// code point ranges into UTF-8 byte-range sequences), so the recogniser never decodes UTF-8.
//
// GrammarBuilder is what the text syntax (grammar/gbnf.hpp) and the JSON Schema compiler lower into: literals,
// character classes, repetition {m,n} as nested rules, and checks at Build: every referenced rule defined, no left
// recursion (a rule reaching itself before consuming a byte would make the recogniser loop).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "g4/core/error.hpp"

namespace g4 {

struct ByteSet {
  std::array<uint64_t, 4> bits{};
  bool Has(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
  void Add(uint8_t b) { bits[b >> 6] |= uint64_t{1} << (b & 63); }
  void AddRange(uint8_t lo, uint8_t hi) {
    for (unsigned b = lo; b <= hi; ++b) Add(static_cast<uint8_t>(b));
  }
  bool Empty() const { return (bits[0] | bits[1] | bits[2] | bits[3]) == 0; }
  auto operator<=>(const ByteSet&) const = default;
};

struct Grammar {
  struct Elem {
    enum Kind : uint8_t { kEnd, kBytes, kRule } kind;
    uint32_t value;  // kBytes: index into byte_sets; kRule: rule index
  };
  std::vector<Elem> elems;                     // every alternative's elements, each run ending in kEnd
  std::vector<std::vector<uint32_t>> alts;     // per rule: where its alternatives start in elems
  std::vector<std::string> names;              // per rule (generated rules: "<parent>-<n>")
  std::vector<ByteSet> byte_sets;
  uint32_t root = 0;
};

// A control token (<|tool_call>, <eos>) as the recogniser sees it: its text between two 0xFF bytes, which no
// UTF-8 text contains, so a grammar allows it only where it names the token (grammar text `<|tool_call>`), and
// spelling the text out in ordinary characters never stands for it.
inline std::string SpecialTokenBytes(std::string_view text) { return "\xFF" + std::string(text) + "\xFF"; }

// A code point range, inclusive.
struct CodeRange {
  uint32_t lo, hi;
};

class GrammarBuilder {
 public:
  using Elem = Grammar::Elem;
  using Seq = std::vector<Elem>;
  static constexpr uint32_t kMaxCodePoint = 0x10FFFF;
  static constexpr size_t kMaxElems = size_t{1} << 22;  // a bound on grammar size (repetition counts multiply it)

  // The rule named `name`, declared on first use (defined later by Define). where: for the error if it never is.
  uint32_t Ref(const std::string& name, const std::string& where = {}) {
    const auto [it, added] = ids_.emplace(name, static_cast<uint32_t>(g_.names.size()));
    if (added) {
      g_.names.push_back(name);
      g_.alts.emplace_back();
      defined_.push_back(false);
      first_use_.push_back(where);
    }
    return it->second;
  }
  bool Defined(const std::string& name) const {
    const auto it = ids_.find(name);
    return it != ids_.end() && defined_[it->second];
  }
  // A fresh rule for a group, class or repetition inside `parent`.
  uint32_t NewRule(const std::string& parent) {
    for (;;) {
      const std::string name = parent + "-" + std::to_string(++generated_);
      if (!ids_.count(name)) return Ref(name);
    }
  }
  void Define(uint32_t rule, const std::vector<Seq>& alternatives, const std::string& where = {}) {
    if (defined_[rule]) Fail(where.empty() ? "grammar" : where, "rule '" + g_.names[rule] + "' is defined twice");
    defined_[rule] = true;
    for (const Seq& s : alternatives) {
      g_.alts[rule].push_back(static_cast<uint32_t>(g_.elems.size()));
      g_.elems.insert(g_.elems.end(), s.begin(), s.end());
      g_.elems.push_back({Elem::kEnd, 0});
    }
    Require(g_.elems.size() <= kMaxElems, "grammar", "too large (over " + std::to_string(kMaxElems) + " elements; lower the repetition counts)");
  }
  // A rule holding these alternatives, as one element.
  Elem Group(const std::string& parent, const std::vector<Seq>& alternatives) {
    const uint32_t r = NewRule(parent);
    Define(r, alternatives);
    return {Elem::kRule, r};
  }

  Elem Bytes(const ByteSet& set) {
    const auto [it, added] = set_ids_.emplace(set, static_cast<uint32_t>(g_.byte_sets.size()));
    if (added) g_.byte_sets.push_back(set);
    return {Elem::kBytes, it->second};
  }
  Seq Literal(std::string_view bytes) {
    Seq s;
    for (const char c : bytes) {
      ByteSet b;
      b.Add(static_cast<uint8_t>(c));
      s.push_back(Bytes(b));
    }
    return s;
  }

  // One character from the ranges (or, negated, any other code point), as UTF-8: one element when all of it is
  // ASCII, else a rule whose alternatives are byte-range sequences. Surrogates (D800-DFFF) are never produced.
  Elem Class(const std::string& parent, std::vector<CodeRange> ranges, bool negated) {
    ranges = Normalize(std::move(ranges), negated);
    ByteSet ascii;
    std::vector<Seq> alts;
    for (const CodeRange& r : ranges) {
      if (r.lo < 0x80) ascii.AddRange(static_cast<uint8_t>(r.lo), static_cast<uint8_t>(std::min<uint32_t>(r.hi, 0x7F)));
      if (r.hi >= 0x80) Utf8Sequences(std::max<uint32_t>(r.lo, 0x80), r.hi, alts);
    }
    if (alts.empty()) {
      Require(!ascii.Empty(), parent, "a character class that matches nothing");
      return Bytes(ascii);
    }
    if (!ascii.Empty()) alts.insert(alts.begin(), Seq{Bytes(ascii)});
    return Group(parent, alts);
  }

  // atom{min,max} (max < 0: unbounded), right-recursive so that the recogniser's stacks do not grow with the count.
  Seq Repeat(const std::string& parent, Seq atom, uint32_t min, int64_t max) {
    Require(max < 0 || max >= min, parent, "repetition {" + std::to_string(min) + "," + std::to_string(max) + "} has max < min");
    Require(min <= 10000 && max <= 10000, parent, "repetition counts above 10000 are not supported");
    if (atom.size() != 1) atom = {Group(parent, {atom})};
    Seq out;
    for (uint32_t i = 0; i < min; ++i) out.push_back(atom[0]);
    if (max < 0) {
      const uint32_t star = NewRule(parent);
      Define(star, {{atom[0], {Elem::kRule, star}}, {}});
      out.push_back({Elem::kRule, star});
    } else if (max > min) {
      // x{0,k}: o_k ::= x o_{k-1} | "" ... o_1 ::= x | ""
      uint32_t inner = NewRule(parent);
      Define(inner, {{atom[0]}, {}});
      for (int64_t k = 2; k <= max - min; ++k) {
        const uint32_t outer = NewRule(parent);
        Define(outer, {{atom[0], {Elem::kRule, inner}}, {}});
        inner = outer;
      }
      out.push_back({Elem::kRule, inner});
    }
    return out;
  }

  // The finished grammar from `root`: every rule used is defined and none is left-recursive.
  Grammar Build(const std::string& root) {
    Require(ids_.count(root) && defined_[ids_[root]], "grammar", "no rule '" + root + "' (the start rule)");
    for (size_t r = 0; r < defined_.size(); ++r)
      if (!defined_[r]) Fail(first_use_[r].empty() ? "grammar" : first_use_[r], "rule '" + g_.names[r] + "' is used but never defined");
    CheckLeftRecursion();
    g_.root = ids_[root];
    return std::move(g_);
  }

 private:
  // Sorted, merged, surrogates removed; complemented over [0, 10FFFF] when negated.
  static std::vector<CodeRange> Normalize(std::vector<CodeRange> r, bool negated) {
    std::sort(r.begin(), r.end(), [](CodeRange a, CodeRange b) { return a.lo < b.lo; });
    std::vector<CodeRange> merged;
    for (const CodeRange& x : r) {
      if (!merged.empty() && x.lo <= merged.back().hi + 1)
        merged.back().hi = std::max(merged.back().hi, x.hi);
      else
        merged.push_back(x);
    }
    if (negated) {
      std::vector<CodeRange> comp;
      uint32_t next = 0;
      for (const CodeRange& x : merged) {
        if (x.lo > next) comp.push_back({next, x.lo - 1});
        next = x.hi + 1;
      }
      if (next <= kMaxCodePoint) comp.push_back({next, kMaxCodePoint});
      merged.swap(comp);
    }
    std::vector<CodeRange> out;
    for (const CodeRange& x : merged) {
      if (x.hi < 0xD800 || x.lo > 0xDFFF) { out.push_back(x); continue; }
      if (x.lo < 0xD800) out.push_back({x.lo, 0xD7FF});
      if (x.hi > 0xDFFF) out.push_back({0xE000, x.hi});
    }
    return out;
  }

  static int Utf8Encode(uint32_t c, uint8_t* b) {
    if (c < 0x80) { b[0] = static_cast<uint8_t>(c); return 1; }
    if (c < 0x800) { b[0] = static_cast<uint8_t>(0xC0 | c >> 6); b[1] = static_cast<uint8_t>(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
      b[0] = static_cast<uint8_t>(0xE0 | c >> 12); b[1] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
      b[2] = static_cast<uint8_t>(0x80 | (c & 0x3F));
      return 3;
    }
    b[0] = static_cast<uint8_t>(0xF0 | c >> 18); b[1] = static_cast<uint8_t>(0x80 | ((c >> 12) & 0x3F));
    b[2] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F)); b[3] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    return 4;
  }

  // [lo, hi] (>= 0x80, no surrogates) as sequences of byte ranges, each sequence a rectangle of UTF-8 encodings:
  // split at the encoding-length boundaries, then until all but a common prefix of the continuation bytes span
  // their full 80-BF range (the construction of RE2 and Rust's utf8-ranges).
  void Utf8Sequences(uint32_t lo, uint32_t hi, std::vector<Seq>& out) {
    for (const uint32_t bound : {0x7Fu, 0x7FFu, 0xFFFFu}) {
      if (lo <= bound && bound < hi) {
        Utf8Sequences(lo, bound, out);
        Utf8Sequences(bound + 1, hi, out);
        return;
      }
    }
    for (int i = 1; i < 4; ++i) {
      const uint32_t m = (1u << (6 * i)) - 1;
      if ((lo & ~m) != (hi & ~m)) {
        if ((lo & m) != 0) {
          Utf8Sequences(lo, lo | m, out);
          Utf8Sequences((lo | m) + 1, hi, out);
          return;
        }
        if ((hi & m) != m) {
          Utf8Sequences(lo, (hi & ~m) - 1, out);
          Utf8Sequences(hi & ~m, hi, out);
          return;
        }
      }
    }
    uint8_t a[4], b[4];
    const int n = Utf8Encode(lo, a);
    Utf8Encode(hi, b);
    Seq s;
    for (int i = 0; i < n; ++i) {
      ByteSet set;
      set.AddRange(a[i], b[i]);
      s.push_back(Bytes(set));
    }
    out.push_back(std::move(s));
  }

  // A rule may not reach itself through rule references that come first in an alternative or after elements
  // that can all match nothing.
  void CheckLeftRecursion() const {
    const size_t n = g_.alts.size();
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const uint32_t a : g_.alts[r]) {
          size_t p = a;
          while (g_.elems[p].kind == Elem::kRule && nullable[g_.elems[p].value]) ++p;
          if (g_.elems[p].kind == Elem::kEnd) { nullable[r] = changed = true; break; }
        }
      }
    }
    std::vector<std::vector<uint32_t>> left(n);
    for (size_t r = 0; r < n; ++r)
      for (const uint32_t a : g_.alts[r])
        for (size_t p = a; g_.elems[p].kind == Elem::kRule; ++p) {
          left[r].push_back(g_.elems[p].value);
          if (!nullable[g_.elems[p].value]) break;
        }
    // Depth-first search for a cycle, with an explicit stack (a chain of rules may be as long as the text).
    std::vector<char> mark(n, 0);  // 0 new, 1 on the path, 2 done
    std::vector<std::pair<uint32_t, size_t>> path;  // (rule, next edge to follow)
    for (uint32_t r0 = 0; r0 < n; ++r0) {
      if (mark[r0]) continue;
      mark[r0] = 1;
      path.push_back({r0, 0});
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next == left[r].size()) {
          mark[r] = 2;
          path.pop_back();
          continue;
        }
        const uint32_t s = left[r][next++];
        if (mark[s] == 1)
          Fail("grammar", "rule '" + g_.names[s] + "' is left-recursive: it can reach itself without matching a byte "
                          "(e.g. a repetition of something that can be empty)");
        if (mark[s] == 0) {
          mark[s] = 1;
          path.push_back({s, 0});
        }
      }
    }
  }

  Grammar g_;
  std::map<std::string, uint32_t> ids_;
  std::vector<bool> defined_;
  std::vector<std::string> first_use_;
  std::map<ByteSet, uint32_t> set_ids_;
  size_t generated_ = 0;
};

// One grammar matching what either matches (root ::= a | b): b's rules and byte sets follow a's. For an answer
// that is one of two documents in different syntaxes (JSON content or Gemma tool calls), each compiled alone.
inline Grammar EitherGrammar(const Grammar& a, const Grammar& b) {
  Grammar g = a;
  const auto rule_base = static_cast<uint32_t>(a.alts.size()), set_base = static_cast<uint32_t>(a.byte_sets.size());
  const auto elem_base = static_cast<uint32_t>(a.elems.size());
  for (Grammar::Elem e : b.elems) {
    if (e.kind == Grammar::Elem::kRule) e.value += rule_base;
    if (e.kind == Grammar::Elem::kBytes) e.value += set_base;
    g.elems.push_back(e);
  }
  for (const std::vector<uint32_t>& alts : b.alts) {
    g.alts.emplace_back();
    for (const uint32_t start : alts) g.alts.back().push_back(start + elem_base);
  }
  for (const std::string& name : b.names) g.names.push_back("either-" + name);
  g.byte_sets.insert(g.byte_sets.end(), b.byte_sets.begin(), b.byte_sets.end());
  g.root = static_cast<uint32_t>(g.alts.size());
  g.names.push_back("either");
  g.alts.push_back({});
  for (const uint32_t root : {a.root, b.root + rule_base}) {
    g.alts.back().push_back(static_cast<uint32_t>(g.elems.size()));
    g.elems.push_back({Grammar::Elem::kRule, root});
    g.elems.push_back({Grammar::Elem::kEnd, 0});
  }
  return g;
}

}  // namespace g4
