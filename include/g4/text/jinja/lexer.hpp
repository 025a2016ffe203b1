// Template text -> tokens, as Jinja2's lexer cuts it with Hugging Face's settings (trim_blocks and lstrip_blocks
// on): text between tags, "{{ ... }}" and "{% ... %}" with their expression tokens, "{# ... #}" dropped.
// Whitespace control: "{%-" strips the whitespace before a tag, "-%}" the whitespace after it; trim_blocks drops
// the first newline after a block or comment tag; lstrip_blocks drops the spaces and tabs before a block or
// comment tag that starts its line ("{%+" keeps them). Newlines are normalised to "\n" and one trailing newline of
// the template is dropped, as Jinja2 does by default.
#pragma once
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/text/jinja/python_str.hpp"

namespace g4::jinja {

struct Position {
  int line = 1, column = 1;
  std::string Text() const { return "line " + std::to_string(line) + ", column " + std::to_string(column); }
};

[[noreturn]] inline void FailAt(Position at, const std::string& what) {
  Fail("chat template", at.Text() + ": " + what);
}

struct Token {
  enum class Kind { kData, kVariableBegin, kVariableEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Kind kind;
  std::string text;  // data, a name, an operator, a string's decoded value, a number's digits
  Position at;
};

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(Normalize(source)) {}

  std::vector<Token> Tokenize() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      const size_t at = NextTag(pos_);
      std::string text = src_.substr(pos_, at - pos_);
      const Position text_at = PositionOf(pos_);
      if (at == src_.size()) {
        Emit(Token::Kind::kData, std::move(text), text_at);
        break;
      }
      const char kind = src_[at + 1];
      const char sign = at + 2 < src_.size() ? src_[at + 2] : '\0';
      if (sign == '-') {
        text.resize(WithoutTrailingSpace(text));
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks
        const size_t line_start = text.rfind('\n') + 1;  // 0 without a newline
        if ((line_start > 0 || line_starting) && text.find_first_not_of(" \t", line_start) == std::string::npos)
          text.resize(line_start);
      }
      Emit(Token::Kind::kData, std::move(text), text_at);
      pos_ = at + 2 + (sign == '-' || sign == '+');
      if (kind == '#')
        SkipComment(at);
      else
        LexTag(kind, at);
      line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    tokens_.push_back({Token::Kind::kEof, "", PositionOf(src_.size())});
    return std::move(tokens_);
  }

