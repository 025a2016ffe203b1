// Media: image decoding, Gemma 4 image preprocessing (target size, torch-exact resize, patchify), WAV decoding,
// resampling, audio framing, and the vision/audio embedders against the reference vectors of
// tests/data/golden/multimodal (transformers 5.17, float32).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION  // test-only: writes the PNG/BMP/JPEG fixtures decoded below
#include <stb/stb_image_write.h>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/safetensors.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/audio_embedder.hpp"
#include "g4/media/image.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/resample.hpp"
#include "g4/media/vision_embedder.hpp"
#include "g4/media/wav.hpp"

using namespace g4;

namespace {

std::string DataDir() {
  const char* d = std::getenv("G4_TEST_DATA");
  return d ? d : "tests/data";
}
std::string Multimodal(const std::string& f) { return DataDir() + "/golden/multimodal/" + f; }

// A reference file read with g4's safetensors reader.
class Golden {
 public:
  explicit Golden(const std::string& path) : file_(path) {}
  const TensorView& operator[](const std::string& name) const {
    const TensorView* t = file_.Find(name);
    REQUIRE_MESSAGE(t != nullptr, name);
    return *t;
  }
  template <typename T> std::vector<T> values(const std::string& name) const {
    const auto s = (*this)[name].as<T>();
    return {s.begin(), s.end()};
  }

 private:
  SafetensorsFile file_;
};

const Golden& GoldenCase() {
  static const Golden g(Multimodal("golden.safetensors"));
  return g;
}
const Golden& GoldenModel() {
  static const Golden g(Multimodal("model.safetensors"));
  return g;
}

// max |a - b| / max |b|: the measure of tests/data/golden/README.md.
double RelError(const float* a, const float* b, size_t n) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    ref = std::max(ref, std::abs(static_cast<double>(b[i])));
  }
  return diff / ref;
}

RgbImage GoldenImage() {
  const TensorView& t = GoldenCase()["image_rgb_u8"];
  RgbImage img;
  img.height = static_cast<int>(t.shape[0]);
  img.width = static_cast<int>(t.shape[1]);
  const auto px = t.as<uint8_t>();
  img.pixels.assign(px.begin(), px.end());
  return img;
}

// Error text of `f()`, which must throw g4::Error.
template <typename F> std::string ErrorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no g4::Error thrown");
  return {};
}

std::vector<std::byte> ToBytes(const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

}  // namespace

// ---- image preprocessing ------------------------------------------------------------------------------------

TEST_CASE("image: golden pixel_values and image_position_ids from image_rgb_u8") {
  const ImagePatches p = PreprocessImage(GoldenImage(), 70, PatchOrder::kHWC);
  REQUIRE(p.grid_width == 10);
  REQUIRE(p.grid_height == 6);
  REQUIRE(p.size() == 60);
  const auto want = GoldenCase().values<float>("pixel_values");  // [70, 6912]; rows 60.. are padding
  double sum = 0, max = 0;
  for (size_t i = 0; i < p.values.size(); ++i) {
    const double d = std::abs(static_cast<double>(p.values[i]) - want[i]) * 255.0;
    sum += d;
    max = std::max(max, d);
  }
  const double mean = sum / static_cast<double>(p.values.size());
  MESSAGE("pixel_values vs torchvision: mean |diff| = " << mean << "/255, max = " << max << "/255");
  CHECK(mean <= 0.5);
  CHECK(max <= 3.0);
  const auto pos = GoldenCase().values<int32_t>("image_position_ids");
  for (size_t i = 0; i < p.positions.size(); ++i) REQUIRE(p.positions[i] == pos[i]);
  for (size_t i = p.positions.size(); i < pos.size(); ++i) REQUIRE(pos[i] == -1);  // only padding follows
}

namespace {

// Double-precision oracle of torch's antialiased bicubic resize, from its definition: output i of an axis is
// centred at (i + 0.5) * scale input pixels; the Keys cubic (a = -0.5), stretched by max(1, scale), weighs
// every input pixel j at (j + 0.5 - centre) / max(1, scale); weights are renormalised over the pixels that
// exist. No fixed point and no 8-bit intermediate, so the uint8 kernel may differ by one step.
struct OracleTaps {
  int first = 0;
  std::vector<double> w;  // weights of input pixels first, first + 1, ...
};
OracleTaps OracleAxisWeights(int n_in, int n_out, int i) {
  const double scale = static_cast<double>(n_in) / n_out, stretch = std::max(1.0, scale);
  const double centre = (i + 0.5) * scale;
  OracleTaps t;  // the cubic is 0 beyond 2 * stretch: look one pixel further on each side and let it say so
  t.first = std::max(0, static_cast<int>(std::floor(centre - 2 * stretch)) - 1);
  const int last = std::min(n_in - 1, static_cast<int>(std::ceil(centre + 2 * stretch)) + 1);
  double sum = 0;
  for (int j = t.first; j <= last; ++j) {
    const double x = std::abs((j + 0.5 - centre) / stretch);
    t.w.push_back(x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? ((-0.5 * x + 2.5) * x - 4) * x + 2 : 0);
    sum += t.w.back();
  }
  for (double& v : t.w) v /= sum;
  return t;
}

RgbImage OracleResize(const RgbImage& img, int out_w, int out_h) {
  std::vector<double> tmp(static_cast<size_t>(img.height) * out_w * 3);  // horizontal pass, unrounded
  for (int x = 0; x < out_w; ++x) {
    const OracleTaps t = OracleAxisWeights(img.width, out_w, x);
    for (int y = 0; y < img.height; ++y)
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (size_t k = 0; k < t.w.size(); ++k) acc += t.w[k] * img.at(y, t.first + static_cast<int>(k), c);
        tmp[(static_cast<size_t>(y) * out_w + x) * 3 + c] = acc;
      }
  }
  RgbImage out;
  out.width = out_w;
  out.height = out_h;
  out.pixels.resize(static_cast<size_t>(out_w) * out_h * 3);
  for (int y = 0; y < out_h; ++y) {
    const OracleTaps t = OracleAxisWeights(img.height, out_h, y);
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (size_t k = 0; k < t.w.size(); ++k) acc += t.w[k] * tmp[((t.first + k) * out_w + x) * 3 + c];
        out.pixels[(static_cast<size_t>(y) * out_w + x) * 3 + c] = static_cast<uint8_t>(std::clamp(std::round(acc), 0.0, 255.0));
      }
  }
  return out;
}

}  // namespace

