// The g4 program's one translation unit that expands the kernels' implementation (never built with -march).
#define G4_IMPLEMENTATION
#include "g4/impl.hpp"
