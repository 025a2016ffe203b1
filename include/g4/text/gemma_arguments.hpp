// A Gemma 4 tool call's arguments ({key:value,...} in the syntax of the chat template's format_argument macro)
// turned into compact JSON text as they arrive, piece by piece: what a streamed tool call sends as argument
// fragments, and (fed all at once) the arguments string of a whole call, so the two agree byte for byte.
//
// Syntax: <|"|>-quoted strings taken literally (braces, commas, markers inside are text), bare keys (any text up
// to ':' that holds no bracket, comma or quote) or quoted ones, JSON numbers (copied as written), true / false /
// null and Python's True / False / None, nested {...} and [...], whitespace between tokens. A string's bytes are
// escaped one by one (", \ and control characters), so any cut of the input gives the same text; bytes >= 0x80
// pass unchanged (the session's stream is UTF-8; the server's JSON writer replaces what is not). A key given twice
// is written twice (JSON readers keep the last). Input that cannot continue a valid object is a g4::Error at its
// first bad byte; the JSON written before it stands.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"

namespace g4 {

class GemmaArgumentsToJson {
 public:
  static constexpr std::string_view kQuote = "<|\"|>";
  static constexpr int kMaxNesting = 64;

  // Converts what can be decided of the input so far (held-back bytes plus `text`); returns the JSON written.
  std::string Feed(std::string_view text) {
    in_ += text;
    std::string out;
    size_t pos = 0;
    Run(out, pos);
    in_.erase(0, pos);
    offset_ += pos;
    return out;
  }

  // Whether the top-level object has closed (then only whitespace may follow).
  bool done() const { return expect_ == Expect::kEnd; }

 private:
  enum class Expect { kOpen, kKeyOrClose, kKey, kColon, kValue, kValueOrClose, kCommaOrClose, kEnd };
  enum class Atom { kNone, kString, kKeyString, kBareKey, kWord, kNumber };

  [[noreturn]] void Bad(const std::string& what, size_t pos) const {
    Fail("tool call", what + " at offset " + std::to_string(offset_ + pos) + " of the arguments");
  }
  static bool Space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
  static bool Letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
  static bool NumberChar(char c) { return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; }
  static bool EndsBareKey(char c) { return c == ':' || c == '}' || c == '{' || c == ',' || c == '[' || c == ']'; }
  // in_[pos..] is a proper prefix of the quote marker: the next piece decides.
  bool PartialQuote(size_t pos) const { return in_.size() - pos < kQuote.size() && kQuote.starts_with(std::string_view(in_).substr(pos)); }

