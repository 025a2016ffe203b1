// Antialiased bicubic resize of an 8-bit RGB image, computed the way PyTorch's uint8 CPU kernel does it
// (torchvision resize(..., BICUBIC, antialias=True) on a uint8 tensor, the reference of Gemma 4's processor;
// the same algorithm as PIL's Image.resize(BICUBIC)):
//  * separable: a horizontal pass into an 8-bit intermediate, then a vertical pass;
//  * output pixel i of an axis is centred at scale * (i + 0.5) in input pixels, scale = in / out;
//  * the Keys cubic (a = -0.5) is stretched by the downscale factor (support 2 * scale input pixels) so it also
//    low-pass filters; upscaling uses the plain cubic; taps past the border are dropped and the rest renormalised;
//  * the weights are rounded to int16 fixed point with as many fraction bits as the largest weight allows, and
//    each output is (sum + half) >> bits, clamped to 0..255.
// Cost: one integer multiply-add per tap (4 * scale + 1 taps per output on each axis), single-threaded; a
// 4000x3000 photo takes 0.25..0.4 s at any budget (bench_media, 2-core machine), mostly in the horizontal pass.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "g4/media/rgb_image.hpp"

namespace g4 {

// The fixed-point filter of one axis: output i reads `size[i]` input pixels from `first[i]` with
// weights[i * taps ...], scaled by 2^precision.
struct ResizeFilter {
  std::vector<int64_t> first, size;  // [n_out]
  std::vector<int16_t> weights;      // [n_out, taps]
  int taps = 0;
  int precision = 0;
};

inline double KeysCubic(double x) {  // a = -0.5
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

inline ResizeFilter MakeResizeFilter(int64_t n_in, int64_t n_out) {
  const double scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double inv_scale = scale >= 1.0 ? 1.0 / scale : 1.0;
  ResizeFilter f;
  f.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  f.first.resize(static_cast<size_t>(n_out));
  f.size.resize(static_cast<size_t>(n_out));
  std::vector<double> w(static_cast<size_t>(n_out) * f.taps, 0.0);
  double w_max = 0.0;
  for (int64_t i = 0; i < n_out; ++i) {
    const double center = scale * (static_cast<double>(i) + 0.5);
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), n_in);
    const int64_t n = std::clamp<int64_t>(hi - lo, 0, f.taps);
    double* wi = &w[static_cast<size_t>(i) * f.taps];
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) total += wi[j] = KeysCubic((static_cast<double>(j + lo) - center + 0.5) * inv_scale);
    if (total != 0.0)
      for (int64_t j = 0; j < n; ++j) w_max = std::max(w_max, wi[j] /= total);
    f.first[static_cast<size_t>(i)] = lo;
    f.size[static_cast<size_t>(i)] = n;
  }
  // Most fraction bits such that the largest weight still fits int16.
  for (f.precision = 0; f.precision < 22; ++f.precision)
    if (static_cast<int>(0.5 + w_max * (1 << (f.precision + 1))) >= (1 << 15)) break;
  f.weights.resize(w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    const double v = w[k] * (1 << f.precision);
    f.weights[k] = static_cast<int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  return f;
}

// One axis of the resize over interleaved RGB: `lines` lines of n_in pixels, `in_step`/`out_step` bytes
// between neighbouring pixels of a line and `in_line`/`out_line` between lines.
inline void ResizeAxis(const ResizeFilter& f, const uint8_t* src, int64_t lines, int64_t in_step, int64_t in_line,
                       uint8_t* dst, int64_t out_step, int64_t out_line) {
  const int64_t n_out = static_cast<int64_t>(f.first.size());
  const int32_t half = f.precision > 0 ? 1 << (f.precision - 1) : 0;
  for (int64_t l = 0; l < lines; ++l) {
    for (int64_t i = 0; i < n_out; ++i) {
      const int16_t* w = &f.weights[static_cast<size_t>(i) * f.taps];
      const uint8_t* s = src + l * in_line + f.first[static_cast<size_t>(i)] * in_step;
      for (int c = 0; c < 3; ++c) {
        int32_t acc = half;
        for (int64_t j = 0; j < f.size[static_cast<size_t>(i)]; ++j) acc += s[j * in_step + c] * w[j];
        dst[l * out_line + i * out_step + c] = static_cast<uint8_t>(std::clamp(acc >> f.precision, 0, 255));
      }
    }
  }
}

inline RgbImage ResizeBicubicAntialias(const RgbImage& img, int out_width, int out_height) {
  CheckImageSize(out_width, out_height, "resize");
  CheckImageSize(img.width, img.height, "resize");
  RgbImage cur = img;
  if (out_width != cur.width) {  // horizontal pass first, as torch and PIL do
    RgbImage next;
    next.width = out_width;
    next.height = cur.height;
    next.pixels.resize(static_cast<size_t>(next.width) * next.height * 3);
    ResizeAxis(MakeResizeFilter(cur.width, out_width), cur.pixels.data(), cur.height, 3, int64_t{cur.width} * 3,
               next.pixels.data(), 3, int64_t{out_width} * 3);
    cur = std::move(next);
  }
  if (out_height != cur.height) {
    RgbImage next;
    next.width = cur.width;
    next.height = out_height;
    next.pixels.resize(static_cast<size_t>(next.width) * next.height * 3);
    ResizeAxis(MakeResizeFilter(cur.height, out_height), cur.pixels.data(), cur.width, int64_t{cur.width} * 3, 3,
               next.pixels.data(), int64_t{cur.width} * 3, 3);
    cur = std::move(next);
  }
  return cur;
}

}  // namespace g4
