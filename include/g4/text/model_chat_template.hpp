// The chat template a model file carries, wherever its format keeps it: a GGUF's tokenizer.chat_template; in a
// Hugging Face folder, chat_template.jinja, else tokenizer_config.json's "chat_template" (a string, or a list of
// {name, template} of which "default" is the chat one). nullopt when the model carries none.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/json.hpp"

namespace g4 {

inline std::optional<std::string> ModelChatTemplate(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(model_path, ec)) {
    const GgufFile f(model_path);
    if (!f.Has("tokenizer.chat_template")) return std::nullopt;
    return f.GetString("tokenizer.chat_template");
  }
  const fs::path dir(model_path);
  if (fs::exists(dir / "chat_template.jinja", ec)) {
    const MappedFile f((dir / "chat_template.jinja").string());
    return std::string(reinterpret_cast<const char*>(f.bytes().data()), f.size());
  }
  const fs::path config = dir / "tokenizer_config.json";
  if (!fs::exists(config, ec)) return std::nullopt;
  const nlohmann::json j = ReadJsonFile(config.string());
  const auto t = j.find("chat_template");
  if (t == j.end() || t->is_null()) return std::nullopt;
  if (t->is_string()) return t->get<std::string>();
  Require(t->is_array(), config.string(), "chat_template is neither a string nor a list of named templates");
  for (const nlohmann::json& named : *t)
    if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
        named["template"].is_string())
      return named["template"].get<std::string>();
  Fail(config.string(), "chat_template lists no template named 'default'");
}

}  // namespace g4
