// g4 template: the model's own Jinja chat template at work, without a model. `render` prints the prompt a chat
// request becomes; `parse` reads model output and prints the OpenAI-style message it stands for.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "command.hpp"
#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/text/jinja/template.hpp"
#include "g4/text/model_chat_template.hpp"
#include "g4/text/tool_calls.hpp"
#include "g4/text/tool_request.hpp"

namespace g4cli::cmd_template {

using namespace g4;
using Json = nlohmann::ordered_json;

const char* kHelp = R"(usage: g4 template render (--template FILE | -m MODEL) --request REQ.json [--as-is]
       g4 template parse [--tools REQ.json] < OUTPUT

render: prints the prompt of a chat request, rendered by the Jinja template as transformers renders it.
  --template FILE   a chat_template.jinja
  -m, --model MODEL the template the model carries (.gguf: tokenizer.chat_template; a Hugging Face folder:
                    chat_template.jinja or tokenizer_config.json)
  --request FILE    {"messages": [...], "tools": [...], "add_generation_prompt": true, "enable_thinking": false,
                    "chat_template_kwargs": {...}} ("-" reads standard input); add_generation_prompt defaults to
                    true, bos_token to "<bos>"
  --as-is           render the request unchanged; by default tool-call arguments given as JSON strings become
                    objects, and role: tool messages fold into tool_responses for templates that read only those

parse: reads Gemma 4 output on standard input and prints {"content", "reasoning_content", "tool_calls"} as JSON;
malformed tool calls stay in content, with a warning on standard error.
  --tools FILE      a request (or its tools list): calls to functions it does not declare stay text

  -h, --help        this text
)";

std::string ReadAll(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  const MappedFile f(path);
  return std::string(reinterpret_cast<const char*>(f.bytes().data()), f.size());
}

Json ReadRequest(const std::string& path) {
  const std::string text = ReadAll(path);
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  Require(!j.is_discarded(), path, "invalid JSON");
  return j;
}

int Render(const g4cli::Args& args) {
  Require(args.has("--template") != args.has("--model"), "arguments",
          "give exactly one of --template FILE and -m MODEL (see --help)");
  Require(args.has("--request"), "arguments", "--request FILE is required");
  std::string source;
  if (args.has("--template")) {
    source = ReadAll(args.get("--template"));
  } else {
    const std::optional<std::string> t = ModelChatTemplate(args.get("--model"));
    Require(t.has_value(), args.get("--model"), "the model carries no chat template");
    source = *t;
  }
  Json request = ReadRequest(args.get("--request"));
  if (!args.has("--as-is")) request = AdaptRequestToTemplate(request, source);
  const std::string prompt = jinja::RenderChatTemplate(source, request);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  return 0;
}

int Parse(const g4cli::Args& args) {
  std::set<std::string> names;
  if (args.has("--tools")) {
    const Json j = ReadRequest(args.get("--tools"));
    const Json tools = j.is_object() ? j.value("tools", Json::array()) : j;
    Require(tools.is_array(), args.get("--tools"), "expected a request with \"tools\" or a list of tools");
    for (const Json& t : tools)
      if (t.is_object() && t.contains("function") && t["function"].is_object() && t["function"].contains("name"))
        names.insert(t["function"]["name"].get<std::string>());
  }
  std::vector<std::string> warnings;
  const Json message = ToolCallParser::Parse(ReadAll("-"), &warnings, std::move(names));
  for (const std::string& w : warnings) std::fprintf(stderr, "g4 template parse: warning: %s\n", w.c_str());
  std::printf("%s\n", message.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  return 0;
}

int Run(std::vector<std::string> argv) {
  const g4cli::Args args(argv, {"--template", "--model", "--request", "--tools"}, {"--as-is", "--help"},
                         {{"-m", "--model"}, {"-h", "--help"}});
  if (args.has("--help") || args.positional().empty()) {
    std::fputs(kHelp, args.has("--help") ? stdout : stderr);
    return args.has("--help") ? 0 : 2;
  }
  Require(args.positional().size() == 1, "arguments", "expected one of render, parse (see --help)");
  const std::string& what = args.positional()[0];
  if (what == "render") return Render(args);
  if (what == "parse") return Parse(args);
  Fail("arguments", "unknown template command '" + what + "' (render or parse)");
}

const g4cli::RegisterCommand reg("template", "render a chat request with the model's template, parse model output",
                                 Run);

}  // namespace g4cli::cmd_template
