// A Jinja chat template, parsed once and rendered per request, and RenderChatTemplate: what transformers'
// apply_chat_template does with a model's own template.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/text/jinja/interpreter.hpp"
#include "g4/text/jinja/lexer.hpp"
#include "g4/text/jinja/parser.hpp"
#include "g4/text/jinja/value.hpp"

namespace g4::jinja {

class Template {
 public:
  explicit Template(std::string_view source) : body_(Parser(Lexer(source).Tokenize()).ParseTemplate()) {}

  // Renders with the keys of `variables` (a JSON object) as the template's variables.
  std::string Render(const Json& variables, const Limits& limits = {}) const {
    Require(variables.is_object(), "chat template", "template variables must be a JSON object");
    std::vector<std::pair<std::string, Value>> globals;
    for (auto it = variables.begin(); it != variables.end(); ++it) globals.emplace_back(it.key(), Value::FromJson(it.value()));
    return Render(std::move(globals), limits);
  }
  std::string Render(std::vector<std::pair<std::string, Value>> variables, const Limits& limits = {}) const {
    return Interpreter(limits).Render(body_, std::move(variables));
  }

 private:
  Body body_;
};

// Renders a chat request ({"messages": [...], "tools": [...], "enable_thinking": ..., ...}) through a template:
// the request's keys, and those of its "chat_template_kwargs" object, become the template's variables. Unless the
// request says otherwise, bos_token is Gemma's "<bos>" and add_generation_prompt is true (a prompt for the
// model's answer, as a chat server wants; transformers' own default is false).
inline std::string RenderChatTemplate(std::string_view template_text, const Json& request, const Limits& limits = {}) {
  Require(request.is_object(), "chat request", "must be a JSON object");
  // Converted value by value (never copying the JSON, which nlohmann does recursively, however deep).
  std::vector<std::pair<std::string, Value>> variables = {{"bos_token", Value::String("<bos>")},
                                                          {"add_generation_prompt", Value::Bool(true)}};
  const auto set = [&](const std::string& key, const Json& value) {
    for (auto& [k, v] : variables)
      if (k == key) {
        v = Value::FromJson(value);
        return;
      }
    variables.emplace_back(key, Value::FromJson(value));
  };
  for (auto it = request.begin(); it != request.end(); ++it)
    if (it.key() != "chat_template_kwargs") set(it.key(), it.value());
  if (const auto kwargs = request.find("chat_template_kwargs"); kwargs != request.end()) {
    Require(kwargs->is_object(), "chat request", "chat_template_kwargs must be a JSON object");
    for (auto it = kwargs->begin(); it != kwargs->end(); ++it) set(it.key(), it.value());
  }
  return Template(template_text).Render(std::move(variables), limits);
}

}  // namespace g4::jinja
