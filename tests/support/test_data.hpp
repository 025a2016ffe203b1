// Where the suites find tests/data: the G4_TEST_DATA environment variable, which meson sets for every suite.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

namespace g4::testing {

inline std::string DataDir() {
  const char* d = std::getenv("G4_TEST_DATA");
  REQUIRE_MESSAGE(d != nullptr, "G4_TEST_DATA is not set");
  return d;
}

}  // namespace g4::testing
