// Where the suites find tests/data (the G4_TEST_DATA environment variable, which meson sets for every suite; else
// tests/data under the current folder, for a suite run by hand from the source tree), and reading its files whole.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace g4::testing {

// No assertion here: test decorators call it while the program starts, outside any test.
inline std::string DataDir() {
  const char* d = std::getenv("G4_TEST_DATA");
  return d ? d : "tests/data";
}

// The file's bytes; a missing file fails the test.
inline std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(ReadText(path)); }

}  // namespace g4::testing
