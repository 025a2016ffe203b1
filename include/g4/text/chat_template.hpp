// Gemma 4's chat format, rendered in C++ rather than by a Jinja engine:
//
//   <bos><|turn>system\n{<|think|>}{system}<turn|>\n<|turn>user\n{text}<turn|>\n<|turn>model\n{answer}<turn|>\n
//   <|turn>model\n{<|channel>thought\n<channel|>}
//
// following the model's own chat_template.jinja: the assistant role is named "model"; a system turn is written
// when the first message is "system"/"developer" or thinking is on, and thinking puts <|think|> at its very start;
// text is trimmed, previous model answers lose their <|channel>...<channel|> thoughts; an image item renders
// "\n\n<|image|>\n\n", an audio item "<|audio|>" and a video item "<|video|>" (the multimodal assembly expands those placeholders into the
// soft-token runs); with thinking off the 12B template closes an empty thought channel after the generation prompt
// (E2B/E4B templates do not: an option). Tool declarations, calls and responses are not rendered.
//
// A GGUF's tokenizer.chat_template is not interpreted: ChatOptionsFromJinja only recognises Gemma 4's format in it
// (and whether it closes the empty thought channel) and falls back to this renderer, refusing anything else.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

struct ChatPart {
  enum class Kind { kText, kImage, kAudio, kVideo };
  Kind kind = Kind::kText;
  std::string text;  // kText only

  static ChatPart Text(std::string t) { return {Kind::kText, std::move(t)}; }
  static ChatPart Image() { return {Kind::kImage, {}}; }
  static ChatPart Audio() { return {Kind::kAudio, {}}; }
  static ChatPart Video() { return {Kind::kVideo, {}}; }
};

struct ChatMessage {
  std::string role;  // "system" (or "developer"), "user", "assistant" (or "model")
  std::vector<ChatPart> parts;
};

struct ChatOptions {
  bool add_generation_prompt = true;  // end with "<|turn>model\n" so the model answers next
  bool enable_thinking = false;       // <|think|> at the start of the system turn
  bool close_empty_thought = true;    // 12B: "<|channel>thought\n<channel|>" after the prompt when not thinking
};

// One piece of a rendered prompt: control markup (a token such as <|turn>) or text. Kept apart so tokenizing never
// reads a control token out of user text.
struct ChatSegment {
  std::string text;
  bool control = false;
};

namespace chat_detail {

inline std::string_view Trim(std::string_view s) {  // Jinja's trim on ASCII whitespace
  constexpr std::string_view ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// The template's strip_thinking macro: drop every "<|channel>...<channel|>" (and an unclosed one), then trim.
inline std::string StripThinking(std::string_view text) {
  std::string kept;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t close = text.find("<channel|>", pos);
    const std::string_view part =
        text.substr(pos, close == std::string_view::npos ? std::string_view::npos : close - pos);
    kept += part.substr(0, part.find("<|channel>"));
    if (close == std::string_view::npos) break;
    pos = close + std::string_view("<channel|>").size();
  }
  return std::string(Trim(kept));
}

}  // namespace chat_detail

