// libFuzzer harness: g4::fuzz::Video (tests/fuzz/targets.hpp) on every input; g4::Error is the expected refusal.
// Built where the meson feature `video` found FFmpeg; FFmpeg's libraries themselves are not instrumented.
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    g4::fuzz::Video({data, size});
  } catch (const g4::Error&) {
  }
  return 0;
}
