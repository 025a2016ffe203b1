// Gemma 4's answer markup -> an OpenAI-style message, incrementally:
//
//   <|channel>thought\n...<channel|>           reasoning_content
//   <|tool_call>call:NAME{key:value,...}<tool_call|>   tool_calls[i] = {id, type, function: {name, arguments}}
//   anything else                               content
//
// Values use Gemma's syntax, the one the template's format_argument macro writes: <|"|>-quoted strings taken
// literally (braces, commas and markers inside are text), bare or quoted keys, numbers, true/false/null (and
// Python's None, which the macro prints for null), nested {...} and [...]. Arguments come out as a JSON string.
//
// Fed text piece by piece (tokens), the parser never emits part of a marker or a <|"|> as content: a tail that
// could still become a marker is held back until the next piece decides. A tool call is held until its closing
// <tool_call|> (found by a scan that skips quoted strings) and then emitted as OpenAI streams one: a delta with
// id and name, then its arguments. A call that does not parse (bad syntax, nesting deeper than kMaxNesting, an
// undeclared function when the tool names are given, or no end before Finish) comes back as content, verbatim,
// with a warning. End-of-turn markers (<turn|>, <|tool_response>) are dropped; a <|"|> outside a call reads as '"'.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"

namespace g4 {

struct ToolCallDelta {
  int index = 0;
  std::string id, name;  // in the first delta of a call only
  std::string arguments;  // a fragment of the arguments' JSON text
};

struct MessageDelta {
  std::string content, reasoning_content;
  std::vector<ToolCallDelta> tool_calls;
  std::vector<std::string> warnings;

  bool empty() const { return content.empty() && reasoning_content.empty() && tool_calls.empty() && warnings.empty(); }
};

namespace tool_call_detail {

using Json = nlohmann::ordered_json;

inline constexpr std::string_view kQuote = "<|\"|>";
inline constexpr std::string_view kCallOpen = "<|tool_call>", kCallClose = "<tool_call|>";
inline constexpr std::string_view kChannelOpen = "<|channel>", kChannelClose = "<channel|>";
inline constexpr std::string_view kTextMarkers[] = {kCallOpen, kChannelOpen, kChannelClose, kQuote,
                                                    "<turn|>", "<|tool_response>"};
inline constexpr int kMaxNesting = 64;

// Gemma's value syntax -> JSON. Throws g4::Error on anything else.
class ValueParser {
 public:
  explicit ValueParser(std::string_view s) : s_(s) {}

  Json Object(int depth = 0) {
    Expect('{');
    Json out = Json::object();
    SkipSpace();
    if (Skip('}')) return out;
    for (;;) {
      SkipSpace();
      std::string key = Key();
      Expect(':');
      SkipSpace();
      out[key] = Value(depth + 1);
      SkipSpace();
      if (Skip('}')) return out;
      Expect(',');
    }
  }

  bool AtEnd() {
    SkipSpace();
    return pos_ == s_.size();
  }