TEST_CASE("image: downscaling (the antialiased path the golden upscale does not reach) matches a float64 oracle") {
  // A photo-like picture: gradients, a sharp edge and noise, in sizes that exercise strong and mild downscales,
  // a mixed up/down scale and odd ratios.
  struct Case {
    int w, h, out_w, out_h;
  };
  const Case cases[] = {{1900, 1300, 480, 288}, {517, 389, 432, 336}, {300, 90, 96, 144}, {97, 1001, 48, 480}};
  for (const Case& c : cases) {
    RgbImage img;
    img.width = c.w;
    img.height = c.h;
    img.pixels.resize(static_cast<size_t>(c.w) * c.h * 3);
    uint32_t seed = 5;
    for (int y = 0; y < c.h; ++y)
      for (int x = 0; x < c.w; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          seed = seed * 1664525u + 1013904223u;
          const int v = (x * 200 / c.w) * (ch != 1) + (y * 150 / c.h) * (ch != 0) + (x > c.w / 3 ? 40 : 0) + static_cast<int>(seed >> 28);
          img.pixels[(static_cast<size_t>(y) * c.w + x) * 3 + ch] = static_cast<uint8_t>(std::min(v, 255));
        }
    const RgbImage got = ResizeBicubicAntialias(img, c.out_w, c.out_h);
    const RgbImage want = OracleResize(img, c.out_w, c.out_h);
    REQUIRE(got.pixels.size() == want.pixels.size());
    double sum = 0;
    int max = 0;
    for (size_t i = 0; i < got.pixels.size(); ++i) {
      const int d = std::abs(int{got.pixels[i]} - int{want.pixels[i]});
      sum += d;
      max = std::max(max, d);
    }
    const double mean = sum / static_cast<double>(got.pixels.size());
    MESSAGE(c.w << "x" << c.h << " -> " << c.out_w << "x" << c.out_h << " vs float64 oracle: mean |diff| " << mean
                << "/255, max " << max << "/255");
    CHECK(max <= 1);
    CHECK(mean <= 0.25);
  }
}

TEST_CASE("image: target size for every budget (values from HF's rule evaluated in Python)") {
  struct Case {
    int w, h, budget, want_w, want_h;
  };
  const Case cases[] = {
      {230, 150, 70, 480, 288},      {230, 150, 140, 672, 432},     {230, 150, 280, 960, 624},
      {230, 150, 560, 1392, 912},    {230, 150, 1120, 1968, 1296},  {1, 1, 70, 384, 384},
      {1, 1, 280, 768, 768},         {1, 1, 1120, 1584, 1584},      {4000, 3000, 70, 432, 336},
      {4000, 3000, 280, 912, 672},   {4000, 3000, 1120, 1824, 1344},
      // thin strips: the short side rounds to 0, becomes 48, and the long side is floor(long/short)*48 capped
      {10000, 10, 70, 3360, 48},     {10000, 10, 280, 13440, 48},   {10, 10000, 560, 48, 26880},
      {10000, 10, 1120, 50784, 48},  // here the short side does not round to 0
      {480, 288, 70, 480, 288},      // already the target: no resize
  };
  for (const Case& c : cases) {
    const ImageSize s = TargetImageSize(c.w, c.h, c.budget);
    INFO(c.w << "x" << c.h << " budget " << c.budget);
    CHECK(s.width == c.want_w);
    CHECK(s.height == c.want_h);
  }
  CHECK(ErrorOf([] { TargetImageSize(10, 10, 100); }).find("100") != std::string::npos);
  CHECK(ErrorOf([] { TargetImageSize(0, 10, 280); }).find("no pixels") != std::string::npos);
}

TEST_CASE("image: every budget keeps within budget, multiples of 48, aspect within a patch") {
  uint32_t seed = 7;
  for (int budget : kImageBudgets) {
    for (int i = 0; i < 200; ++i) {
      seed = seed * 1664525u + 1013904223u;
      const int w = 1 + static_cast<int>(seed >> 8) % 6000;
      seed = seed * 1664525u + 1013904223u;
      const int h = 1 + static_cast<int>(seed >> 8) % 6000;
      const ImageSize s = TargetImageSize(w, h, budget);
      INFO(w << "x" << h << " budget " << budget);
      REQUIRE(s.width % 48 == 0);
      REQUIRE(s.height % 48 == 0);
      REQUIRE(s.width >= 48);
      REQUIRE(s.height >= 48);
      REQUIRE((s.width / 48) * (s.height / 48) <= budget);
      if (s.width > 48 && s.height > 48)  // sides floor(factor * side / 48) * 48: within one patch of the ideal
        REQUIRE(std::abs(static_cast<double>(s.width) / s.height - static_cast<double>(w) / h) <=
                static_cast<double>(w) / h * (48.0 / s.width + 48.0 / s.height) * 1.01 + 1e-9);
    }
  }
}

TEST_CASE("image: a 1x1 image upscales to constant patches; a target-sized image is only rescaled") {
  RgbImage dot;
  dot.width = dot.height = 1;
  dot.pixels = {200, 17, 0};
  const ImagePatches p = PreprocessImage(dot, 280, PatchOrder::kHWC);
  REQUIRE(p.size() == 256);  // 768x768
  for (size_t i = 0; i < p.values.size(); i += 997) REQUIRE(p.values[i] == static_cast<float>(dot.pixels[i % 3]) * (1.0f / 255.0f));

  RgbImage exact;  // 480x288 is its own target at budget 70: values are pixel / 255 exactly, no resampling
  exact.width = 480;
  exact.height = 288;
  exact.pixels.resize(480 * 288 * 3);
  for (size_t i = 0; i < exact.pixels.size(); ++i) exact.pixels[i] = static_cast<uint8_t>((i * 7919) >> 3);
  const ImagePatches q = PreprocessImage(exact, 70, PatchOrder::kHWC);
  REQUIRE(q.size() == 60);
  for (int gy = 0; gy < 6; ++gy)
    for (int gx = 0; gx < 10; ++gx)
      for (int r = 0; r < 48; r += 5)
        for (int c = 0; c < 48; c += 3)
          for (int ch = 0; ch < 3; ++ch)
            REQUIRE(q.values[(gy * 10 + gx) * 6912 + (r * 48 + c) * 3 + ch] ==
                    static_cast<float>(exact.at(gy * 48 + r, gx * 48 + c, ch)) * (1.0f / 255.0f));
}

TEST_CASE("image: a 10000x10 strip becomes one row of 280 patches") {
  RgbImage strip;
  strip.width = 10000;
  strip.height = 10;
  strip.pixels.resize(10000 * 10 * 3);
  for (int x = 0; x < 10000; ++x)
    for (int y = 0; y < 10; ++y)
      for (int c = 0; c < 3; ++c) strip.pixels[(y * 10000 + x) * 3 + c] = static_cast<uint8_t>(x * 255 / 9999);
  const ImagePatches p = PreprocessImage(strip, 280, PatchOrder::kHWC);
  REQUIRE(p.grid_width == 280);
  REQUIRE(p.grid_height == 1);
  // A ramp stays a ramp: the first patch is dark, the last bright, and columns never decrease by more than
  // the cubic's overshoot.
  CHECK(p.values[0] < 0.02f);
  CHECK(p.values[p.values.size() - 1] > 0.98f);
  CHECK(p.positions[2 * 279] == 279);
  CHECK(p.positions[2 * 279 + 1] == 0);
}

TEST_CASE("image: CHW patch order is the HWC vector permuted") {
  const RgbImage img = GoldenImage();
  const ImagePatches hwc = PreprocessImage(img, 70, PatchOrder::kHWC);
  const ImagePatches chw = PreprocessImage(img, 70, PatchOrder::kCHW);
  REQUIRE(chw.size() == hwc.size());
  for (size_t n = 0; n < hwc.size(); ++n)
    for (int r = 0; r < 48; ++r)
      for (int c = 0; c < 48; ++c)
        for (int ch = 0; ch < 3; ++ch)
          REQUIRE(chw.values[n * 6912 + ch * 2304 + r * 48 + c] == hwc.values[n * 6912 + (r * 48 + c) * 3 + ch]);
  CHECK(chw.positions == hwc.positions);
}

