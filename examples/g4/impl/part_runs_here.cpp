// Prints "yes" when this CPU runs a target of the kernel part G4_IMPL_PART_BEST..G4_IMPL_PART_WORST (meson.build's
// probe: a sanitizer build instruments only such parts), "no" otherwise.
#include <cstdint>
#include <cstdio>

#include <hwy/targets.h>

int main() {
  const uint64_t supported = static_cast<uint64_t>(hwy::SupportedTargets());
  for (uint64_t t = 1; t != 0; t <<= 1)
    if ((supported & t) && t >= static_cast<uint64_t>(G4_IMPL_PART_BEST) && t <= static_cast<uint64_t>(G4_IMPL_PART_WORST)) {
      std::puts("yes");
      return 0;
    }
  std::puts("no");
  return 0;
}
