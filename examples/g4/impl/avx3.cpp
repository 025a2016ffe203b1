// The kernels of AVX3 (AVX-512 without VNNI and VBMI).
#define G4_IMPLEMENTATION
#define G4_IMPL_PART_DISABLES (~(HWY_AVX3 | HWY_BASELINE_TARGETS))
#include "g4/impl.hpp"