// ---- image decoding -----------------------------------------------------------------------------------------

namespace {

void AppendTo(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<std::byte>*>(ctx);
  const auto* p = static_cast<const std::byte*>(data);
  out->insert(out->end(), p, p + size);
}

// A smooth test picture (JPEG-friendly) with distinct channels.
std::vector<uint8_t> TestPicture(int w, int h, int comp) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) px[(y * w + x) * comp + c] = static_cast<uint8_t>(x * 255 / (w - 1) * (c != 1) + y * 200 / (h - 1) * (c == 1) + 20 * c);
  return px;
}

// GIF89a with a 256-colour palette (index i -> (i, 255 - i, i / 2)) and one image per `frames` entry. The LZW
// stream sends a clear code before every pixel, so each code is a literal and stays 9 bits wide.
std::vector<std::byte> MakeGif(int w, int h, const std::vector<std::vector<uint8_t>>& frames) {
  std::vector<uint8_t> g = {'G', 'I', 'F', '8', '9', 'a', static_cast<uint8_t>(w), 0, static_cast<uint8_t>(h), 0, 0xF7, 0, 0};
  for (int i = 0; i < 256; ++i) g.insert(g.end(), {static_cast<uint8_t>(i), static_cast<uint8_t>(255 - i), static_cast<uint8_t>(i / 2)});
  for (const auto& idx : frames) {
    g.insert(g.end(), {0x2C, 0, 0, 0, 0, static_cast<uint8_t>(w), 0, static_cast<uint8_t>(h), 0, 0, 8});
    std::vector<uint8_t> stream;
    uint32_t acc = 0;
    int bits = 0;
    auto put = [&](uint32_t code) {
      acc |= code << bits;
      bits += 9;
      while (bits >= 8) {
        stream.push_back(static_cast<uint8_t>(acc & 0xFF));
        acc >>= 8;
        bits -= 8;
      }
    };
    for (uint8_t i : idx) {
      put(256);
      put(i);
    }
    put(257);
    if (bits) stream.push_back(static_cast<uint8_t>(acc));
    for (size_t s = 0; s < stream.size(); s += 255) {
      const size_t n = std::min<size_t>(255, stream.size() - s);
      g.push_back(static_cast<uint8_t>(n));
      g.insert(g.end(), stream.begin() + static_cast<std::ptrdiff_t>(s), stream.begin() + static_cast<std::ptrdiff_t>(s + n));
    }
    g.push_back(0);
  }
  g.push_back(0x3B);
  std::vector<std::byte> b(g.size());
  std::memcpy(b.data(), g.data(), g.size());
  return b;
}

}  // namespace

TEST_CASE("image decode: PNG (RGB, grey, RGBA), BMP, PPM and GIF are exact; JPEG is close") {
  const int w = 37, h = 23;
  const std::vector<uint8_t> rgb = TestPicture(w, h, 3);
  auto check_exact = [&](const RgbImage& img) {
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    REQUIRE(img.pixels == rgb);
  };
  std::vector<std::byte> png, bmp, jpg;
  REQUIRE(stbi_write_png_to_func(AppendTo, &png, w, h, 3, rgb.data(), w * 3));
  check_exact(DecodeImage(png, "png"));
  REQUIRE(stbi_write_bmp_to_func(AppendTo, &bmp, w, h, 3, rgb.data()));
  check_exact(DecodeImage(bmp, "bmp"));
  const std::string ppm_header = "P6\n# comment\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
  std::vector<std::byte> ppm = ToBytes(ppm_header);
  for (uint8_t v : rgb) ppm.push_back(std::byte{v});
  check_exact(DecodeImage(ppm, "ppm"));

  REQUIRE(stbi_write_jpg_to_func(AppendTo, &jpg, w, h, 3, rgb.data(), 100));
  const RgbImage j = DecodeImage(jpg, "jpg");
  REQUIRE(j.width == w);
  REQUIRE(j.height == h);
  double err = 0;
  for (size_t i = 0; i < rgb.size(); ++i) err += std::abs(int{j.pixels[i]} - int{rgb[i]});
  CHECK(err / static_cast<double>(rgb.size()) < 2.0);  // quality 100 on a smooth picture

  const std::vector<uint8_t> grey = TestPicture(w, h, 1);
  std::vector<std::byte> grey_png;
  REQUIRE(stbi_write_png_to_func(AppendTo, &grey_png, w, h, 1, grey.data(), w));
  const RgbImage g = DecodeImage(grey_png, "grey png");
  for (size_t i = 0; i < grey.size(); ++i)
    for (int c = 0; c < 3; ++c) REQUIRE(g.pixels[i * 3 + c] == grey[i]);

  const std::vector<uint8_t> rgba = TestPicture(w, h, 4);
  std::vector<std::byte> rgba_png;
  REQUIRE(stbi_write_png_to_func(AppendTo, &rgba_png, w, h, 4, rgba.data(), w * 4));
  const RgbImage a = DecodeImage(rgba_png, "rgba png");
  for (size_t i = 0; i < grey.size(); ++i)
    for (int c = 0; c < 3; ++c) REQUIRE(a.pixels[i * 3 + c] == rgba[i * 4 + c]);  // alpha dropped

  std::vector<uint8_t> first(6 * 4), second(6 * 4, 9);
  for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<uint8_t>(i * 10);
  const RgbImage gif = DecodeImage(MakeGif(6, 4, {first, second}), "gif");
  REQUIRE(gif.width == 6);
  REQUIRE(gif.height == 4);
  for (size_t i = 0; i < first.size(); ++i) {
    REQUIRE(gif.pixels[i * 3 + 0] == first[i]);
    REQUIRE(gif.pixels[i * 3 + 1] == 255 - first[i]);
    REQUIRE(gif.pixels[i * 3 + 2] == first[i] / 2);
  }
}

