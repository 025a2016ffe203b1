// The benchmarks' one translation unit that expands the kernels' implementation.
#define G4_IMPLEMENTATION
#include "g4/impl.hpp"
