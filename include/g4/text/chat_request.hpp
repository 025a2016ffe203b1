// An OpenAI-style chat request ({"messages", "tools", "enable_thinking", "chat_template_kwargs", ...}) rendered
// through a model's own Jinja chat template and tokenized so that control tokens written by the TEMPLATE become
// their ids while text that came from the request never does.
//
// How: before rendering, every string of the request's messages and tools (keys too) is escaped so that it holds
// no control token's text (nor a tail that could join the next string into one): a byte that starts one becomes
// U+E000 'x' HEX HEX, and U+E000 itself U+E000 U+E000. The template sees the same strings otherwise (trim, upper,
// comparisons, dictsort behave as before), so the escaped rendering is the exact rendering with user text
// disguised. The rendering is then cut at the control tokens it still holds (the template's markup), each run of
// text between them unescaped and encoded with parse_special off, which is what TokenizeChat does for the built-in
// format. One exception keeps transformers' behaviour: in assistant content, <|channel> and <channel|> stay as
// they are, so that the template's strip_thinking can remove old thoughts (it leaves no marker behind).
//
// RequestToChatMessages turns a request into the built-in renderer's messages, for model files that carry no
// template (tools and tool calls need one).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/text/chat_template.hpp"
#include "g4/text/jinja/template.hpp"
#include "g4/text/tokenizer.hpp"
#include "g4/text/tool_calls.hpp"
#include "g4/text/tool_request.hpp"

namespace g4 {

// The texts a tokenizer reads as one control token only when special tokens are parsed (Encode's parse_special).
class ControlTexts {
 public:
  explicit ControlTexts(const Tokenizer& tok) {
    for (int32_t id = 0; id < tok.size(); ++id) {
      if (!tok.IsControl(id)) continue;
      const std::string text(tok.Piece(id));
      if (text.empty() || ids_.count(text)) continue;
      const std::vector<int32_t> one{id};
      if (tok.Encode(text, {.add_bos = false, .parse_special = true}) != one) continue;
      if (tok.Encode(text, {.add_bos = false, .parse_special = false}) == one) continue;  // text anyway
      ids_.emplace(text, id);
      first_[static_cast<uint8_t>(text[0])] = true;
      max_len_ = std::max(max_len_, text.size());
      for (size_t n = 1; n < text.size(); ++n) prefixes_.insert(text.substr(0, n));
    }
  }

  // The longest control text at s[pos]: its length and id, or {0, -1}.
  std::pair<size_t, int32_t> MatchAt(std::string_view s, size_t pos) const {
    if (pos >= s.size() || !first_[static_cast<uint8_t>(s[pos])]) return {0, -1};
    for (size_t n = std::min(max_len_, s.size() - pos); n > 0; --n)
      if (const auto it = ids_.find(std::string(s.substr(pos, n))); it != ids_.end()) return {n, it->second};
    return {0, -1};
  }
  // Whether s[pos..] (all of it) is a proper prefix of a control text: it could join what follows into one.
  bool PrefixTail(std::string_view s, size_t pos) const {
    return pos < s.size() && s.size() - pos < max_len_ && first_[static_cast<uint8_t>(s[pos])] &&
           prefixes_.count(std::string(s.substr(pos)));
  }
  bool Contains(std::string_view text) const { return ids_.count(std::string(text)) > 0; }

 private:
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_set<std::string> prefixes_;
  std::array<bool, 256> first_{};
  size_t max_len_ = 0;
};

namespace chat_request_detail {

using Json = nlohmann::ordered_json;

inline constexpr std::string_view kEscape = "\xEE\x80\x80";  // U+E000, a private-use character
inline constexpr std::string_view kKeep[] = {"<|channel>", "<channel|>"};

inline std::string Escape(std::string_view s, const ControlTexts& controls, bool keep_channels) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s.substr(i).starts_with(kEscape)) {
      out.append(kEscape).append(kEscape);
      i += kEscape.size();
      continue;
    }
    if (keep_channels) {
      bool kept = false;
      for (const std::string_view k : kKeep)
        if (s.substr(i).starts_with(k)) {
          out += k;
          i += k.size();
          kept = true;
          break;
        }
      if (kept) continue;
    }
    if (controls.MatchAt(s, i).first > 0 || controls.PrefixTail(s, i)) {
      const auto b = static_cast<uint8_t>(s[i++]);
      out.append(kEscape).append(1, 'x').append(1, kHex[b >> 4]).append(1, kHex[b & 15]);
      continue;
    }
    out += s[i++];
  }
  return out;
}