  static void Escape(std::string_view s, std::string& out) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (u >= 0x20) {
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\b') {
        out += "\\b";
      } else if (c == '\f') {
        out += "\\f";
      } else {
        out += "\\u00";
        out += kHex[u >> 4];
        out += kHex[u & 15];
      }
    }
  }

  // A value (or key) has ended: what may come next.
  void AfterValue() { expect_ = stack_.empty() ? Expect::kEnd : Expect::kCommaOrClose; }

  void Open(char c, std::string& out, size_t pos) {
    if (static_cast<int>(stack_.size()) >= kMaxNesting)
      Bad("values nested deeper than " + std::to_string(kMaxNesting) + " levels", pos);
    stack_.push_back(c);
    out += c;
    expect_ = c == '{' ? Expect::kKeyOrClose : Expect::kValueOrClose;
  }

  // A complete word or number (atom_) as JSON.
  void EndAtom(std::string& out, size_t pos) {
    if (atom_kind_ == Atom::kWord) {
      if (atom_ == "true" || atom_ == "True") out += "true";
      else if (atom_ == "false" || atom_ == "False") out += "false";
      else if (atom_ == "null" || atom_ == "None") out += "null";
      else Bad("expected a value, got '" + atom_.substr(0, 32) + "'", pos);
    } else if (atom_kind_ == Atom::kNumber) {
      if (!JsonNumber(atom_)) Bad("'" + atom_.substr(0, 32) + "' is not a number", pos);
      out += atom_;
    } else {  // a bare key
      if (atom_.empty()) Bad("expected a key", pos);
      out += '"';
      Escape(atom_, out);
      out += "\":";
    }
    const bool key = atom_kind_ == Atom::kBareKey;
    atom_.clear();
    atom_kind_ = Atom::kNone;
    if (key) {
      expect_ = Expect::kValue;  // its ':' is the byte that ended it
    } else {
      AfterValue();
    }
  }

  // -?digits(.digits)?([eE][+-]?digits)? with no leading zero: what JSON readers accept.
  static bool JsonNumber(std::string_view s) {
    size_t i = 0;
    const auto digits = [&] {
      const size_t from = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      return i - from;
    };
    if (i < s.size() && s[i] == '-') ++i;
    const size_t start = i, n = digits();
    if (n == 0 || (n > 1 && s[start] == '0')) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      if (digits() == 0) return false;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (digits() == 0) return false;
    }
    return i == s.size();
  }

  void Run(std::string& out, size_t& pos) {
    while (pos < in_.size()) {
      const char c = in_[pos];
      switch (atom_kind_) {
        case Atom::kString:
        case Atom::kKeyString: {
          const size_t q = in_.find(kQuote, pos);
          size_t stop = q;
          if (q == std::string::npos) {  // hold back a tail that may become the closing quote
            stop = in_.size();
            for (size_t n = std::min(in_.size() - pos, kQuote.size() - 1); n > 0; --n)
              if (kQuote.starts_with(std::string_view(in_).substr(in_.size() - n))) {
                stop = in_.size() - n;
                break;
              }
          }
          Escape(std::string_view(in_).substr(pos, stop - pos), out);
          pos = stop;
          if (q == std::string::npos) return;
          pos += kQuote.size();
          out += '"';
          const bool key = atom_kind_ == Atom::kKeyString;
          atom_kind_ = Atom::kNone;
          if (key) {
            expect_ = Expect::kColon;
          } else {
            AfterValue();
          }
          continue;
        }
        case Atom::kBareKey:
          if (in_.compare(pos, kQuote.size(), kQuote) == 0 || (EndsBareKey(c) && c != ':')) Bad("expected ':' after the key", pos);
          if (PartialQuote(pos)) return;
          if (c == ':') {
            EndAtom(out, pos);
            ++pos;
          } else {
            atom_ += c;
            ++pos;
          }
          continue;
        case Atom::kWord:
        case Atom::kNumber:
          if ((atom_kind_ == Atom::kWord && Letter(c)) || (atom_kind_ == Atom::kNumber && NumberChar(c))) {
            atom_ += c;
            ++pos;
          } else {
            EndAtom(out, pos);  // c is looked at again in the new state
          }
          continue;
        case Atom::kNone:
          break;
      }
      if (Space(c)) {
        ++pos;
        continue;
      }
      switch (expect_) {
        case Expect::kOpen:
          if (c != '{') Bad("expected '{'", pos);
          Open(c, out, pos);
          ++pos;
          break;
        case Expect::kKeyOrClose:
        case Expect::kKey:
          if (c == '}' && expect_ == Expect::kKeyOrClose) {
            Close(c, out, pos);
          } else if (in_.compare(pos, kQuote.size(), kQuote) == 0) {
            out += '"';
            atom_kind_ = Atom::kKeyString;
            pos += kQuote.size();
            continue;
          } else if (PartialQuote(pos)) {
            return;
          } else if (EndsBareKey(c)) {
            Bad("expected a key", pos);
          } else {
            atom_kind_ = Atom::kBareKey;
            continue;
          }
          ++pos;
          break;
        case Expect::kColon:
          if (c != ':') Bad("expected ':'", pos);
          out += ':';
          expect_ = Expect::kValue;
          ++pos;
          break;
        case Expect::kValue:
        case Expect::kValueOrClose:
          if (c == ']' && expect_ == Expect::kValueOrClose) {
            Close(c, out, pos);
          } else if (c == '{' || c == '[') {
            Open(c, out, pos);
          } else if (in_.compare(pos, kQuote.size(), kQuote) == 0) {
            out += '"';
            atom_kind_ = Atom::kString;
            pos += kQuote.size();
            continue;
          } else if (PartialQuote(pos)) {
            return;
          } else if (Letter(c) || c == '-' || (c >= '0' && c <= '9')) {
            atom_kind_ = Letter(c) ? Atom::kWord : Atom::kNumber;
            continue;
          } else {
            Bad("expected a value", pos);
          }
          ++pos;
          break;
        case Expect::kCommaOrClose:
          if (c == ',') {
            out += ',';
            expect_ = stack_.back() == '{' ? Expect::kKey : Expect::kValue;
          } else if (c == '}' || c == ']') {
            Close(c, out, pos);
          } else {
            Bad(std::string("expected ',' or '") + (stack_.back() == '{' ? '}' : ']') + "'", pos);
          }
          ++pos;
          break;
        case Expect::kEnd:
          Bad("text after the arguments' closing '}'", pos);
      }
    }
  }

  void Close(char c, std::string& out, size_t pos) {
    if (stack_.empty() || stack_.back() != (c == '}' ? '{' : '[')) Bad(std::string("unexpected '") + c + "'", pos);
    stack_.pop_back();
    out += c;
    AfterValue();
  }

  std::string in_;             // input not yet consumed (a cut marker, or nothing)
  size_t offset_ = 0;          // input consumed before in_ (for error messages)
  Expect expect_ = Expect::kOpen;
  Atom atom_kind_ = Atom::kNone;
  std::string atom_;           // a bare key, word or number being read
  std::vector<char> stack_;    // the open '{' and '['
};

}  // namespace g4