TEST_CASE("image decode: JPEG EXIF orientation is applied as PIL's exif_transpose does") {
  const int w = 5, h = 3;  // distinct, well-separated colours per pixel so JPEG noise cannot confuse them
  std::vector<uint8_t> px(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      px[(y * w + x) * 3 + 0] = static_cast<uint8_t>(x * 60);
      px[(y * w + x) * 3 + 1] = static_cast<uint8_t>(y * 120);
      px[(y * w + x) * 3 + 2] = 128;
    }
  std::vector<std::byte> jpg;
  REQUIRE(stbi_write_jpg_to_func(AppendTo, &jpg, w, h, 3, px.data(), 100));
  const RgbImage stored = DecodeImage(jpg, "plain.jpg");
  // The EXIF spec names, per orientation, the visual side of stored row 0 and of stored column 0. As a map:
  // the output corner showing stored (0, 0), and the output step of one stored column (+sx) and row (+sy).
  struct Placement {
    bool right, bottom;  // corner of stored (0, 0)
    int sx_dx, sx_dy, sy_dx, sy_dy;
  };
  const Placement kSpec[9] = {{},
                              {false, false, 1, 0, 0, 1},    // 1: row 0 top,    column 0 left
                              {true, false, -1, 0, 0, 1},    // 2: row 0 top,    column 0 right
                              {true, true, -1, 0, 0, -1},    // 3: row 0 bottom, column 0 right
                              {false, true, 1, 0, 0, -1},    // 4: row 0 bottom, column 0 left
                              {false, false, 0, 1, 1, 0},    // 5: row 0 left,   column 0 top
                              {true, false, 0, 1, -1, 0},    // 6: row 0 right,  column 0 top
                              {true, true, 0, -1, -1, 0},    // 7: row 0 right,  column 0 bottom
                              {false, true, 0, -1, 1, 0}};   // 8: row 0 left,   column 0 bottom
  for (bool big_endian : {false, true}) {
    for (int o = 1; o <= 8; ++o) {
      // APP1 "Exif\0\0" + TIFF header + IFD0 with one entry (Orientation, SHORT, 1 value) inserted after SOI.
      std::vector<uint8_t> tiff = big_endian ? std::vector<uint8_t>{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                                                                    0, static_cast<uint8_t>(o), 0, 0, 0, 0, 0, 0}
                                             : std::vector<uint8_t>{'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
                                                                    static_cast<uint8_t>(o), 0, 0, 0, 0, 0, 0, 0};
      const size_t len = 2 + 6 + tiff.size();
      std::vector<uint8_t> app1 = {0xFF, 0xE1, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 'E', 'x', 'i', 'f', 0, 0};
      app1.insert(app1.end(), tiff.begin(), tiff.end());
      std::vector<std::byte> with = jpg;
      for (size_t i = 0; i < app1.size(); ++i) with.insert(with.begin() + 2 + static_cast<std::ptrdiff_t>(i), std::byte{app1[i]});
      INFO("orientation " << o << (big_endian ? " (MM)" : " (II)"));
      CHECK(DecodeImage(with, "exif.jpg", Orientation::kAsStored).pixels == stored.pixels);
      const RgbImage up = DecodeImage(with, "exif.jpg");
      REQUIRE(up.width == (o >= 5 ? h : w));
      REQUIRE(up.height == (o >= 5 ? w : h));
      const Placement& p = kSpec[o];
      for (int sy = 0; sy < h; ++sy)
        for (int sx = 0; sx < w; ++sx) {
          const int x = (p.right ? up.width - 1 : 0) + sx * p.sx_dx + sy * p.sy_dx;
          const int y = (p.bottom ? up.height - 1 : 0) + sx * p.sx_dy + sy * p.sy_dy;
          for (int c = 0; c < 3; ++c) REQUIRE(up.at(y, x, c) == stored.at(sy, sx, c));
        }
    }
  }
}

TEST_CASE("image decode: files, truncated and hostile input give errors naming the source") {
  const std::string dir = (std::filesystem::temp_directory_path() / "g4_test_media").string();
  std::filesystem::create_directories(dir);
  const int w = 64, h = 64;
  std::vector<uint8_t> noise(w * h * 3);
  uint32_t seed = 1;
  for (uint8_t& v : noise) v = static_cast<uint8_t>((seed = seed * 1664525u + 1013904223u) >> 24);
  std::vector<std::byte> png;
  REQUIRE(stbi_write_png_to_func(AppendTo, &png, w, h, 3, noise.data(), w * 3));
  const std::string path = dir + "/noise.png";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  CHECK(LoadImage(path).pixels == noise);

  const std::string cut = dir + "/truncated.png";
  std::ofstream(cut, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size() / 2));
  const std::string e1 = ErrorOf([&] { LoadImage(cut); });
  CHECK(e1.find(cut) != std::string::npos);
  CHECK(e1.find("cannot decode image") != std::string::npos);
  MESSAGE("truncated PNG: " << e1);

  CHECK(ErrorOf([&] { LoadImage(dir + "/missing.png"); }).find("missing.png") != std::string::npos);
  CHECK(ErrorOf([] { DecodeImage(ToBytes("this is not an image at all"), "garbage"); }).find("garbage") != std::string::npos);
  CHECK(ErrorOf([] { DecodeImage({}, "empty"); }).find("empty") != std::string::npos);

  // PNG headers announcing 16384 x 16384 (268 Mpx, past g4's limit) and 30000 x 30000 (past stb's own too): both
  // refused from the header by g4's own check, whatever the stb version, before any pixel memory is allocated.
  auto png_header = [](uint8_t side_hi, uint8_t side_lo) {
    const uint8_t h[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, side_hi, side_lo,
                         0, 0, side_hi, side_lo, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    std::vector<std::byte> b(sizeof(h));
    std::memcpy(b.data(), h, sizeof(h));
    return b;
  };
  const std::string e2 = ErrorOf([&] { DecodeImage(png_header(0x40, 0x00), "big.png"); });
  CHECK(e2.find("big.png: image of 16384x16384 pixels is larger than") != std::string::npos);
  const std::string e3 = ErrorOf([&] { DecodeImage(png_header(0x75, 0x30), "huge.png"); });
  CHECK(e3.find("huge.png: image of 30000x30000 pixels is larger than") != std::string::npos);
  MESSAGE("oversized PNG headers: " << e2 << " | " << e3);
  std::filesystem::remove_all(dir);
}

// ---- WAV ------------------------------------------------------------------------------------------------------

