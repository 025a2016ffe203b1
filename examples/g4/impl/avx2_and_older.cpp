// The kernels of AVX2, SSE4, Highway's baseline target and every target of other architectures.
#define G4_IMPLEMENTATION
#define G4_IMPL_PART_BEST HWY_AVX2
#define G4_IMPL_PART_WORST HWY_SCALAR
#include "g4/impl.hpp"
