// stb_image's implementation, compiled in the one translation unit that defines G4_IMPLEMENTATION
// (g4/impl.hpp includes this file).
#pragma once
#ifdef G4_IMPLEMENTATION
#include "g4/media/stb_image_config.hpp"  // the declarations and configuration, if not already included
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>  // a second inclusion with the macro set emits the code
#endif
