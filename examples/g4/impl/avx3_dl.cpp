// The kernels of AVX3_DL and the newer AVX-512 targets (over half of all the kernels' code).
#define G4_IMPLEMENTATION
#define G4_IMPL_PART_BEST 1
#define G4_IMPL_PART_WORST HWY_AVX3_DL
#include "g4/impl.hpp"
