// libFuzzer harness: g4::fuzz::JsonSchema (tests/fuzz/targets.hpp) on every input; g4::Error is the expected refusal.
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    g4::fuzz::JsonSchema({data, size});
  } catch (const g4::Error&) {
  }
  return 0;
}
