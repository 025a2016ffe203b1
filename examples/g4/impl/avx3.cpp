// The kernels of AVX3 (AVX-512 without VNNI and VBMI).
#define G4_IMPLEMENTATION
#define G4_IMPL_PART_BEST HWY_AVX3
#define G4_IMPL_PART_WORST HWY_AVX3
#include "g4/impl.hpp"
