// The one translation unit of the test programs that expands the kernels' implementation.
#define G4_IMPLEMENTATION
#include "g4/impl.hpp"