// Reverses Escape on a run of rendered text (template text passes through unchanged).
inline std::string Unescape(std::string_view s) {
  const auto hex = [](char c) { return c <= '9' ? c - '0' : c - 'A' + 10; };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (!s.substr(i).starts_with(kEscape)) {
      out += s[i++];
      continue;
    }
    const std::string_view rest = s.substr(i + kEscape.size());
    if (rest.starts_with(kEscape)) {
      out += kEscape;
      i += 2 * kEscape.size();
    } else if (rest.size() >= 3 && rest[0] == 'x') {
      out += static_cast<char>(hex(rest[1]) * 16 + hex(rest[2]));
      i += kEscape.size() + 3;
    } else {
      out += kEscape;  // not one of ours (a template wrote it): as is
      i += kEscape.size();
    }
  }
  return out;
}

// Every string (and key) of j escaped; in an assistant message's content, <|channel> and <channel|> are kept.
// The request is at most kMaxRequestDepth deep (AdaptRequestToTemplate checked it), so recursion is bounded.
inline Json EscapeValue(const Json& j, const ControlTexts& controls, bool keep_channels = false) {
  if (j.is_string()) return Escape(j.get_ref<const std::string&>(), controls, keep_channels);
  if (j.is_array()) {
    Json out = Json::array();
    for (const Json& v : j) out.push_back(EscapeValue(v, controls, keep_channels));
    return out;
  }
  if (j.is_object()) {
    Json out = Json::object();
    for (auto it = j.begin(); it != j.end(); ++it) out[Escape(it.key(), controls, false)] = EscapeValue(it.value(), controls, keep_channels);
    return out;
  }
  return j;
}

inline Json EscapeMessage(const Json& m, const ControlTexts& controls) {
  if (!m.is_object()) return EscapeValue(m, controls);
  const std::string role = m.value("role", "");
  const bool assistant = role == "assistant" || role == "model";
  Json out = Json::object();
  for (auto it = m.begin(); it != m.end(); ++it)
    out[Escape(it.key(), controls, false)] = EscapeValue(it.value(), controls, assistant && it.key() == "content");
  return out;
}

// OpenAI's media parts ({"type": "image_url", ...}, {"type": "input_audio", ...}, vLLM's {"type": "video_url", ...})
// as the template's {"type": "image"} / {"type": "audio"} / {"type": "video"}: the media themselves travel beside
// the request, in order.
inline void NormalizeMediaParts(Json& request) {
  const auto messages = request.find("messages");
  if (messages == request.end() || !messages->is_array()) return;
  for (Json& m : *messages) {
    if (!m.is_object()) continue;
    const auto content = m.find("content");
    if (content == m.end() || !content->is_array()) continue;
    for (Json& part : *content) {
      if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) continue;
      const std::string type = part["type"].get<std::string>();
      if (type == "image_url") part = {{"type", "image"}};
      if (type == "input_audio") part = {{"type", "audio"}};
      if (type == "video_url") part = {{"type", "video"}};
    }
  }
}

