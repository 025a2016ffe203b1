// The grammar text syntax (GBNF, as llama.cpp's grammars/README.md describes it; docs/grammar.md is ours):
//
//   root  ::= "{" ws pair ("," ws pair)* "}"     # a rule per line; `root` is where matching starts
//   pair  ::= [a-z]+ ":" ws ( "true" | "false" ) # "literal", [class] / [^negated], ( group ), a | b
//   ws    ::= [ \t\n]{0,4}                       # x*, x+, x?, x{m}, x{m,}, x{m,n}; . is any character
//   call  ::= <|tool_call> "call:" [a-z]+        # <...>: the control token with this text (never its spelling)
//
// A rule ends at the end of its line unless a group is open or the line ends in `|`. Escapes in literals and
// classes: \n \r \t \\ \" \] \[ \- \^ \/ \xHH \uHHHH \UHHHHHHHH (code points, written as UTF-8). Every error is a
// g4::Error whose place is "grammar line L, column C".
#pragma once
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "g4/grammar/grammar.hpp"

namespace g4 {

namespace gbnf_detail {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {
    for (size_t i = 0; i < s_.size(); ++i)
      if (s_[i] == '\n') line_starts_.push_back(i + 1);
  }

  Grammar Parse() {
    Skip(true);
    while (pos_ < s_.size()) {
      const size_t name_at = pos_;
      const std::string name = Name();
      if (name.empty()) Error(name_at, "expected a rule name");
      Skip(false);
      if (s_.substr(pos_, 3) != "::=") Error(pos_, "expected '::=' after rule name '" + name + "'");
      pos_ += 3;
      Skip(false);
      const uint32_t rule = b_.Ref(name);
      if (b_.Defined(name)) Error(name_at, "rule '" + name + "' is defined twice");
      rule_ = name;
      b_.Define(rule, Alternatives(0), Where(name_at));
      Skip(false);
      if (pos_ < s_.size() && s_[pos_] != '\n' && s_[pos_] != '\r') Error(pos_, std::string("unexpected '") + s_[pos_] + "'");
      Skip(true);
    }
    if (!b_.Defined("root")) Fail("grammar", "no rule 'root' (the start rule)");
    return b_.Build("root");
  }

 private:
  using Seq = GrammarBuilder::Seq;
  static constexpr int kMaxDepth = 100;  // nested groups

  std::string Where(size_t at) const {
    const auto line = static_cast<size_t>(std::upper_bound(line_starts_.begin(), line_starts_.end(), at) - line_starts_.begin());
    const size_t col = at - line_starts_[line - 1] + 1;
    return "grammar line " + std::to_string(line) + ", column " + std::to_string(col);
  }
  [[noreturn]] void Error(size_t at, const std::string& what) const { Fail(Where(at), what); }

  // Blanks and comments; newlines too when `newlines`.
  void Skip(bool newlines) {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r'))) {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  static bool NameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }
  std::string Name() {
    const size_t at = pos_;
    while (pos_ < s_.size() && NameChar(s_[pos_])) ++pos_;
    return std::string(s_.substr(at, pos_ - at));
  }

  std::vector<Seq> Alternatives(int depth) {
    if (depth > kMaxDepth) Error(pos_, "groups nested deeper than " + std::to_string(kMaxDepth));
    std::vector<Seq> alts{Sequence(depth)};
    while (pos_ < s_.size() && s_[pos_] == '|') {
      ++pos_;
      Skip(true);
      alts.push_back(Sequence(depth));
    }
    return alts;
  }

  // Items up to '|', ')' or (outside groups) the end of the line.
  Seq Sequence(int depth) {
    Seq seq;
    size_t last_item = 0;  // where the last item's elements start in seq, for a postfix operator
    bool have_item = false;
    for (;;) {
      Skip(depth > 0);
      if (pos_ >= s_.size()) break;
      const char c = s_[pos_];
      const size_t at = pos_;
      if (c == '|' || c == ')' || c == '\n' || c == '\r') break;
      if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (!have_item) Error(at, std::string("'") + c + "' with nothing before it to repeat");
        Seq atom(seq.begin() + static_cast<std::ptrdiff_t>(last_item), seq.end());
        seq.resize(last_item);
        uint32_t min = 0;
        int64_t max = -1;
        ++pos_;
        if (c == '+') min = 1;
        if (c == '?') max = 1;
        if (c == '{') Counts(at, min, max);
        const Seq rep = b_.Repeat(rule_, std::move(atom), min, max);
        seq.insert(seq.end(), rep.begin(), rep.end());
        have_item = false;  // x** is an error, as in llama.cpp
        continue;
      }
      last_item = seq.size();
      have_item = true;
      if (c == '"') {
        ++pos_;
        std::string bytes;
        while (pos_ < s_.size() && s_[pos_] != '"') {
          if (s_[pos_] == '\n') Error(pos_, "unterminated literal");
          AppendUtf8(bytes, Char());
        }
        if (pos_ >= s_.size()) Error(at, "unterminated literal");
        ++pos_;
        const Seq lit = b_.Literal(bytes);
        seq.insert(seq.end(), lit.begin(), lit.end());
        if (lit.empty()) have_item = false;
      } else if (c == '<') {
        const size_t close = s_.find('>', pos_ + 1);
        if (close == std::string_view::npos || s_.substr(pos_, close - pos_).find('\n') != std::string_view::npos)
          Error(at, "unterminated special token ('<' without '>')");
        const Seq tok = b_.Literal(SpecialTokenBytes(s_.substr(pos_, close + 1 - pos_)));
        pos_ = close + 1;
        seq.insert(seq.end(), tok.begin(), tok.end());
      } else if (c == '[') {
        seq.push_back(ClassItem(at));
      } else if (c == '.') {
        ++pos_;
        seq.push_back(b_.Class(rule_, {}, /*negated=*/true));
      } else if (c == '(') {
        ++pos_;
        Skip(true);
        std::vector<Seq> inner = Alternatives(depth + 1);
        Skip(true);
        if (pos_ >= s_.size() || s_[pos_] != ')') Error(at, "'(' is never closed");
        ++pos_;
        seq.push_back(b_.Group(rule_, inner));
      } else if (NameChar(c)) {
        const std::string name = Name();
        // A name followed by ::= starts the next rule: this one ended on the previous line.
        seq.push_back({Grammar::Elem::kRule, b_.Ref(name, Where(at))});
      } else {
        Error(at, std::string("unexpected '") + c + "'");
      }
    }
    return seq;
  }