namespace {

struct WavSpec {
  uint16_t tag = 1;  // 1 PCM, 3 float
  uint16_t channels = 1;
  uint32_t rate = 16000;
  uint16_t bits = 16;
  bool extensible = false;
};

void Put16(std::vector<std::byte>& b, uint16_t v) { for (int i = 0; i < 2; ++i) b.push_back(std::byte(v >> (8 * i))); }
void Put32(std::vector<std::byte>& b, uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(std::byte(v >> (8 * i))); }
void PutTag(std::vector<std::byte>& b, const char* tag) { for (int i = 0; i < 4; ++i) b.push_back(std::byte(tag[i])); }

// A WAV file around `data`; `data_len` overrides the data chunk's declared length. A LIST chunk before
// fmt checks that unknown chunks are skipped.
std::vector<std::byte> MakeWav(const WavSpec& s, const std::vector<std::byte>& data, int64_t data_len = -1) {
  std::vector<std::byte> b;
  PutTag(b, "RIFF");
  Put32(b, 0);  // patched below
  PutTag(b, "WAVE");
  PutTag(b, "LIST");
  Put32(b, 5);
  for (int i = 0; i < 6; ++i) b.push_back(std::byte{'x'});  // 5 bytes + 1 pad byte
  PutTag(b, "fmt ");
  Put32(b, s.extensible ? 40 : 16);
  Put16(b, s.extensible ? 0xFFFE : s.tag);
  Put16(b, s.channels);
  Put32(b, s.rate);
  Put32(b, s.rate * s.channels * s.bits / 8);
  Put16(b, static_cast<uint16_t>(s.channels * s.bits / 8));
  Put16(b, s.bits);
  if (s.extensible) {
    Put16(b, 22);
    Put16(b, s.bits);
    Put32(b, 0);
    Put16(b, s.tag);
    const uint8_t tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
    for (uint8_t v : tail) b.push_back(std::byte{v});
  }
  PutTag(b, "data");
  Put32(b, data_len >= 0 ? static_cast<uint32_t>(data_len) : static_cast<uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  const uint32_t riff = static_cast<uint32_t>(b.size() - 8);
  std::memcpy(b.data() + 4, &riff, 4);
  return b;
}

}  // namespace

TEST_CASE("wav: every encoding decodes to the expected floats; channels are averaged") {
  // Full-scale and mid values per encoding, with their float meaning (2^-(bits-1) scaling; 8-bit offset 128).
  {
    std::vector<std::byte> d = {std::byte{0}, std::byte{128}, std::byte{255}, std::byte{192}};
    const MonoAudio a = DecodeWav(MakeWav({1, 1, 8000, 8}, d), "u8");
    CHECK(a.sample_rate == 8000);
    CHECK(a.samples == std::vector<float>{-1.0f, 0.0f, 127.0f / 128, 0.5f});
  }
  {
    std::vector<std::byte> d;
    for (int16_t v : {int16_t{-32768}, int16_t{0}, int16_t{16384}, int16_t{32767}}) Put16(d, static_cast<uint16_t>(v));
    CHECK(DecodeWav(MakeWav({1, 1, 16000, 16}, d), "s16").samples == std::vector<float>{-1.0f, 0.0f, 0.5f, 32767.0f / 32768});
  }
  {
    std::vector<std::byte> d;
    for (int32_t v : {-8388608, -4194304, 1, 8388607})
      for (int i = 0; i < 3; ++i) d.push_back(std::byte(static_cast<uint32_t>(v) >> (8 * i)));
    CHECK(DecodeWav(MakeWav({1, 1, 16000, 24}, d), "s24").samples ==
          std::vector<float>{-1.0f, -0.5f, 1.0f / 8388608, 8388607.0f / 8388608});
  }
  {
    std::vector<std::byte> d;
    for (int32_t v : {INT32_MIN, 1 << 30, 0}) Put32(d, static_cast<uint32_t>(v));
    CHECK(DecodeWav(MakeWav({1, 1, 16000, 32}, d), "s32").samples == std::vector<float>{-1.0f, 0.5f, 0.0f});
  }
  {
    std::vector<std::byte> d;
    for (float v : {0.25f, -0.75f, 1.5f}) {
      uint32_t u;
      std::memcpy(&u, &v, 4);
      Put32(d, u);
    }
    CHECK(DecodeWav(MakeWav({3, 1, 16000, 32}, d), "f32").samples == std::vector<float>{0.25f, -0.75f, 1.5f});
    CHECK(DecodeWav(MakeWav({3, 1, 16000, 32, true}, d), "f32 extensible").samples == std::vector<float>{0.25f, -0.75f, 1.5f});
  }
  {
    std::vector<std::byte> d;
    for (double v : {0.125, -1.0}) {
      uint64_t u;
      std::memcpy(&u, &v, 8);
      Put32(d, static_cast<uint32_t>(u));
      Put32(d, static_cast<uint32_t>(u >> 32));
    }
    CHECK(DecodeWav(MakeWav({3, 1, 16000, 64}, d), "f64").samples == std::vector<float>{0.125f, -1.0f});
  }
  {
    // Stereo and 3-channel PCM, plain and extensible: the mean of the channels.
    std::vector<std::byte> d;
    for (int16_t v : {int16_t{16384}, int16_t{0}, int16_t{-16384}, int16_t{-16384}}) Put16(d, static_cast<uint16_t>(v));
    CHECK(DecodeWav(MakeWav({1, 2, 44100, 16}, d), "stereo").samples == std::vector<float>{0.25f, -0.5f});
    CHECK(DecodeWav(MakeWav({1, 2, 44100, 16, true}, d), "stereo extensible").samples == std::vector<float>{0.25f, -0.5f});
    std::vector<std::byte> d3;
    for (int16_t v : {int16_t{3 * 4096}, int16_t{0}, int16_t{-3 * 4096}, int16_t{9 * 1024}, int16_t{9 * 1024}, int16_t{9 * 1024}})
      Put16(d3, static_cast<uint16_t>(v));
    CHECK(DecodeWav(MakeWav({1, 3, 48000, 16}, d3), "3ch").samples == std::vector<float>{0.0f, 9.0f / 32});
  }
}

TEST_CASE("wav: hostile and truncated files give clear errors") {
  std::vector<std::byte> d(64, std::byte{0});
  const auto wav = MakeWav({1, 1, 16000, 16}, d);
  const std::string longer = ErrorOf([&] { DecodeWav(MakeWav({1, 1, 16000, 16}, d, 1 << 20), "long.wav"); });
  CHECK(longer.find("long.wav") != std::string::npos);
  CHECK(longer.find("'data' chunk of 1048576 bytes is longer than the file") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 16000, 16}, d, 0xFFFFFFFFu), "stream.wav"); }).find("longer than the file") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 0, 16000, 16}, d), "zero.wav"); }).find("0 channels") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 5, 16}, d), "slow.wav"); }).find("sample rate 5 Hz") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 2000000000u, 16}, d), "fast.wav"); }).find("sample rate 2000000000 Hz") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({1, 1, 16000, 12}, d), "12bit.wav"); }).find("12 bits") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({2, 1, 16000, 16}, d), "adpcm.wav"); }).find("format tag 2") != std::string::npos);
  CHECK(ErrorOf([&] { DecodeWav(MakeWav({3, 1, 16000, 16}, d), "f16.wav"); }).find("float with 16 bits") != std::string::npos);
  for (size_t cut : {size_t{0}, size_t{4}, size_t{11}, size_t{20}, size_t{30}, size_t{44}}) {
    const std::vector<std::byte> head(wav.begin(), wav.begin() + static_cast<std::ptrdiff_t>(cut));
    const std::string e = ErrorOf([&] { DecodeWav(head, "cut.wav"); });
    INFO(cut << ": " << e);
    CHECK(e.find("cut.wav") != std::string::npos);
  }
  std::vector<std::byte> bad_align = wav;
  bad_align[12 + 8 + 6 + 8 + 12] = std::byte{3};  // block align field of fmt
  CHECK(ErrorOf([&] { DecodeWav(bad_align, "align.wav"); }).find("block align 3") != std::string::npos);
  CHECK(ErrorOf([] { DecodeWav(ToBytes(std::string("RIFF\x04\0\0\0WAVE", 12)), "nofmt.wav"); }).find("no fmt chunk") != std::string::npos);
  CHECK(ErrorOf([] { LoadWav("/nonexistent/x.wav"); }).find("/nonexistent/x.wav") != std::string::npos);
}

// ---- resampling and framing -------------------------------------------------------------------------------

