// The kernels of AVX3_DL and the newer AVX-512 targets (over half of all the kernels' code).
#define G4_IMPLEMENTATION
#define G4_IMPL_PART_DISABLES (~(((HWY_AVX3_DL << 1) - 1) | HWY_BASELINE_TARGETS))
#include "g4/impl.hpp"
