// JSON input (config.json, safetensors headers, index files) parsed with nlohmann::json, every parser error
// turned into a g4::Error that names the file.
#pragma once
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"

namespace g4 {

// Parses JSON text from a file, turning the parser's exception into a g4::Error naming the file. A key repeated
// inside one object is an error: nlohmann would silently keep the last one, hiding e.g. two tensors of one name.
inline nlohmann::json ParseJsonText(std::string_view text, const std::string& where) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys;  // keys seen in each open object
  const json::parser_callback_t reject_duplicates = [&](int, json::parse_event_t event, json& value) {
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end) keys.pop_back();
    if (event == json::parse_event_t::key) {
      const std::string& k = value.get_ref<const std::string&>();
      Require(keys.back().insert(k).second, where, "duplicate key '" + k + "'");
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), reject_duplicates);
  } catch (const json::exception& e) {
    Fail(where, std::string("invalid JSON: ") + e.what());
  }
}

inline nlohmann::json ReadJsonFile(const std::string& path) {
  MappedFile f(path);
  const auto b = f.bytes();
  return ParseJsonText(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), path);
}

}  // namespace g4