  // {m}, {m,}, {m,n}; pos_ is after '{'.
  void Counts(size_t at, uint32_t& min, int64_t& max) {
    const auto number = [&]() -> int64_t {
      Skip(false);
      const size_t from = pos_;
      int64_t v = 0;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])) && v <= 1000000) v = v * 10 + (s_[pos_++] - '0');
      Skip(false);
      return pos_ == from ? -1 : v;
    };
    const int64_t m = number();
    if (m < 0) Error(pos_, "expected a count after '{'");
    if (m > 10000) Error(at, "repetition counts above 10000 are not supported");
    min = static_cast<uint32_t>(m);
    max = m;
    if (pos_ < s_.size() && s_[pos_] == ',') {
      ++pos_;
      max = number();
      if (max > 10000) Error(at, "repetition counts above 10000 are not supported");
    }
    if (pos_ >= s_.size() || s_[pos_] != '}') Error(pos_, "expected '}' to close the repetition count");
    ++pos_;
    if (max >= 0 && max < m) Error(at, "repetition {" + std::to_string(m) + "," + std::to_string(max) + "} has max < min");
  }

  Grammar::Elem ClassItem(size_t at) {
    ++pos_;
    const bool negated = pos_ < s_.size() && s_[pos_] == '^';
    if (negated) ++pos_;
    std::vector<CodeRange> ranges;
    while (pos_ < s_.size() && s_[pos_] != ']') {
      if (s_[pos_] == '\n') Error(pos_, "unterminated character class");
      const uint32_t lo = Char();
      uint32_t hi = lo;
      if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
        ++pos_;
        const size_t hi_at = pos_;
        hi = Char();
        if (hi < lo) Error(hi_at, "range end below its start");
      }
      ranges.push_back({lo, hi});
    }
    if (pos_ >= s_.size()) Error(at, "unterminated character class");
    ++pos_;
    if (ranges.empty() && !negated) Error(at, "empty character class");
    return b_.Class(rule_, std::move(ranges), negated);
  }

  // One character of a literal or class: an escape or a UTF-8 sequence, as a code point.
  uint32_t Char() {
    const size_t at = pos_;
    const auto c = static_cast<unsigned char>(s_[pos_++]);
    if (c == '\\') {
      if (pos_ >= s_.size()) Error(at, "'\\' at the end of the text");
      const char e = s_[pos_++];
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': return static_cast<uint32_t>(e);
        case 'x': return Hex(at, 2);
        case 'u': return Hex(at, 4);
        case 'U': return Hex(at, 8);
        default: Error(at, std::string("unknown escape '\\") + e + "'");
      }
    }
    if (c < 0x80) return c;
    const int n = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (n == 0 || c >= 0xF5) Error(at, "invalid UTF-8");
    uint32_t cp = c & (0x3F >> (n - 1));
    for (int i = 1; i < n; ++i) {
      if (pos_ >= s_.size() || (static_cast<unsigned char>(s_[pos_]) & 0xC0) != 0x80) Error(at, "invalid UTF-8");
      cp = cp << 6 | (static_cast<unsigned char>(s_[pos_++]) & 0x3F);
    }
    if (cp > GrammarBuilder::kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) Error(at, "invalid UTF-8");
    return cp;
  }
  uint32_t Hex(size_t at, int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      if (pos_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[pos_])))
        Error(at, "expected " + std::to_string(digits) + " hex digits in the escape");
      const char h = s_[pos_++];
      v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    if (v > GrammarBuilder::kMaxCodePoint || (v >= 0xD800 && v <= 0xDFFF)) Error(at, "escape is not a Unicode scalar value");
    return v;
  }
  static void AppendUtf8(std::string& out, uint32_t c) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | c >> 6);
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | c >> 12);
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | c >> 18);
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }

  std::string_view s_;
  std::vector<size_t> line_starts_{0};  // byte offsets, for error places
  size_t pos_ = 0;
  std::string rule_;  // the rule being defined (generated rules are named after it)
  GrammarBuilder b_;
};

}  // namespace gbnf_detail

// Parses grammar text (syntax above) into a Grammar starting at `root`.
inline Grammar ParseGrammar(std::string_view text) { return gbnf_detail::Parser(text).Parse(); }

}  // namespace g4
