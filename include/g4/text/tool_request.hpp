// An OpenAI-style chat request made ready for a Gemma 4 template: assistant tool_calls whose arguments are a JSON
// string get them as an object (the template writes a string verbatim between the call's braces, which is not
// Gemma's syntax), and for the template releases that read only `tool_responses` the `role: tool` messages are
// folded into the assistant turn as llama.cpp does for "outdated gemma4" templates
// (workaround::convert_tool_responses_gemma4): assistant(tool_calls) + tool... + a final assistant answer become
// one assistant message with tool_calls, tool_responses ({name, response}, the content parsed as JSON where it
// is JSON) and that answer as content.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"

namespace g4 {

namespace tool_request_detail {

using Json = nlohmann::ordered_json;

// nlohmann copies and prints values recursively: a request nested deeper than this is refused before either.
inline constexpr size_t kMaxRequestDepth = 100;

inline void RequireShallow(const Json& j) {
  std::vector<std::pair<const Json*, size_t>> stack = {{&j, 1}};
  while (!stack.empty()) {
    const auto [v, depth] = stack.back();
    stack.pop_back();
    Require(depth <= kMaxRequestDepth, "chat request", "nested deeper than " + std::to_string(kMaxRequestDepth) + " levels");
    if (v->is_structured())
      for (const Json& child : *v) stack.emplace_back(&child, depth + 1);
  }
}

inline bool HasToolCalls(const Json& m) {
  const auto it = m.find("tool_calls");
  return it != m.end() && it->is_array() && !it->empty();
}

inline bool HasContent(const Json& m) {
  const auto it = m.find("content");
  if (it == m.end()) return false;
  return (it->is_string() && !it->get_ref<const std::string&>().empty()) || (it->is_array() && !it->empty());
}

inline std::string Role(const Json& m) { return m.is_object() ? m.value("role", "") : ""; }

// The tool results that follow an assistant turn with tool calls, folded into it (llama.cpp's
// gemma4_model_turn_builder): names by position among the calls, else the tool_call_id.
inline Json FoldTurn(const Json& messages, size_t& pos) {
  const Json& first = messages[pos++];
  Json calls = first["tool_calls"];
  Json responses = Json::array();
  while (pos < messages.size() && Role(messages[pos]) == "tool") {
    const Json& tool = messages[pos++];
    Json response;
    if (const auto c = tool.find("content"); c != tool.end()) {
      response = *c;
      if (c->is_string()) {
        Json parsed = Json::parse(c->get_ref<const std::string&>(), nullptr, /*allow_exceptions=*/false);
        if (!parsed.is_discarded()) response = std::move(parsed);
      }
    }
    std::string name;
    if (responses.size() < calls.size() && calls[responses.size()].is_object()) {
      const Json& call = calls[responses.size()];
      if (const auto f = call.find("function"); f != call.end() && f->is_object()) name = f->value("name", "");
    }
    if (name.empty()) name = tool.value("tool_call_id", "");
    responses.push_back({{"name", name}, {"response", std::move(response)}});
  }
  Json turn = {{"role", "assistant"}, {"tool_calls", std::move(calls)}};
  if (!responses.empty()) turn["tool_responses"] = std::move(responses);
  if (pos < messages.size() && Role(messages[pos]) == "assistant" && !HasToolCalls(messages[pos]) &&
      HasContent(messages[pos]))
    turn["content"] = messages[pos++]["content"];
  if (const auto r = first.find("reasoning_content"); r != first.end() && r->is_string()) turn["reasoning_content"] = *r;
  return turn;
}

}  // namespace tool_request_detail

// Whether a template is one of the early Gemma 4 releases that render tool results only from `tool_responses`
// (llama.cpp's test: Gemma 4's call syntax without the official template's OpenAI forward scan).
inline bool ReadsOnlyToolResponses(std::string_view template_text) {
  return template_text.find("'<|tool_call>call:'") != std::string_view::npos &&
         template_text.find("{#- OpenAI Chat Completions:") == std::string_view::npos;
}

inline nlohmann::ordered_json AdaptRequestToTemplate(const nlohmann::ordered_json& request,
                                                     std::string_view template_text) {
  using namespace tool_request_detail;
  Require(request.is_object(), "chat request", "must be a JSON object");
  RequireShallow(request);
  Json out = request;
  const auto messages = out.find("messages");
  if (messages == out.end()) return out;
  Require(messages->is_array(), "chat request", "messages must be an array");
  for (Json& m : *messages) {
    if (!m.is_object() || !HasToolCalls(m)) continue;
    for (Json& call : m["tool_calls"]) {
      if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
      Json& f = call["function"];
      if (const auto a = f.find("arguments"); a != f.end() && a->is_string()) {
        Json parsed = Json::parse(a->get_ref<const std::string&>(), nullptr, /*allow_exceptions=*/false);
        if (parsed.is_object()) *a = std::move(parsed);
      }
    }
  }
  if (ReadsOnlyToolResponses(template_text)) {
    Json folded = Json::array();
    for (size_t pos = 0; pos < messages->size();) {
      const Json& m = (*messages)[pos];
      if (Role(m) == "assistant" && HasToolCalls(m) && !m.contains("tool_responses"))  // not already folded
        folded.push_back(FoldTurn(*messages, pos));
      else
        folded.push_back((*messages)[pos++]);
    }
    *messages = std::move(folded);
  }
  return out;
}

}  // namespace g4