 private:
  [[noreturn]] void Bad(const std::string& what) const {
    Fail("tool call", what + " at offset " + std::to_string(pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  bool Skip(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void Expect(char c) {
    if (!Skip(c)) Bad(std::string("expected '") + c + "'");
  }
  bool StartsWith(std::string_view t) const { return s_.substr(pos_).starts_with(t); }

  std::string QuotedString() {
    pos_ += kQuote.size();
    const size_t end = s_.find(kQuote, pos_);
    if (end == std::string_view::npos) Bad("unterminated <|\"|> string");
    std::string out(s_.substr(pos_, end - pos_));
    pos_ = end + kQuote.size();
    return out;
  }

  std::string Key() {
    if (StartsWith(kQuote)) return QuotedString();
    const size_t begin = pos_;
    while (pos_ < s_.size() && s_[pos_] != ':' && s_[pos_] != '}' && s_[pos_] != '{' && s_[pos_] != ',' &&
           s_[pos_] != '[' && s_[pos_] != ']' && !StartsWith(kQuote))
      ++pos_;
    if (pos_ == begin) Bad("expected a key");
    return std::string(s_.substr(begin, pos_ - begin));
  }

  Json Value(int depth) {
    if (depth > kMaxNesting) Bad("values nested deeper than " + std::to_string(kMaxNesting) + " levels");
    if (StartsWith(kQuote)) return QuotedString();
    if (pos_ < s_.size() && s_[pos_] == '{') return Object(depth);
    if (Skip('[')) {
      Json out = Json::array();
      SkipSpace();
      if (Skip(']')) return out;
      for (;;) {
        SkipSpace();
        out.push_back(Value(depth + 1));
        SkipSpace();
        if (Skip(']')) return out;
        Expect(',');
      }
    }
    for (const auto& [word, value] : {std::pair<std::string_view, Json>{"true", true}, {"false", false},
                                      {"null", nullptr}, {"True", true}, {"False", false}, {"None", nullptr}}) {
      if (StartsWith(word)) {
        pos_ += word.size();
        return value;
      }
    }
    return Number();
  }

  // JSON's number syntax: an integer stays one where it fits, anything else is a double.
  Json Number() {
    const size_t begin = pos_;
    const auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    Skip('-');
    if (!digits()) Bad("expected a value");
    bool integral = true;
    if (Skip('.')) {
      integral = false;
      if (!digits()) Bad("expected digits after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (!Skip('+')) Skip('-');
      if (!digits()) Bad("expected an exponent");
    }
    const std::string text(s_.substr(begin, pos_ - begin));
    if (integral) {
      errno = 0;
      if (text[0] == '-') {
        const long long v = std::strtoll(text.c_str(), nullptr, 10);
        if (errno == 0) return v;
      } else {
        const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
        if (errno == 0) return v;
      }
    }
    return std::strtod(text.c_str(), nullptr);
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// Length of the longest tail of s that is a proper prefix of one of the markers (text that must wait).
template <size_t N>
size_t PartialMarkerTail(std::string_view s, const std::string_view (&markers)[N]) {
  size_t best = 0;
  for (const std::string_view m : markers)
    for (size_t n = std::min(s.size(), m.size() - 1); n > best; --n)
      if (s.substr(s.size() - n) == m.substr(0, n)) {
        best = n;
        break;
      }
  return best;
}

}  // namespace tool_call_detail

class ToolCallParser {
 public:
  // tool_names: the declared functions; a call to another is returned as text. Empty: any name.
  explicit ToolCallParser(std::set<std::string> tool_names = {}, std::string id_prefix = "call_")
      : tool_names_(std::move(tool_names)), id_prefix_(std::move(id_prefix)) {}

  MessageDelta Feed(std::string_view text) {
    buffer_ += text;
    MessageDelta out;
    Process(out, /*final=*/false);
    return out;
  }

  // The end of the output: what was held back is resolved (an unfinished call becomes text).
  MessageDelta Finish() {
    MessageDelta out;
    Process(out, /*final=*/true);
    if (state_ == State::kCall) {  // the unfinished call, verbatim
      out.warnings.push_back("tool call: no closing <tool_call|>; returned as text");
      out.content += tool_call_detail::kCallOpen;
      state_ = State::kText;
    }
    out.content += buffer_;
    buffer_.clear();
    return out;
  }

  // The whole output at once: {"content", "reasoning_content", "tool_calls"} with warnings beside.
  static nlohmann::ordered_json Parse(std::string_view text, std::vector<std::string>* warnings = nullptr,
                                      std::set<std::string> tool_names = {}) {
    ToolCallParser p(std::move(tool_names));
    MessageDelta all = p.Feed(text);
    MessageDelta last = p.Finish();
    all.content += last.content;
    all.reasoning_content += last.reasoning_content;
    all.tool_calls.insert(all.tool_calls.end(), last.tool_calls.begin(), last.tool_calls.end());
    all.warnings.insert(all.warnings.end(), last.warnings.begin(), last.warnings.end());
    if (warnings) *warnings = all.warnings;
    return Message(all);
  }

  // Deltas accumulated into one message (as a client joins a stream).
  static nlohmann::ordered_json Message(const MessageDelta& all) {
    nlohmann::ordered_json calls = nlohmann::ordered_json::array();
    for (const ToolCallDelta& d : all.tool_calls) {
      if (!d.id.empty())
        calls.push_back({{"id", d.id}, {"type", "function"}, {"function", {{"name", d.name}, {"arguments", ""}}}});
      calls[static_cast<size_t>(d.index)]["function"]["arguments"] =
          calls[static_cast<size_t>(d.index)]["function"]["arguments"].get<std::string>() + d.arguments;
    }
    return {{"content", all.content}, {"reasoning_content", all.reasoning_content}, {"tool_calls", calls}};
  }

 private:
  enum class State { kText, kThoughtHeader, kThought, kCall };

  // Consumes buffer_ from the front; what is consumed is erased once at the end (erasing per marker would make
  // long runs of '<' quadratic).
  void Process(MessageDelta& out, bool final) {
    size_t pos = 0;
    Step(out, final, pos);
    buffer_.erase(0, pos);
    scan_ -= std::min(scan_, pos);
  }

  void Step(MessageDelta& out, bool final, size_t& pos) {
    using namespace tool_call_detail;
    for (;;) {
      const std::string_view rest = std::string_view(buffer_).substr(pos);
      switch (state_) {
        case State::kText: {
          const size_t lt = rest.find('<');
          out.content += rest.substr(0, lt);
          if (lt == std::string_view::npos) {
            pos = buffer_.size();
            return;
          }
          pos += lt;
          const std::string_view tail = rest.substr(lt);
          std::string_view marker;
          for (const std::string_view m : kTextMarkers)
            if (tail.starts_with(m)) marker = m;
          if (marker.empty()) {
            if (!final && PartialMarkerTail(tail, kTextMarkers) == tail.size()) return;  // wait for more
            out.content += '<';
            ++pos;
            continue;
          }
          pos += marker.size();
          if (marker == kQuote) out.content += '"';
          if (marker == kChannelOpen) state_ = State::kThoughtHeader;
          if (marker == kCallOpen) {
            state_ = State::kCall;
            scan_ = pos;
            in_string_ = false;
          }
          continue;
        }
        case State::kThoughtHeader: {
          // "<|channel>thought\n": the channel's name and the whitespace after it are not reasoning.
          constexpr std::string_view kName = "thought";
          if (!final && rest.size() < kName.size() && kName.starts_with(rest)) return;
          if (rest.starts_with(kName)) {
            const size_t text = rest.find_first_not_of(" \t\r\n", kName.size());
            if (text == std::string_view::npos && !final) return;
            pos += text == std::string_view::npos ? rest.size() : text;
          }
          state_ = State::kThought;
          continue;
        }
        case State::kThought: {
          const size_t close = rest.find(kChannelClose);
          const std::string_view markers[] = {kChannelClose, kQuote};
          const size_t keep = close != std::string_view::npos || final ? 0 : PartialMarkerTail(rest, markers);
          const std::string_view text = rest.substr(0, close != std::string_view::npos ? close : rest.size() - keep);
          for (size_t from = 0;;) {  // a <|"|> in a thought reads as '"'
            const size_t at = text.find(kQuote, from);
            out.reasoning_content += text.substr(from, at - from);
            if (at == std::string_view::npos) break;
            out.reasoning_content += '"';
            from = at + kQuote.size();
          }
          if (close == std::string_view::npos) {
            pos += rest.size() - keep;
            return;
          }
          pos += close + kChannelClose.size();
          state_ = State::kText;
          continue;
        }
        case State::kCall: {
          const std::optional<size_t> end = FindCallEnd();
          if (!end) return;
          EmitCall(out, buffer_.substr(pos, *end - pos));
          pos = *end + kCallClose.size();
          state_ = State::kText;
          continue;
        }
      }
    }
  }

  // Where the call's <tool_call|> starts, skipping <|"|> strings; resumes where the last piece ended.
  std::optional<size_t> FindCallEnd() {
    using namespace tool_call_detail;
    while (scan_ < buffer_.size()) {
      const std::string_view rest = std::string_view(buffer_).substr(scan_);
      if (rest.starts_with(kQuote)) {
        in_string_ = !in_string_;
        scan_ += kQuote.size();
        continue;
      }
      if (!in_string_ && rest.starts_with(kCallClose)) return scan_;
      const bool could_grow = rest.size() < std::max(kQuote.size(), kCallClose.size()) &&
                              (kQuote.starts_with(rest) || (!in_string_ && kCallClose.starts_with(rest)));
      if (could_grow) return std::nullopt;  // a marker may be cut here: wait for the next piece
      ++scan_;
    }
    return std::nullopt;
  }

  void EmitCall(MessageDelta& out, const std::string& body) {
    using namespace tool_call_detail;
    std::string name;
    std::string arguments;
    try {
      Require(body.starts_with("call:"), "tool call", "does not start with 'call:'");
      const size_t brace = body.find('{');
      Require(brace != std::string::npos, "tool call", "has no '{' after the function name");
      name = body.substr(5, brace - 5);
      Require(!name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") ==
                                   std::string::npos,
              "tool call", "function name '" + name + "' is not a name");
      Require(tool_names_.empty() || tool_names_.count(name), "tool call", "function '" + name + "' was not declared");
      ValueParser parser(std::string_view(body).substr(brace));
      const Json args = parser.Object();
      Require(parser.AtEnd(), "tool call", "text after the arguments' closing '}'");
      arguments = args.dump(-1, ' ', false, Json::error_handler_t::replace);
    } catch (const Error& e) {
      out.warnings.push_back(std::string(e.what()) + "; returned as text");
      out.content += std::string(tool_call_detail::kCallOpen) + body + std::string(tool_call_detail::kCallClose);
      return;
    }
    const int index = calls_++;
    out.tool_calls.push_back({index, id_prefix_ + std::to_string(index), name, ""});
    out.tool_calls.push_back({index, "", "", std::move(arguments)});
  }

  std::set<std::string> tool_names_;
  std::string id_prefix_;
  std::string buffer_;  // text not yet emitted
  State state_ = State::kText;
  size_t scan_ = 0;       // kCall: how far into buffer_ FindCallEnd has looked
  bool in_string_ = false;  // kCall: whether scan_ is inside a <|"|> string
  int calls_ = 0;
};

}  // namespace g4
