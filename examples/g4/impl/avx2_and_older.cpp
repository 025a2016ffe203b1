// The kernels of AVX2, SSE4, Highway's baseline target and every target of other architectures.
#define G4_IMPLEMENTATION
#define G4_IMPL_PART_DISABLES ((((HWY_AVX3_DL << 1) - 1) | HWY_AVX3) & ~HWY_BASELINE_TARGETS)
#define G4_IMPL_PART_STATIC
#include "g4/impl.hpp"
