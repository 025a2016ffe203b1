// What a call that must fail says: the text of its g4::Error (no error fails the test).
#pragma once
#include <doctest/doctest.h>

#include <string>

#include "g4/core/error.hpp"

namespace g4::testing {

template <typename F> std::string ErrorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no g4::Error thrown");
  return {};
}

// `f` must throw a g4::Error naming both `path` and `problem`.
template <typename F> void ExpectError(F&& f, const std::string& path, const std::string& problem) {
  CAPTURE(problem);
  const std::string what = ErrorOf(f);
  CHECK_MESSAGE(what.find(problem) != std::string::npos, what);
  CHECK_MESSAGE(what.find(path) != std::string::npos, what);
}

}  // namespace g4::testing