namespace {

// Least-squares fit of a*sin + b*cos at `freq` over y[from, to); returns amplitude and the residual RMS.
struct SineFit {
  double amplitude, residual_rms;
};
SineFit FitSine(const std::vector<float>& y, double rate, double freq, size_t from, size_t to) {
  double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0;
  for (size_t n = from; n < to; ++n) {
    const double w = 2 * M_PI * freq * static_cast<double>(n) / rate, s = std::sin(w), c = std::cos(w);
    ss += s * s;
    sc += s * c;
    cc += c * c;
    ys += y[n] * s;
    yc += y[n] * c;
  }
  const double det = ss * cc - sc * sc, a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  double r = 0;
  for (size_t n = from; n < to; ++n) {
    const double w = 2 * M_PI * freq * static_cast<double>(n) / rate;
    const double e = y[n] - a * std::sin(w) - b * std::cos(w);
    r += e * e;
  }
  return {std::hypot(a, b), std::sqrt(r / static_cast<double>(to - from))};
}

std::vector<float> Sine(double freq, double amp, int rate, size_t n) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(amp * std::sin(2 * M_PI * freq * static_cast<double>(i) / rate));
  return x;
}

}  // namespace

TEST_CASE("resample: a 1 kHz sine keeps its frequency and amplitude; content above 8 kHz is removed") {
  for (int rate : {44100, 48000, 22050, 8000, 11025, 96000}) {
    const std::vector<float> x = Sine(1000.0, 0.5, rate, static_cast<size_t>(rate));  // 1 s
    const std::vector<float> y = Resample(x, rate, 16000);
    REQUIRE(y.size() == 16000);
    const SineFit f = FitSine(y, 16000, 1000.0, 2000, 14000);  // away from the zero-padded edges
    const double db = 20 * std::log10(f.amplitude / 0.5);
    INFO(rate << " Hz -> 16 kHz: gain " << db << " dB, residual " << f.residual_rms);
    if (rate == 44100) MESSAGE("1 kHz sine 44.1 -> 16 kHz: gain error " << db << " dB, residual rms " << f.residual_rms / 0.5 << " of amplitude");
    CHECK(std::abs(db) < 0.1);
    CHECK(f.residual_rms < 1e-4 * 0.5);  // nothing but the 1 kHz tone: the frequency is exact
  }
  // A 10 kHz tone cannot be represented at 16 kHz; it must not alias to 6 kHz.
  const std::vector<float> hi = Resample(Sine(10000.0, 0.5, 44100, 44100), 44100, 16000);
  double rms = 0;
  for (size_t n = 2000; n < 14000; ++n) rms += static_cast<double>(hi[n]) * hi[n];
  rms = std::sqrt(rms / 12000);
  MESSAGE("10 kHz tone 44.1 -> 16 kHz: " << 20 * std::log10(rms / (0.5 / std::sqrt(2))) << " dB");
  CHECK(rms < 1e-3 * 0.5);
  // A constant passes unchanged (each phase of the filter sums to one).
  const std::vector<float> dc = Resample(std::vector<float>(5000, 0.25f), 44100, 16000);
  for (size_t n = 200; n < dc.size() - 200; ++n) REQUIRE(std::abs(dc[n] - 0.25f) < 1e-6f);
  CHECK(Resample(std::vector<float>{1, 2, 3}, 16000, 16000) == std::vector<float>{1, 2, 3});
  CHECK(ErrorOf([] { Resample(std::vector<float>{1}, 0, 16000); }).find("resample") != std::string::npos);
}

TEST_CASE("audio: golden audio_features from audio_waveform; 30 s limit; splitting") {
  const auto wave = GoldenCase().values<float>("audio_waveform");
  const auto want = GoldenCase().values<float>("audio_features");  // [26, 640]
  const std::vector<AudioFrames> f = FrameAudio(wave);
  REQUIRE(f.size() == 1);
  REQUIRE(f[0].size() == 26);
  REQUIRE(f[0].values == want);

  const std::vector<float> limit(kMaxAudioSamples, 0.5f);
  CHECK(FrameAudio(limit)[0].size() == 750);
  std::vector<float> over(kMaxAudioSamples + 1, 0.5f);
  over.back() = -1.0f;
  CHECK(ErrorOf([&] { FrameAudio(over); }).find("30 s") != std::string::npos);
  const std::vector<AudioFrames> pieces = FrameAudio(over, LongAudio::kSplit);
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].size() == 750);
  REQUIRE(pieces[1].size() == 1);
  CHECK(pieces[1].values[0] == -1.0f);
  for (size_t i = 1; i < kAudioFrameSamples; ++i) REQUIRE(pieces[1].values[i] == 0.0f);  // zero-padded tail
  CHECK(ErrorOf([] { FrameAudio({}); }).find("no samples") != std::string::npos);
}

TEST_CASE("audio: a 44.1 kHz stereo WAV file through LoadAudio16k") {
  const std::string dir = (std::filesystem::temp_directory_path() / "g4_test_media_wav").string();
  std::filesystem::create_directories(dir);
  std::vector<std::byte> d;
  const std::vector<float> tone = Sine(1000.0, 0.5, 44100, 44100);
  for (float v : tone)
    for (int c = 0; c < 2; ++c) Put16(d, static_cast<uint16_t>(static_cast<int16_t>(std::lround(v * 32767))));
  const auto wav = MakeWav({1, 2, 44100, 16}, d);
  const std::string path = dir + "/tone.wav";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(wav.data()), static_cast<std::streamsize>(wav.size()));
  const std::vector<float> y = LoadAudio16k(path);
  REQUIRE(y.size() == 16000);
  CHECK(std::abs(20 * std::log10(FitSine(y, 16000, 1000.0, 2000, 14000).amplitude / (0.5 * 32767 / 32768))) < 0.1);
  CHECK(FrameAudio(y)[0].size() == 25);
  std::filesystem::remove_all(dir);
}

// ---- embedders ----------------------------------------------------------------------------------------------

namespace {

VisionWeights GoldenVisionWeights() {
  const Golden& m = GoldenModel();
  VisionWeights w;
  w.patch_ln1_w = m["model.vision_embedder.patch_ln1.weight"];
  w.patch_ln1_b = m["model.vision_embedder.patch_ln1.bias"];
  w.patch_dense_w = m["model.vision_embedder.patch_dense.weight"];
  w.patch_dense_b = m["model.vision_embedder.patch_dense.bias"];
  w.patch_ln2_w = m["model.vision_embedder.patch_ln2.weight"];
  w.patch_ln2_b = m["model.vision_embedder.patch_ln2.bias"];
  w.pos_embedding = m["model.vision_embedder.pos_embedding"];
  w.pos_norm_w = m["model.vision_embedder.pos_norm.weight"];
  w.pos_norm_b = m["model.vision_embedder.pos_norm.bias"];
  w.projection = m["model.embed_vision.embedding_projection.weight"];
  return w;
}

// HWC index of CHW index k within one patch (the mmproj converter's column permutation).
size_t HwcOfChw(size_t k) {
  const size_t c = k / 2304, r = k % 2304 / 48, col = k % 48;
  return (r * 48 + col) * 3 + c;
}

// Holds re-laid-out copies of 16-bit tensors for the GGUF-style (CHW, [2, n_pos, dim]) weights.
struct Relaid {
  std::vector<AlignedBuffer> bufs;
  TensorView Make(const TensorView& src, Shape shape, const std::function<size_t(size_t)>& src_index) {
    REQUIRE(src.type == Type::BF16);
    bufs.emplace_back(src.nbytes);
    const auto in = src.as<uint16_t>();
    auto* out = bufs.back().as<uint16_t>();
    for (size_t i = 0; i < in.size(); ++i) out[i] = in[src_index(i)];
    return TensorView{src.name + " (relaid)", src.type, shape, bufs.back().data(), src.nbytes};
  }
};

}  // namespace