// RenderChatTemplate's variables, over a template parsed once: the request's keys and its chat_template_kwargs',
// bos_token "<bos>" and add_generation_prompt true unless given.
inline std::string Render(const jinja::Template& tmpl, const Json& request) {
  std::vector<std::pair<std::string, jinja::Value>> variables = {{"bos_token", jinja::Value::String("<bos>")},
                                                                 {"add_generation_prompt", jinja::Value::Bool(true)}};
  const auto set = [&](const std::string& key, const Json& value) {
    for (auto& [k, v] : variables)
      if (k == key) {
        v = jinja::Value::FromJson(value);
        return;
      }
    variables.emplace_back(key, jinja::Value::FromJson(value));
  };
  for (auto it = request.begin(); it != request.end(); ++it)
    if (it.key() != "chat_template_kwargs") set(it.key(), it.value());
  if (const auto kwargs = request.find("chat_template_kwargs"); kwargs != request.end()) {
    Require(kwargs->is_object(), "chat request", "chat_template_kwargs must be a JSON object");
    for (auto it = kwargs->begin(); it != kwargs->end(); ++it) set(it.key(), it.value());
  }
  return tmpl.Render(std::move(variables));
}

}  // namespace chat_request_detail

// Whether a request asks for thinking: chat_template_kwargs.enable_thinking, else enable_thinking, else `fallback`.
inline bool RequestEnablesThinking(const nlohmann::ordered_json& request, bool fallback = false) {
  if (const auto k = request.find("chat_template_kwargs"); k != request.end() && k->is_object())
    if (const auto e = k->find("enable_thinking"); e != k->end() && e->is_boolean()) return e->get<bool>();
  if (const auto e = request.find("enable_thinking"); e != request.end() && e->is_boolean()) return e->get<bool>();
  return fallback;
}

