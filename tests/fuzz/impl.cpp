// The one translation unit of each harness that expands stb_image's implementation (the parsers need no kernels).
#define G4_IMPLEMENTATION
#include "g4/media/stb_image_impl.hpp"