TEST_CASE("vision embedder: golden image_embeddings, HWC safetensors layout and CHW GGUF layout") {
  ThreadPool pool(2);
  const auto pixels = GoldenCase().values<float>("pixel_values");  // [70, 6912]
  const auto pos = GoldenCase().values<int32_t>("image_position_ids");
  const auto want = GoldenCase().values<float>("image_embeddings");  // [60, 128]
  const size_t n = 60;
  const std::vector<float> px(pixels.begin(), pixels.begin() + n * 6912);
  const std::vector<int32_t> ps(pos.begin(), pos.begin() + n * 2);

  const VisionEmbedder hwc(GoldenVisionWeights());
  REQUIRE(hwc.hidden() == 128);
  REQUIRE(hwc.dim() == 64);
  std::vector<float> out(n * 128);
  hwc.Embed(px, ps, n, out.data(), pool);
  const double rel_hwc = RelError(out.data(), want.data(), out.size());
  MESSAGE("image_embeddings (HWC, safetensors layout): rel err " << rel_hwc);
  CHECK(rel_hwc <= 1e-4);

  // End to end from the source pixels.
  const std::vector<float> e2e = hwc.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kHWC), pool);
  const double rel_e2e = RelError(e2e.data(), want.data(), e2e.size());
  MESSAGE("image_embeddings from image_rgb_u8 (decode-free end to end): rel err " << rel_e2e);
  CHECK(rel_e2e <= 1e-4);

  // The same weights as llama.cpp's mmproj holds them: patch_dense columns and patch_ln1 in CHW order, the
  // position table as [2, n_pos, dim].
  VisionWeights g = GoldenVisionWeights();
  Relaid relaid;
  const int64_t dim = 64, n_pos = g.pos_embedding.shape[0];
  g.patch_ln1_w = relaid.Make(g.patch_ln1_w, Shape{6912}, HwcOfChw);
  g.patch_ln1_b = relaid.Make(g.patch_ln1_b, Shape{6912}, HwcOfChw);
  g.patch_dense_w = relaid.Make(g.patch_dense_w, Shape{dim, 6912}, [](size_t i) { return i / 6912 * 6912 + HwcOfChw(i % 6912); });
  g.pos_embedding = relaid.Make(g.pos_embedding, Shape{2, n_pos, dim}, [&](size_t i) {
    const size_t axis = i / static_cast<size_t>(n_pos * dim), p = i / dim % n_pos, k = i % dim;
    return (p * 2 + axis) * dim + k;
  });
  g.chw_patch_order = true;
  g.pos_table_planar = true;
  const VisionEmbedder chw(g);
  std::vector<float> px_chw(px.size());
  for (size_t t = 0; t < n; ++t)
    for (size_t k = 0; k < 6912; ++k) px_chw[t * 6912 + k] = px[t * 6912 + HwcOfChw(k)];
  std::vector<float> out_chw(n * 128);
  chw.Embed(px_chw, ps, n, out_chw.data(), pool);
  const double rel_chw = RelError(out_chw.data(), want.data(), out_chw.size());
  MESSAGE("image_embeddings (CHW, GGUF layout): rel err " << rel_chw);
  CHECK(rel_chw <= 1e-4);
  const std::vector<float> e2e_chw = chw.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kCHW), pool);
  CHECK(RelError(e2e_chw.data(), want.data(), e2e_chw.size()) <= 1e-4);

  // Mismatches are errors, not garbage.
  CHECK(ErrorOf([&] { chw.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kHWC), pool); }).find("order") != std::string::npos);
  std::vector<int32_t> far = ps;
  far[1] = 5000;
  CHECK(ErrorOf([&] { hwc.Embed(px, far, n, out.data(), pool); }).find("5000") != std::string::npos);
  CHECK(ErrorOf([&] { hwc.Embed(px, ps, n - 1, out.data(), pool); }).find("patch values") != std::string::npos);
  VisionWeights bad = GoldenVisionWeights();
  bad.pos_table_planar = true;  // [64, 2, 64] read as [2, n, 64]
  CHECK(ErrorOf([&] { VisionEmbedder{bad}; }).find("pos_embedding") != std::string::npos);
  bad = GoldenVisionWeights();
  bad.patch_ln2_w = bad.patch_ln1_w;
  CHECK(ErrorOf([&] { VisionEmbedder{bad}; }).find("patch_ln2 weight has shape [6912], expected [64]") != std::string::npos);
}

TEST_CASE("audio embedder: golden audio_embeddings; a zero frame maps to zero") {
  ThreadPool pool(2);
  const AudioEmbedder emb(GoldenModel()["model.embed_audio.embedding_projection.weight"]);
  REQUIRE(emb.hidden() == 128);
  const auto want = GoldenCase().values<float>("audio_embeddings");  // [26, 128]
  const std::vector<AudioFrames> f = FrameAudio(GoldenCase().values<float>("audio_waveform"));
  const std::vector<float> out = emb.Embed(f[0], pool);
  REQUIRE(out.size() == want.size());
  const double rel = RelError(out.data(), want.data(), out.size());
  MESSAGE("audio_embeddings: rel err " << rel);
  CHECK(rel <= 1e-4);

  std::vector<float> frames(2 * 640, 0.0f);
  for (size_t i = 640; i < 1280; ++i) frames[i] = 0.25f;
  std::vector<float> two(2 * 128, 1.0f);
  emb.Embed(frames.data(), 2, two.data(), pool);
  for (size_t i = 0; i < 128; ++i) REQUIRE(two[i] == 0.0f);
  // A constant frame normalises to all ones: the embedding is the projection's row sums.
  const TensorView& proj = GoldenModel()["model.embed_audio.embedding_projection.weight"];
  std::vector<float> row(640);
  for (int64_t o = 0; o < 128; ++o) {
    DequantizeTensorRow(proj, o, row.data());
    double s = 0;
    for (float v : row) s += v;
    REQUIRE(two[128 + static_cast<size_t>(o)] == doctest::Approx(s * 0.25 / std::sqrt(0.0625 + 1e-6)).epsilon(1e-5));
  }
  CHECK(ErrorOf([&] { AudioEmbedder{GoldenModel()["model.embed_vision.embedding_projection.weight"]}; }).find("expected [128, 640]") != std::string::npos);
}