// What the request's answer may call: its declared functions (tools[i].function.name), tool_choice ("auto";
// "none": calls are text; {"type": "function", "function": {"name": N}} with N declared: the call is forced;
// "required": a call first, enforced by the request's grammar) and parallel_tool_calls (false: one call).
inline ToolChoice RequestToolChoice(const nlohmann::ordered_json& request) {
  ToolChoice choice;
  if (const auto tools = request.find("tools"); tools != request.end() && tools->is_array())
    for (const auto& t : *tools)
      if (t.is_object() && t.contains("function") && t["function"].is_object() && t["function"].contains("name") &&
          t["function"]["name"].is_string())
        choice.names.insert(t["function"]["name"].get<std::string>());
  if (const auto p = request.find("parallel_tool_calls"); p != request.end() && !p->is_null()) {
    Require(p->is_boolean(), "parallel_tool_calls", "must be true or false");
    if (!p->get<bool>()) choice.max_calls = 1;
  }
  const auto tc = request.find("tool_choice");
  if (tc == request.end() || tc->is_null()) return choice;
  if (tc->is_string()) {
    const std::string mode = tc->get<std::string>();
    // "required": a call is the answer's start, which the request's grammar enforces (session/chat_constraint.hpp).
    Require(mode == "auto" || mode == "none" || mode == "required", "tool_choice",
            "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    Require(mode != "required" || !choice.names.empty(), "tool_choice", "\"required\" needs tools to call");
    choice.allowed = mode != "none";
    return choice;
  }
  const auto f = tc->is_object() ? tc->find("function") : tc->end();
  Require(tc->is_object() && tc->value("type", "") == "function" && f != tc->end() && f->is_object() && f->contains("name") &&
              (*f)["name"].is_string(),
          "tool_choice", "must be \"auto\", \"none\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
  choice.forced = (*f)["name"].get<std::string>();
  Require(choice.names.count(choice.forced) > 0, "tool_choice", "names function '" + choice.forced + "', which tools does not declare");
  return choice;
}

// A model's Jinja chat template, parsed once.
class ChatTemplate {
 public:
  explicit ChatTemplate(std::string source) : source_(std::move(source)), template_(source_) {}

  const std::string& source() const { return source_; }

  // The request made ready for this template (tool_calls' arguments as objects, tool messages folded for the
  // releases that need it, OpenAI media parts as the template's).
  nlohmann::ordered_json Adapt(const nlohmann::ordered_json& request) const {
    nlohmann::ordered_json out = AdaptRequestToTemplate(request, source_);
    chat_request_detail::NormalizeMediaParts(out);
    return out;
  }

  // The prompt text, exactly as transformers' apply_chat_template renders it.
  std::string Render(const nlohmann::ordered_json& request) const {
    return chat_request_detail::Render(template_, Adapt(request));
  }

  // Token ids of Render's text: the template's control markup as control ids, the request's text as text.
  std::vector<int32_t> Tokenize(const Tokenizer& tok, const ControlTexts& controls, const nlohmann::ordered_json& request) const {
    using namespace chat_request_detail;
    Json escaped = Adapt(request);
    for (const char* key : {"messages", "tools"}) {
      const auto it = escaped.find(key);
      if (it == escaped.end()) continue;
      if (std::string_view(key) == "messages" && it->is_array()) {
        Json ms = Json::array();
        for (const Json& m : *it) ms.push_back(EscapeMessage(m, controls));
        *it = std::move(ms);
      } else {
        *it = EscapeValue(*it, controls);
      }
    }
    const std::string rendered = chat_request_detail::Render(template_, escaped);
    std::vector<int32_t> ids;
    std::string pending;  // escaped text since the last control token
    const auto flush = [&] {
      const std::vector<int32_t> t = tok.Encode(Unescape(pending), {.add_bos = false, .parse_special = false});
      ids.insert(ids.end(), t.begin(), t.end());
      pending.clear();
    };
    for (size_t i = 0; i < rendered.size();) {
      const auto [len, id] = controls.MatchAt(rendered, i);
      if (len == 0) {
        pending += rendered[i++];
        continue;
      }
      flush();
      ids.push_back(id);
      i += len;
    }
    flush();
    return ids;
  }

 private:
  std::string source_;
  jinja::Template template_;
};

// A request as the built-in renderer's messages (for model files without a template): roles, content as a string
// or as text / image / audio parts. Tools, tool calls and tool messages need the model's template: an error.
inline std::vector<ChatMessage> RequestToChatMessages(const nlohmann::ordered_json& request) {
  Require(request.is_object(), "chat request", "must be a JSON object");
  const std::string why = "the model file carries no chat template (give one: g4 run --chat-template, ModelFiles::chat_template)";
  if (const auto t = request.find("tools"); t != request.end())
    Require(t->is_null() || (t->is_array() && t->empty()), "chat request", "tools need the model's chat template; " + why);
  const auto messages = request.find("messages");
  Require(messages != request.end() && messages->is_array(), "chat request", "messages must be an array");
  std::vector<ChatMessage> out;
  for (const auto& m : *messages) {
    Require(m.is_object() && m.contains("role") && m["role"].is_string(), "chat request", "a message without a role");
    const std::string role = m["role"].get<std::string>();
    Require(role != "tool" && !m.contains("tool_calls") && !m.contains("tool_responses"), "chat request",
            "tool calls and results need the model's chat template; " + why);
    ChatMessage& c = out.emplace_back(ChatMessage{role, {}});
    const auto content = m.find("content");
    if (content == m.end() || content->is_null()) continue;
    if (content->is_string()) {
      c.parts.push_back(ChatPart::Text(content->get<std::string>()));  // as the templates: one text
      continue;
    }
    Require(content->is_array(), "chat request", "content must be a string or a list of parts");
    for (const auto& p : *content) {
      const auto str = [&](const char* key) {
        const auto it = p.is_object() ? p.find(key) : p.end();
        return it != p.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      const std::string type = str("type");
      if (type == "text")
        c.parts.push_back(ChatPart::Text(str("text")));
      else if (type == "image" || type == "image_url")
        c.parts.push_back(ChatPart::Image());
      else if (type == "audio" || type == "input_audio")
        c.parts.push_back(ChatPart::Audio());
      else if (type == "video" || type == "video_url")
        c.parts.push_back(ChatPart::Video());
      else
        Fail("chat request", "content part of type '" + type + "' (text, image, audio and video are understood)");
    }
  }
  return out;
}

}  // namespace g4
