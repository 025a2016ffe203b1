// One part of the g4 program's kernels: the Highway targets from G4_IMPL_PART_BEST to G4_IMPL_PART_WORST (Highway's
// order: better targets are lower numbers), given by meson.build, which compiles this file once per part.
#define G4_IMPLEMENTATION
#include "g4/impl.hpp"