TEST_CASE("embedders: llama.cpp mmproj GGUF (CHW patches, [2, n_pos, dim] positions) reproduces the golden") {
  ThreadPool pool(2);
  const GgufFile mmproj(DataDir() + "/golden-gguf/multimodal-mmproj-bf16.gguf");
  auto t = [&](const std::string& name) {
    const TensorView* v = mmproj.FindTensor(name);
    REQUIRE_MESSAGE(v != nullptr, name);
    return *v;
  };
  VisionWeights w;
  w.patch_ln1_w = t("v.patch_norm.1.weight");
  w.patch_ln1_b = t("v.patch_norm.1.bias");
  w.patch_dense_w = t("v.patch_embd.weight");
  w.patch_dense_b = t("v.patch_embd.bias");
  w.patch_ln2_w = t("v.patch_norm.2.weight");
  w.patch_ln2_b = t("v.patch_norm.2.bias");
  w.pos_embedding = t("v.position_embd.weight");
  w.pos_norm_w = t("v.patch_norm.3.weight");
  w.pos_norm_b = t("v.patch_norm.3.bias");
  w.projection = t("mm.input_projection.weight");
  w.chw_patch_order = true;
  w.pos_table_planar = true;
  const VisionEmbedder vision(w);
  const auto want_img = GoldenCase().values<float>("image_embeddings");
  const std::vector<float> img = vision.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kCHW), pool);
  REQUIRE(img.size() == want_img.size());
  const double rel_img = RelError(img.data(), want_img.data(), img.size());
  MESSAGE("image_embeddings from the mmproj GGUF: rel err " << rel_img);
  CHECK(rel_img <= 1e-4);

  const AudioEmbedder audio(t("mm.a.input_projection.weight"));
  const auto want_audio = GoldenCase().values<float>("audio_embeddings");
  const std::vector<float> aud = audio.Embed(FrameAudio(GoldenCase().values<float>("audio_waveform"))[0], pool);
  REQUIRE(aud.size() == want_audio.size());
  const double rel_audio = RelError(aud.data(), want_audio.data(), aud.size());
  MESSAGE("audio_embeddings from the mmproj GGUF: rel err " << rel_audio);
  CHECK(rel_audio <= 1e-4);
}

TEST_CASE("image decode: a JPEG Huffman table of more than 256 codes is refused before stb reads it") {
  const int w = 16, h = 16;
  const std::vector<uint8_t> rgb = TestPicture(w, h, 3);
  std::vector<std::byte> jpg;
  REQUIRE(stbi_write_jpg_to_func(AppendTo, &jpg, w, h, 3, rgb.data(), 90));
  REQUIRE(DecodeImage(jpg, "ok.jpg").width == w);
  size_t dht = 0;
  for (size_t i = 2; i + 1 < jpg.size() && !dht; ++i)
    if (jpg[i] == std::byte{0xFF} && jpg[i + 1] == std::byte{0xC4}) dht = i;
  REQUIRE(dht != 0);
  std::vector<std::byte> bad = jpg;
  bad[dht + 5 + 15] = std::byte{0xFF};  // the first table's count of 16-bit codes: the sum now exceeds 256
  const std::string e = ErrorOf([&] { DecodeImage(bad, "bad.jpg"); });
  CHECK(e.find("bad.jpg: cannot decode image: corrupt JPEG (Huffman table of") != std::string::npos);
  const std::vector<std::byte> cut(jpg.begin(), jpg.begin() + static_cast<std::ptrdiff_t>(dht + 30));
  // Cut after its tables: Debian 12's stb refuses it, Debian 13's decodes what is there (the rest filled in). Either
  // is fine; a crash, another exception or another size is not.
  try {
    const RgbImage img = DecodeImage(cut, "cut.jpg");
    CHECK(img.width == w);
    CHECK(img.height == h);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("cut.jpg: cannot decode image") != std::string::npos);
  }
}

TEST_CASE("decoders: randomly corrupted images and WAVs decode or throw g4::Error, never crash") {
  // Run under ASan/UBSan by tests/run_all.sh; here every outcome but a g4::Error or a valid result is a bug.
  const int w = 24, h = 16;
  const std::vector<uint8_t> rgb = TestPicture(w, h, 3);
  // JPEG is left out: corrupt JPEG scan data makes Debian's stb 2.27 shift by more than 31 bits (arithmetic
  // only, fixed in stb 2.28), which UBSan reports; its memory-safety bug is guarded and tested below.
  std::vector<std::vector<std::byte>> images(3);
  REQUIRE(stbi_write_png_to_func(AppendTo, &images[0], w, h, 3, rgb.data(), w * 3));
  REQUIRE(stbi_write_bmp_to_func(AppendTo, &images[1], w, h, 3, rgb.data()));
  REQUIRE(stbi_write_png_to_func(AppendTo, &images[2], w, h, 1, rgb.data(), w));
  std::vector<uint8_t> idx(6 * 4, 7);
  images.push_back(MakeGif(6, 4, {idx}));
  std::vector<std::byte> pcm(400);
  for (size_t i = 0; i < pcm.size(); ++i) pcm[i] = std::byte(i * 37);
  const std::vector<std::vector<std::byte>> wavs = {MakeWav({1, 2, 44100, 16}, pcm), MakeWav({3, 1, 16000, 32, true}, pcm),
                                                    MakeWav({1, 3, 8000, 24}, std::vector<std::byte>(pcm.begin(), pcm.begin() + 396))};
  uint32_t seed = 99;
  auto rnd = [&] { return (seed = seed * 1664525u + 1013904223u) >> 8; };
  size_t decoded = 0, refused = 0;
  auto mutate = [&](std::vector<std::byte> b) {
    const int kind = static_cast<int>(rnd() % 3);
    if (kind == 0) b.resize(rnd() % b.size());  // truncate
    const int flips = 1 + static_cast<int>(rnd() % 4);
    for (int k = 0; k < flips && !b.empty(); ++k) b[rnd() % b.size()] = std::byte(rnd());  // overwrite bytes
    return b;
  };
  for (int iter = 0; iter < 400; ++iter) {
    for (const auto& img : images) {
      try {
        const RgbImage r = DecodeImage(mutate(img), "fuzz image");
        REQUIRE(r.pixels.size() == static_cast<size_t>(r.width) * r.height * 3);
        ++decoded;
      } catch (const Error& e) {
        REQUIRE(std::string(e.what()).find("fuzz image") == 0);
        ++refused;
      }
    }
    for (const auto& wav : wavs) {
      try {
        const MonoAudio a = DecodeWav(mutate(wav), "fuzz wav");
        REQUIRE(a.sample_rate >= 1000);
        ++decoded;
      } catch (const Error& e) {
        REQUIRE(std::string(e.what()).find("fuzz wav") == 0);
        ++refused;
      }
    }
  }
  // g4's own JPEG parsers (EXIF orientation, Huffman-table guard) on corrupted JPEGs with an EXIF block.
  std::vector<std::byte> jpg;
  REQUIRE(stbi_write_jpg_to_func(AppendTo, &jpg, w, h, 3, rgb.data(), 90));
  const uint8_t app1[] = {0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                          0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < sizeof(app1); ++i) jpg.insert(jpg.begin() + 2 + static_cast<std::ptrdiff_t>(i), std::byte{app1[i]});
  REQUIRE(JpegExifOrientation(jpg) == 6);
  for (int iter = 0; iter < 4000; ++iter) {
    const std::vector<std::byte> b = mutate(jpg);
    const int o = JpegExifOrientation(b);
    REQUIRE((o >= 1 && o <= 8));
    try {
      CheckJpegHuffmanTables(b, "fuzz jpeg");
    } catch (const Error& e) {
      REQUIRE(std::string(e.what()).find("fuzz jpeg") == 0);
    }
  }
  MESSAGE("corrupted inputs: " << decoded << " decoded, " << refused << " refused with g4::Error");
}
