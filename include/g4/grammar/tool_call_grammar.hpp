// Gemma 4 tool calls under a grammar (issue #32 item 2): what follows <|tool_call> is `call:NAME{...}` with NAME
// one of the declared functions and the arguments valid under that function's parameters schema, written in
// Gemma's value syntax (the chat template's format_argument: <|"|>-quoted strings, bare keys in sorted order, no
// whitespace); <tool_call|> then closes the call. The TokenGrammar is lazy (TokenGrammar::triggers): text before
// and between calls is free, unless a call is required: tool_choice "required" makes <|tool_call> the first token,
// and a named function starts the output inside its call, after the `call:NAME{` that ends the prompt
// (Session::ChatPrompt); further calls may name only that function.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/grammar/gbnf.hpp"
#include "g4/grammar/json_schema.hpp"
#include "g4/grammar/token_matcher.hpp"
#include "g4/text/tokenizer.hpp"

namespace g4 {

// The grammar text of one call's body (after <|tool_call>, before <tool_call|>) for OpenAI-style tool
// declarations ([{"type": "function", "function": {"name", "parameters"}}]); only_function: just that one (a
// named tool_choice), else any declared. quote: the grammar expression for <|"|> (grammar/gbnf.hpp syntax).
// whole_calls: one or more calls with their markers instead (an answer that is nothing but calls).
inline std::string ToolCallGrammarText(const nlohmann::ordered_json& tools, const std::string& only_function, const std::string& quote,
                                       bool whole_calls = false) {
  Require(tools.is_array() && !tools.empty(), "tools", "must be a non-empty array of function declarations");
  json_schema_detail::Compiler c(quote);
  std::string alternatives;
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string where = "tools[" + std::to_string(i) + "]";
    const nlohmann::ordered_json& t = tools[i];
    Require(t.is_object() && t.contains("function") && t["function"].is_object(), where, "needs a \"function\" object");
    const nlohmann::ordered_json& f = t["function"];
    Require(f.contains("name") && f["name"].is_string() && !f["name"].get_ref<const std::string&>().empty(), where + ".function.name",
            "must be a non-empty string");
    const std::string name = f["name"];
    Require(name.find_first_of("{}<>\n") == std::string::npos, where + ".function.name", "holds a character a call cannot name");
    if (!only_function.empty() && name != only_function) continue;
    const nlohmann::ordered_json params = f.contains("parameters") ? f["parameters"] : nlohmann::ordered_json{{"type", "object"}};
    Require(params.is_object() && (!params.contains("type") || params["type"] == "object"), where + ".function.parameters",
            "must be an object schema");
    std::string body;
    try {
      body = c.Compile(params, params, name);
    } catch (const Error& e) {
      Fail(where + ".function.parameters", e.what());
    }
    alternatives += (alternatives.empty() ? "" : " | ") + json_schema_detail::Literal(name) + " " + body;
  }
  Require(!alternatives.empty(), "tool_choice", "names function '" + only_function + "', which the tools do not declare");
  const std::string call = "\"call:\" ( " + alternatives + " )";
  return c.Text(whole_calls ? "( <|tool_call> " + call + " <tool_call|> )+" : call);
}

// <|"|> as the model writes it, in grammar text: the control token where the vocabulary has one, else its text.
inline std::string ToolCallQuote(const Tokenizer& tok) {
  const auto quote = tok.Find("<|\"|>");
  return quote && tok.IsControl(*quote) ? "<|\"|>" : "\"<|\\\"|>\"";
}

// The lazy TokenGrammar of tool calls for a vocabulary with Gemma 4's <|tool_call>, <tool_call|> and <|"|>.
// tool_choice: "auto" (or null), "required", or {"type": "function", "function": {"name": ...}}; "none" gives null.
inline std::shared_ptr<const TokenGrammar> ToolCallTokenGrammar(const Tokenizer& tok, std::shared_ptr<const TokenTrie> trie,
                                                                const nlohmann::ordered_json& tools,
                                                                const nlohmann::ordered_json& tool_choice) {
  std::string only;
  bool required = false;
  if (tool_choice.is_string()) {
    const std::string c = tool_choice;
    if (c == "none") return nullptr;
    Require(c == "auto" || c == "required", "tool_choice", "must be \"none\", \"auto\", \"required\" or a named function");
    required = c == "required";
  } else if (!tool_choice.is_null()) {
    Require(tool_choice.is_object() && tool_choice.contains("function") && tool_choice["function"].is_object() &&
                tool_choice["function"].contains("name") && tool_choice["function"]["name"].is_string(),
            "tool_choice", "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    only = tool_choice["function"]["name"];  // the output starts inside its call: no trigger needed
  }
  const auto open = tok.Find("<|tool_call>"), close = tok.Find("<tool_call|>");
  Require(open && close, "tools", "the model's vocabulary has no <|tool_call> / <tool_call|> tokens");
  return MakeTokenGrammar(ParseGrammar(ToolCallGrammarText(tools, only, ToolCallQuote(tok))), std::move(trie), {*close}, {*open},
                          required, only.empty() ? std::string() : "call:" + only + "{");
}

}  // namespace g4
