// What a chat request constrains its answer to (SamplerConfig::grammar), from the request itself:
// - response_format's JSON ({"type": "json_object"}, or {"type": "json_schema", "json_schema": {"schema": ...}});
//   with tools offered under tool_choice "auto", that JSON or else tool calls;
// - with tools offered, calls that name a declared function with arguments valid under its parameters
//   (grammar/tool_call_grammar.hpp). "auto": free text around the calls (a thought channel still opens);
//   "required": a call is the answer's first token, before any thought; a named function: the prompt ends inside
//   that call (Session::ChatPrompt) and its arguments are constrained from there.
// Session::RespondTo and g4 serve both use this. Errors name the request's field.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "g4/grammar/model_grammar.hpp"
#include "g4/session/loaded_model.hpp"
#include "g4/text/chat_request.hpp"

namespace g4 {

// A request's response_format, checked (errors name the field): nullopt for none or "text", a null value for
// "json_object", else json_schema's schema. The server checks it this way before the model is at hand.
inline std::optional<nlohmann::ordered_json> ResponseFormatSchema(const nlohmann::ordered_json& request) {
  const auto rf = request.find("response_format");
  if (rf == request.end() || rf->is_null()) return std::nullopt;
  Require(rf->is_object() && rf->contains("type") && (*rf)["type"].is_string(), "response_format", "must be {\"type\": ...}");
  const std::string type = (*rf)["type"];
  if (type == "json_object") return nlohmann::ordered_json();
  if (type == "json_schema") {
    const auto js = rf->find("json_schema");
    Require(js != rf->end() && js->is_object() && js->contains("schema") && (*js)["schema"].is_object(), "response_format.json_schema",
            "must be {\"name\": ..., \"schema\": {...}}");
    return (*js)["schema"];
  }
  Require(type == "text", "response_format.type", "must be \"text\", \"json_object\" or \"json_schema\", got \"" + type + "\"");
  return std::nullopt;
}

inline std::shared_ptr<const TokenGrammar> ChatConstraint(const LoadedModel& m, const nlohmann::ordered_json& request) {
  std::optional<Grammar> json;
  if (const std::optional<nlohmann::ordered_json> schema = ResponseFormatSchema(request)) {
    try {
      json = schema->is_null() ? JsonObjectGrammar() : JsonSchemaGrammar(*schema);
    } catch (const Error& e) {
      Fail("response_format.json_schema.schema", e.what());
    }
  }
  const ToolChoice choice = RequestToolChoice(request);
  const auto tc = request.find("tool_choice");
  const bool required = tc != request.end() && tc->is_string() && *tc == "required";
  const bool named = !choice.forced.empty();
  const bool calls = choice.allowed && request.contains("tools") && request["tools"].is_array() && !request["tools"].empty();
  // The JSON of response_format, or (tools offered, tool_choice "auto") that JSON or calls.
  if (json && !(calls && (required || named))) return calls ? JsonOrToolCallsConstraint(m, std::move(*json), request["tools"])
                                                           : ModelTokenGrammar(m, std::move(*json));
  if (!calls) return nullptr;
  // Without the call markers in its vocabulary a model can make no call: nothing to constrain, unless one is required
  // (a named call is then the prompt's text, as the model continues it).
  if (!required && !m.tokenizer().Find("<|tool_call>")) return nullptr;
  return ToolCallConstraint(m, request["tools"], required || named ? (*tc) : nlohmann::ordered_json("auto"));
}

}  // namespace g4
