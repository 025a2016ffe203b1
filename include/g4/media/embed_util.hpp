// Small helpers shared by the vision and audio embedders: checked conversion of a small weight vector to f32,
// and shape checks that name the tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/core/tensor.hpp"

namespace g4 {

inline void CheckShape(const TensorView& t, const Shape& want, std::string_view role) {
  const std::string name = t.name.empty() ? std::string(role) : t.name;
  Require(t.data != nullptr, name, "missing tensor (" + std::string(role) + ")");
  Require(t.shape == want, name, std::string(role) + " has shape " + t.shape.str() + ", expected " + want.str());
  Require(t.nbytes >= TensorBytes(t.type, t.shape, name), name, "holds fewer bytes than its shape needs");
}

// A 1-D weight of n elements (any float or quantized type) as f32; read once at load.
inline std::vector<float> VectorToF32(const TensorView& t, int64_t n, std::string_view role) {
  CheckShape(t, Shape{n}, role);
  std::vector<float> v(static_cast<size_t>(n));
  DequantizeRow(t.type, t.data, static_cast<size_t>(n), v.data());
  return v;
}

}  // namespace g4
