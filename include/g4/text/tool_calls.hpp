// Gemma 4's answer markup -> an OpenAI-style message, incrementally:
//
//   <|channel>thought\n...<channel|>           reasoning_content
//   <|tool_call>call:NAME{key:value,...}<tool_call|>   tool_calls[i] = {id, type, function: {name, arguments}}
//   anything else                               content
//
// Values use Gemma's syntax, the one the template's format_argument macro writes (g4/text/gemma_arguments.hpp);
// arguments come out as a JSON string.
//
// Fed text piece by piece (tokens), the parser never emits part of a marker or a <|"|> as content: a tail that
// could still become a marker is held back until the next piece decides. A tool call streams as OpenAI streams
// one: once its name is complete (the '{' after it), a delta with index, id and name; then argument fragments as
// the model writes them (their concatenation is the whole call's arguments string, byte for byte). A call that
// does not parse (bad syntax, nesting deeper than GemmaArgumentsToJson::kMaxNesting, an undeclared function when
// the tool names are given, tool_choice "none", or no end before Finish) comes back as content, verbatim, with a
// warning; if its id and name were already out, a `withdrawn` delta tells that the call is not part of the message
// (a stream cannot take back what it sent; Message() drops it). End-of-turn markers (<turn|>, <|tool_response>)
// are dropped; a <|"|> outside a call reads as '"'.
#pragma once
#include <algorithm>
#include <initializer_list>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/model/logprobs.hpp"
#include "g4/text/gemma_arguments.hpp"

namespace g4 {

struct ToolCallDelta {
  int index = 0;
  std::string id, name;  // in the first delta of a call only
  std::string arguments;  // a fragment of the arguments' JSON text
  bool withdrawn = false;  // the call at index turned out malformed: its text came back as content
};

struct MessageDelta {
  std::string content, reasoning_content;
  std::vector<ToolCallDelta> tool_calls;
  std::vector<std::string> warnings;
  std::vector<TokenLogprob> logprobs;  // the session's: of the tokens generated since the previous delta, when asked

  bool empty() const {
    return content.empty() && reasoning_content.empty() && tool_calls.empty() && warnings.empty() && logprobs.empty();
  }
};

namespace tool_call_detail {

inline constexpr std::string_view kQuote = "<|\"|>";
inline constexpr std::string_view kCallOpen = "<|tool_call>", kCallClose = "<tool_call|>";
inline constexpr std::string_view kChannelOpen = "<|channel>", kChannelClose = "<channel|>";
inline constexpr std::string_view kTextMarkers[] = {kCallOpen, kChannelOpen, kChannelClose, kQuote,
                                                    "<turn|>", "<|tool_response>"};

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

// What a request allows its answer to call (from its tools, tool_choice and parallel_tool_calls:
// RequestToolChoice in g4/text/chat_request.hpp).
struct ToolChoice {
  // "auto" over these names.
  ToolChoice(std::set<std::string> declared = {}) : names(std::move(declared)) {}  // NOLINT(google-explicit-constructor)
  ToolChoice(std::initializer_list<std::string> declared) : names(declared) {}    // NOLINT(google-explicit-constructor)

  std::set<std::string> names;  // the declared functions; a call to another is text. Empty: any name
  bool allowed = true;          // false (tool_choice "none"): every call in the answer is text
  std::string forced;           // a named tool_choice: the prompt ends with <|tool_call>call:NAME{ (the answer
                                // continues that call, and the parser reads it as the answer's start)
  size_t max_calls = SIZE_MAX;  // parallel_tool_calls false: 1, and the answer ends after that call
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolChoice choice = {}, std::string id_prefix = "call_")
      : choice_(std::move(choice)), id_prefix_(std::move(id_prefix)) {
    if (!choice_.forced.empty()) buffer_ = std::string(tool_call_detail::kCallOpen) + "call:" + choice_.forced + "{";
  }

  MessageDelta Feed(std::string_view text) {
    if (!ended()) buffer_ += text;
    MessageDelta out;
    Process(out, /*final=*/false);
    return out;
  }

  // The end of the output: what was held back is resolved (an unfinished call becomes text).
  MessageDelta Finish() {
    MessageDelta out;
    Process(out, /*final=*/true);
    if (state_ == State::kCall) EndCall(out, /*closed=*/false);
    out.content += buffer_;
    buffer_.clear();
    return out;
  }

  // Whether the answer is complete: max_calls calls were made (what follows is not read).
  bool ended() const { return state_ == State::kEnded; }

  // The whole output at once: {"content", "reasoning_content", "tool_calls"} with warnings beside.
  static nlohmann::ordered_json Parse(std::string_view text, std::vector<std::string>* warnings = nullptr, ToolChoice choice = {}) {
    ToolCallParser p(std::move(choice));
    MessageDelta all = p.Feed(text);
    MessageDelta last = p.Finish();
    all.content += last.content;
    all.reasoning_content += last.reasoning_content;
    all.tool_calls.insert(all.tool_calls.end(), last.tool_calls.begin(), last.tool_calls.end());
    all.warnings.insert(all.warnings.end(), last.warnings.begin(), last.warnings.end());
    if (warnings) *warnings = all.warnings;
    return Message(all);
  }