inline std::vector<ChatSegment> RenderChatSegments(std::span<const ChatMessage> messages, const ChatOptions& opt) {
  std::vector<ChatSegment> out;
  auto control = [&](const char* token) { out.push_back({token, true}); };
  auto text = [&](std::string_view t) {
    if (t.empty()) return;
    if (!out.empty() && !out.back().control)
      out.back().text += t;
    else
      out.push_back({std::string(t), false});
  };
  auto content = [&](const ChatMessage& m, bool model) {
    for (const ChatPart& p : m.parts) {
      switch (p.kind) {
        case ChatPart::Kind::kText:
          text(model ? chat_detail::StripThinking(p.text) : std::string(chat_detail::Trim(p.text)));
          break;
        case ChatPart::Kind::kImage:
          text("\n\n");
          control("<|image|>");
          text("\n\n");
          break;
        case ChatPart::Kind::kAudio:
          control("<|audio|>");
          break;
        case ChatPart::Kind::kVideo:  // as the official template writes it: bare
          control("<|video|>");
          break;
      }
    }
  };

  control("<bos>");
  size_t first = 0;
  const bool has_system = !messages.empty() && (messages[0].role == "system" || messages[0].role == "developer");
  if (opt.enable_thinking || has_system) {
    control("<|turn>");
    text("system\n");
    if (opt.enable_thinking) control("<|think|>");
    if (has_system) content(messages[first++], false);
    control("<turn|>");
    text("\n");
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool model = m.role == "assistant" || m.role == "model";
    control("<|turn>");
    text(model ? "model" : m.role);
    text("\n");
    content(m, model);
    control("<turn|>");
    text("\n");
  }
  if (opt.add_generation_prompt) {
    control("<|turn>");
    text("model\n");
    if (!opt.enable_thinking && opt.close_empty_thought) {
      control("<|channel>");
      text("thought\n");
      control("<channel|>");
    }
  }
  return out;
}

inline std::string RenderChat(std::span<const ChatMessage> messages, const ChatOptions& opt) {
  std::string s;
  for (const ChatSegment& seg : RenderChatSegments(messages, opt)) s += seg.text;
  return s;
}

// Token ids of the rendered prompt, as the Hugging Face tokenizer gives for RenderChat's string, except that text
// from the messages is never matched as a control token. Markup the vocabulary lacks as an added token is encoded
// as text, as that tokenizer would do with the string.
inline std::vector<int32_t> TokenizeChat(const Tokenizer& tok, std::span<const ChatMessage> messages,
                                         const ChatOptions& opt) {
  std::vector<int32_t> ids;
  std::string pending;  // text since the last control token
  auto flush = [&] {
    const std::vector<int32_t> t = tok.Encode(pending, {.add_bos = false, .parse_special = false});
    ids.insert(ids.end(), t.begin(), t.end());
    pending.clear();
  };
  for (const ChatSegment& seg : RenderChatSegments(messages, opt)) {
    const auto id = seg.control ? tok.Find(seg.text) : std::nullopt;
    if (id && tok.Kind(*id) != TokenKind::kNormal) {
      flush();
      ids.push_back(*id);
    } else {
      pending += seg.text;
    }
  }
  flush();
  return ids;
}

// Ids that end a model turn: <eos> and <turn|> where the vocabulary has them.
inline std::vector<int32_t> ChatStopIds(const Tokenizer& tok) {
  std::vector<int32_t> ids;
  if (tok.special_ids().eos >= 0) ids.push_back(tok.special_ids().eos);
  if (const auto t = tok.Find("<turn|>")) ids.push_back(*t);
  return ids;
}

// Recognises Gemma 4's format in a Jinja chat template (GGUF tokenizer.chat_template) and reads off whether it closes
// an empty thought channel; anything else is refused rather than rendered wrong.
inline ChatOptions ChatOptionsFromJinja(std::string_view jinja, std::string_view where) {
  Require(
      jinja.find("<|turn>") != std::string_view::npos && jinja.find("<turn|>") != std::string_view::npos, where,
      "chat template is not Gemma 4's (no <|turn> ... <turn|> markup); only the built-in Gemma 4 format is supported");
  ChatOptions opt;
  // The 12B template closes the channel in its final add_generation_prompt block; E2B/E4B templates mention
  // <channel|> only earlier, in the macro that strips old thoughts.
  const size_t prompt_block = jinja.rfind("add_generation_prompt");
  opt.close_empty_thought = prompt_block != std::string_view::npos &&
                            jinja.find("<|channel>", prompt_block) != std::string_view::npos &&
                            jinja.find("<channel|>", prompt_block) != std::string_view::npos;
  return opt;
}

}  // namespace g4
