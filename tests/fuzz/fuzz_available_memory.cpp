// libFuzzer harness: g4::fuzz::AvailableMemoryTexts (tests/fuzz/targets.hpp) on every input; the parsers refuse by
// returning nothing, so any exception, crash or sanitizer report is a bug.
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g4::fuzz::AvailableMemoryTexts({data, size});
  return 0;
}