  // Deltas accumulated into one message (as a client joins a stream), withdrawn calls left out.
  static nlohmann::ordered_json Message(const MessageDelta& all) {
    std::map<int, nlohmann::ordered_json> calls;
    for (const ToolCallDelta& d : all.tool_calls) {
      if (d.withdrawn) {
        calls.erase(d.index);
        continue;
      }
      if (!d.id.empty())
        calls[d.index] = {{"id", d.id}, {"type", "function"}, {"function", {{"name", d.name}, {"arguments", ""}}}};
      const auto it = calls.find(d.index);
      if (it != calls.end()) it->second["function"]["arguments"].get_ref<std::string&>() += d.arguments;
    }
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (auto& [index, call] : calls) out.push_back(std::move(call));
    return {{"content", all.content}, {"reasoning_content", all.reasoning_content}, {"tool_calls", std::move(out)}};
  }

 private:
  enum class State { kText, kThoughtHeader, kThought, kCall, kEnded };

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
            raw_.clear();
            header_.clear();
            arguments_.reset();
            failure_.clear();
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
          // The call's text up to its end (or as far as no marker may be cut) goes to the call as it comes.
          const std::optional<size_t> end = FindCallEnd();
          const size_t limit = end ? *end : scan_;
          ReadCall(out, std::string_view(buffer_).substr(pos, limit - pos));
          pos = limit;
          if (!end) return;
          pos += kCallClose.size();
          EndCall(out, /*closed=*/true);
          continue;
        }
        case State::kEnded:
          pos = buffer_.size();
          return;
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

  // More of the call's text: its header ("call:NAME{"), then its arguments, converted as they come. The first
  // error makes the call text (failure_), read on to its end.
  void ReadCall(MessageDelta& out, std::string_view text) {
    raw_ += text;
    if (!failure_.empty() || text.empty()) return;
    try {
      if (!arguments_) {
        const size_t brace = text.find('{');
        header_ += text.substr(0, brace);
        CheckHeader(brace != std::string_view::npos);
        if (brace == std::string_view::npos) return;
        arguments_.emplace();
        const int index = calls_;
        out.tool_calls.push_back({index, id_prefix_ + std::to_string(index), header_.substr(5), "", false});
        text.remove_prefix(brace);
      }
      std::string json = arguments_->Feed(text);
      if (!json.empty()) out.tool_calls.push_back({calls_, "", "", std::move(json), false});
    } catch (const Error& e) {
      failure_ = e.what();
    }
  }

  // "call:NAME" so far; complete: its '{' has come.
  void CheckHeader(bool complete) const {
    constexpr std::string_view kCall = "call:";
    if (!choice_.allowed) Fail("tool call", "tool_choice is \"none\"");
    const std::string_view h = header_;
    Require(h.substr(0, kCall.size()) == kCall.substr(0, std::min(h.size(), kCall.size())), "tool call",
            "does not start with 'call:'");
    const std::string_view name = h.size() > kCall.size() ? h.substr(kCall.size()) : std::string_view();
    Require(name.size() <= 256, "tool call", "function name longer than 256 bytes");
    Require(name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == std::string_view::npos,
            "tool call", "function name '" + std::string(name.substr(0, 64)) + "' is not a name");
    if (!complete) return;
    Require(h.size() > kCall.size(), "tool call", "has no function name");
    Require(choice_.names.empty() || choice_.names.count(std::string(name)), "tool call",
            "function '" + std::string(name) + "' was not declared");
  }

  // The call's end (closed: its <tool_call|> came). A call that did not parse becomes text.
  void EndCall(MessageDelta& out, bool closed) {
    using namespace tool_call_detail;
    if (failure_.empty() && !closed) failure_ = "tool call: no closing <tool_call|>";
    if (failure_.empty() && !arguments_) failure_ = "tool call: has no '{' after the function name";
    if (failure_.empty() && !arguments_->done()) failure_ = "tool call: the arguments end before their closing '}'";
    state_ = State::kText;
    if (failure_.empty()) {
      ++calls_;
      if (++made_ >= choice_.max_calls) state_ = State::kEnded;
      return;
    }
    if (arguments_) out.tool_calls.push_back({calls_++, "", "", "", true});  // its id and name are out: withdrawn
    out.warnings.push_back(failure_ + "; returned as text");
    out.content += std::string(kCallOpen) + raw_ + (closed ? std::string(kCallClose) : std::string());
    raw_.clear();
  }

  ToolChoice choice_;
  std::string id_prefix_;
  std::string buffer_;  // text not yet emitted
  State state_ = State::kText;
  size_t scan_ = 0;       // kCall: how far into buffer_ FindCallEnd has looked
  bool in_string_ = false;  // kCall: whether scan_ is inside a <|"|> string
  // kCall: the call's text so far, its "call:NAME" header, its arguments once the '{' came, why it failed.
  std::string raw_, header_, failure_;
  std::optional<GemmaArgumentsToJson> arguments_;
  int calls_ = 0;      // indices given out (withdrawn calls keep theirs)
  size_t made_ = 0;    // well-formed calls
};

}  // namespace g4
