// The multimodal reference case (tests/data/golden/multimodal: transformers 5.17, float32): its inputs and expected
// outputs, and the model's weights, read with g4's safetensors reader.
#pragma once
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "g4/io/safetensors.hpp"
#include "g4/media/rgb_image.hpp"
#include "support/test_data.hpp"

namespace g4::testing {

inline std::string Multimodal(const std::string& f) { return DataDir() + "/golden/multimodal/" + f; }

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

inline const Golden& GoldenCase() {
  static const Golden g(Multimodal("golden.safetensors"));
  return g;
}
inline const Golden& GoldenModel() {
  static const Golden g(Multimodal("model.safetensors"));
  return g;
}

inline RgbImage GoldenImage() {
  const TensorView& t = GoldenCase()["image_rgb_u8"];
  RgbImage img;
  img.height = static_cast<int>(t.shape[0]);
  img.width = static_cast<int>(t.shape[1]);
  const auto px = t.as<uint8_t>();
  img.pixels.assign(px.begin(), px.end());
  return img;
}


}  // namespace g4::testing
