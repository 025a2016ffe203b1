// The one translation unit that expands the kernels (never built with -march): the g4 program, the tests and the
// benchmarks link it as the g4_kernels library.
#define G4_IMPLEMENTATION
#include "g4/impl.hpp"
