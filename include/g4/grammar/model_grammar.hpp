// Structured output for a loaded model: what a request puts in SamplerConfig::grammar (GenerateParams::sampling)
// to constrain its answer to a grammar, a JSON Schema or any JSON object. The grammar may end the answer, once it
// has matched, with the model's end-of-turn ids (<eos>, <turn|>, the checkpoint's stop ids); the vocabulary's
// trie is the model's, built once (LoadedModel::token_trie).
#pragma once
#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/mapped_file.hpp"
#include "g4/grammar/gbnf.hpp"
#include "g4/grammar/json_schema.hpp"
#include "g4/grammar/token_matcher.hpp"
#include "g4/grammar/tool_call_grammar.hpp"
#include "g4/session/loaded_model.hpp"

namespace g4 {

// also_ending: further ids that may end it (after tool calls: the model's tool stop ids).
inline std::shared_ptr<const TokenGrammar> ModelTokenGrammar(const LoadedModel& m, Grammar grammar, std::span<const int32_t> also_ending = {}) {
  const Gemma4Config& cfg = m.model().config();
  std::vector<int32_t> ends(cfg.tokens.stop_ids.begin(), cfg.tokens.stop_ids.end());
  ends.insert(ends.end(), m.chat_stop_ids().begin(), m.chat_stop_ids().end());
  ends.insert(ends.end(), also_ending.begin(), also_ending.end());
  std::vector<int32_t> in_vocab;
  for (const int32_t id : ends)
    if (id >= 0 && id < cfg.vocab_size && std::find(in_vocab.begin(), in_vocab.end(), id) == in_vocab.end()) in_vocab.push_back(id);
  return MakeTokenGrammar(std::move(grammar), m.token_trie(), std::move(in_vocab));
}

// Grammar text (docs/grammar.md).
inline std::shared_ptr<const TokenGrammar> GrammarConstraint(const LoadedModel& m, std::string_view grammar_text) {
  return ModelTokenGrammar(m, ParseGrammar(grammar_text));
}
// A JSON Schema (grammar/json_schema.hpp lists what is supported; anything else is a g4::Error naming the keyword).
inline std::shared_ptr<const TokenGrammar> JsonSchemaConstraint(const LoadedModel& m, const nlohmann::ordered_json& schema) {
  return ModelTokenGrammar(m, JsonSchemaGrammar(schema));
}
// Any JSON object (response_format json_object).
inline std::shared_ptr<const TokenGrammar> JsonObjectConstraint(const LoadedModel& m) { return ModelTokenGrammar(m, JsonObjectGrammar()); }

// Tool calls of a chat request: once the model opens <|tool_call>, the call must name a declared function and
// give arguments valid under its parameters (grammar/tool_call_grammar.hpp); tool_choice "required" or a named
// function makes a call the answer's start. Null for tool_choice "none".
inline std::shared_ptr<const TokenGrammar> ToolCallConstraint(const LoadedModel& m, const nlohmann::ordered_json& tools,
                                                              const nlohmann::ordered_json& tool_choice = "auto") {
  return ToolCallTokenGrammar(m.tokenizer(), m.token_trie(), tools, tool_choice);
}

// response_format's JSON (`json`: JsonSchemaGrammar / JsonObjectGrammar) or else tool calls, one or more, each
// naming a declared function with valid arguments: tools offered beside a response_format under tool_choice "auto".
// A vocabulary without the call markers leaves the JSON alone.
inline std::shared_ptr<const TokenGrammar> JsonOrToolCallsConstraint(const LoadedModel& m, Grammar json, const nlohmann::ordered_json& tools) {
  const Tokenizer& tok = m.tokenizer();
  if (!tok.Find("<|tool_call>") || !tok.Find("<tool_call|>")) return ModelTokenGrammar(m, std::move(json));
  const Grammar calls = ParseGrammar(ToolCallGrammarText(tools, "", ToolCallQuote(tok), /*whole_calls=*/true));
  return ModelTokenGrammar(m, EitherGrammar(json, calls), m.tool_stop_ids());
}

// `g4 run --json-schema FILE` / `--grammar FILE` (at most one; null for neither). Errors name the file.
inline std::shared_ptr<const TokenGrammar> ConstraintFromFiles(const LoadedModel& m, const std::string& json_schema_file,
                                                               const std::string& grammar_file) {
  Require(json_schema_file.empty() || grammar_file.empty(), "--grammar", "give --json-schema or --grammar, not both");
  const std::string& file = json_schema_file.empty() ? grammar_file : json_schema_file;
  if (file.empty()) return nullptr;
  const MappedFile f(file);
  const std::string text(reinterpret_cast<const char*>(f.bytes().data()), f.size());
  try {
    if (!grammar_file.empty()) return GrammarConstraint(m, text);
    nlohmann::ordered_json schema;
    try {
      schema = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      Fail("", std::string("not JSON: ") + e.what());
    }
    return JsonSchemaConstraint(m, schema);
  } catch (const Error& e) {
    Fail(file, e.what());
  }
}

}  // namespace g4