 private:
  static std::string Normalize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\r') {
        out += '\n';
        if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      } else {
        out += s[i];
      }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  size_t NextTag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1))
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return src_.size();
  }

  Position PositionOf(size_t offset) {
    if (offset < scanned_) scanned_ = 0, at_ = Position{};
    for (; scanned_ < offset; ++scanned_) {
      if (src_[scanned_] == '\n') {
        ++at_.line;
        at_.column = 1;
      } else {
        ++at_.column;
      }
    }
    return at_;
  }

  void Emit(Token::Kind kind, std::string text, Position at) {
    if (kind == Token::Kind::kData && text.empty()) return;
    tokens_.push_back({kind, std::move(text), at});
  }

  // After a tag: "-" swallows all whitespace, "+" nothing, otherwise trim_blocks takes one newline (block tags and
  // comments only).
  void AfterTag(char sign, bool trim_newline) {
    if (sign == '-')
      pos_ += LeadingSpace(std::string_view(src_).substr(pos_));
    else if (sign != '+' && trim_newline && pos_ < src_.size() && src_[pos_] == '\n')
      ++pos_;
  }

  void SkipComment(size_t start) {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) FailAt(PositionOf(start), "unterminated comment");
    const char sign = end > pos_ ? src_[end - 1] : '\0';
    pos_ = end + 2;
    AfterTag(sign, true);
  }

  void LexTag(char kind, size_t start) {
    const bool block = kind == '%';
    const std::string_view close = block ? "%}" : "}}";
    Emit(block ? Token::Kind::kBlockBegin : Token::Kind::kVariableBegin, "", PositionOf(start));
    int open_brackets = 0;  // the tag ends only where brackets balance: {{ {'a': {}} }} is one tag
    for (;;) {
      while (pos_ < src_.size() && (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n')) ++pos_;
      if (pos_ >= src_.size()) FailAt(PositionOf(start), std::string("unterminated tag, expected '") + std::string(close) + "'");
      const std::string_view rest = std::string_view(src_).substr(pos_);
      const bool signed_close = (rest[0] == '-' || (block && rest[0] == '+')) && rest.substr(1, 2) == close;
      if (open_brackets == 0 && (signed_close || rest.substr(0, 2) == close)) {
        Emit(block ? Token::Kind::kBlockEnd : Token::Kind::kVariableEnd, "", PositionOf(pos_));
        pos_ += signed_close ? 3 : 2;
        AfterTag(signed_close ? rest[0] : '\0', block);
        return;
      }
      LexExpressionToken();
      const Token& t = tokens_.back();
      if (t.kind == Token::Kind::kOp && (t.text == "(" || t.text == "[" || t.text == "{")) ++open_brackets;
      if (t.kind == Token::Kind::kOp && (t.text == ")" || t.text == "]" || t.text == "}") && open_brackets > 0) --open_brackets;
    }
  }

  void LexExpressionToken() {
    const Position at = PositionOf(pos_);
    const char c = src_[pos_];
    const auto is_digit = [&](size_t i) { return i < src_.size() && src_[i] >= '0' && src_[i] <= '9'; };
    if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      const size_t b = pos_;
      while (pos_ < src_.size() && (src_[pos_] == '_' || std::isalnum(static_cast<unsigned char>(src_[pos_])))) ++pos_;
      Emit(Token::Kind::kName, src_.substr(b, pos_ - b), at);
    } else if (is_digit(pos_)) {
      const size_t b = pos_;
      bool is_float = false;
      while (is_digit(pos_) || (src_[pos_] == '_' && is_digit(pos_ + 1))) ++pos_;
      if (pos_ < src_.size() && src_[pos_] == '.' && is_digit(pos_ + 1)) {
        is_float = true;
        for (++pos_; is_digit(pos_);) ++pos_;
      }
      if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
        const size_t sign = pos_ + 1 < src_.size() && (src_[pos_ + 1] == '+' || src_[pos_ + 1] == '-') ? 2 : 1;
        if (is_digit(pos_ + sign)) {
          is_float = true;
          for (pos_ += sign; is_digit(pos_);) ++pos_;
        }
      }
      std::string digits;
      for (const char d : std::string_view(src_).substr(b, pos_ - b))
        if (d != '_') digits += d;
      Emit(is_float ? Token::Kind::kFloat : Token::Kind::kInt, std::move(digits), at);
    } else if (c == '\'' || c == '"') {
      Emit(Token::Kind::kString, LexString(at), at);
    } else {
      static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                         ">",  "=",  "(",  ")",  "[",  "]",  "{", "}", ",", ".", ":", "|"};
      for (const char* op : kOps) {
        if (std::string_view(src_).substr(pos_).starts_with(op)) {
          pos_ += std::string_view(op).size();
          Emit(Token::Kind::kOp, op, at);
          return;
        }
      }
      FailAt(at, std::string("unexpected character '") + c + "'");
    }
  }

  // A quoted string with Python's escapes (\n, \t, \xHH, \uXXXX, ...); an unknown escape stays as written.
  std::string LexString(Position at) {
    const char quote = src_[pos_++];
    std::string out;
    for (;;) {
      if (pos_ >= src_.size()) FailAt(at, "unterminated string");
      const char c = src_[pos_++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) FailAt(at, "unterminated string");
      const char e = src_[pos_++];
      switch (e) {
        case '\n': break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\\': case '\'': case '"': out += e; break;
        case 'x': AppendUtf8(out, HexEscape(2, at)); break;
        case 'u': AppendUtf8(out, HexEscape(4, at)); break;
        case 'U': AppendUtf8(out, HexEscape(8, at)); break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k)
              v = v * 8 + static_cast<uint32_t>(src_[pos_++] - '0');
            AppendUtf8(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
  }

  uint32_t HexEscape(int digits, Position at) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k, ++pos_) {
      const char h = pos_ < src_.size() ? src_[pos_] : '\0';
      const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) FailAt(at, "truncated \\x, \\u or \\U escape in a string");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) FailAt(at, "escape is not a Unicode scalar value");
    return v;
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string src_;
  size_t pos_ = 0;
  size_t scanned_ = 0;  // PositionOf's cursor: positions are mostly asked for in increasing order
  Position at_;
  std::vector<Token> tokens_;
};

}  // namespace g4::jinja
