// The one place that includes stb_image.h, so its declarations and its implementation (stb_image_impl.hpp)
// always see the same configuration: memory decoding only (files are read by MappedFile) and only the formats
// g4 accepts, which keeps stb's less-tested decoders (PSD, TGA, HDR, PIC) out of reach of hostile input.
#pragma once
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_MAX_DIMENSIONS (1 << 16)
#include <stb/stb_image.h>
