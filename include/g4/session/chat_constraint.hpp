// What a chat request constrains its answer to (SamplerConfig::grammar), from the request itself:
// response_format's JSON ({"type": "json_object"}, or {"type": "json_schema", "json_schema": {"schema": ...}}), or,
// with tools offered, calls that name a declared function with arguments valid under its parameters
// (grammar/tool_call_grammar.hpp: free text around the calls; tool_choice "required": a call first). A named
// tool_choice is forced by the prompt instead (Session::ChatPrompt ends it inside that call), so it adds nothing here.
// With thinking on, tool_choice "auto" is not constrained either: the grammar's free text admits no control token,
// so the thought channel (<|channel>) could not open.
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

inline std::shared_ptr<const TokenGrammar> ChatConstraint(const LoadedModel& m, const nlohmann::ordered_json& request, bool thinking) {
  std::shared_ptr<const TokenGrammar> json;
  if (const std::optional<nlohmann::ordered_json> schema = ResponseFormatSchema(request)) {
    try {
      json = schema->is_null() ? JsonObjectConstraint(m) : JsonSchemaConstraint(m, *schema);
    } catch (const Error& e) {
      Fail("response_format.json_schema.schema", e.what());
    }
  }
  const ToolChoice choice = RequestToolChoice(request);
  const auto tc = request.find("tool_choice");
  const bool required = tc != request.end() && tc->is_string() && *tc == "required";
  const bool calls = choice.allowed && choice.forced.empty() && request.contains("tools") && request["tools"].is_array() &&
                     !request["tools"].empty();
  if (json) {
    Require(!calls, "response_format", "cannot constrain an answer that may also call tools (tool_choice \"none\" allows it)");
    return json;
  }
  if (!calls) return nullptr;
  // Without the call markers in its vocabulary a model can make no call: nothing to constrain, unless one is required.
  if (!required && (thinking || !m.tokenizer().Find("<|tool_call>"))) return nullptr;
  return ToolCallConstraint(m, request["tools"], required ? nlohmann::ordered_json("required") : nlohmann::ordered_json("auto"));
}

}  // namespace g4
