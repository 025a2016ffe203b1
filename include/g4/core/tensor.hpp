// TensorView: a typed, shaped view of bytes that someone else owns (an mmapped file or a Tensor).
// Shapes are written outermost first, as in PyTorch: a Linear weight is [n_out, n_in] and its last dimension is
// contiguous. GGUF's ggml order (ne[0] fastest) is reversed into this order by the GGUF reader.
// For block-quantized types the last dimension must be a multiple of the block size; rows are then
// row_bytes() apart.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/checked.hpp"
#include "g4/core/types.hpp"

namespace g4 {

inline constexpr int kMaxDims = 4;

struct Shape {
  std::array<int64_t, kMaxDims> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    Require(d.size() <= kMaxDims, "shape", "rank above 4");
    for (int64_t x : d) dims[rank++] = x;
  }
  static Shape FromSpan(std::span<const int64_t> d, std::string_view where) {
    Require(d.size() <= kMaxDims, where, "rank " + std::to_string(d.size()) + " above 4");
    Shape s;
    for (int64_t x : d) s.dims[s.rank++] = x;
    return s;
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t elements() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  int64_t last() const { return rank ? dims[rank - 1] : 1; }
  int64_t rows() const { return rank ? elements() / (dims[rank - 1] ? dims[rank - 1] : 1) : 1; }
  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
  }
};

// Bytes of a contiguous tensor of `type` and `shape`, checked: the last dim must fill whole blocks.
inline uint64_t TensorBytes(Type type, const Shape& shape, std::string_view where) {
  const TypeInfo info = GetTypeInfo(type);
  const uint64_t n = CheckedElementCount(std::span<const int64_t>(shape.dims.data(), shape.rank), where);
  if (info.block_elems > 1 && shape.last() % static_cast<int64_t>(info.block_elems) != 0)
    Fail(where, "last dimension " + std::to_string(shape.last()) + " is not a multiple of the " +
                    std::string(info.name) + " block size " + std::to_string(info.block_elems));
  return CheckedMul(n / info.block_elems, info.block_bytes, where);
}

struct TensorView {
  std::string name;
  Type type = Type::F32;
  Shape shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  // The same quantized matrix repacked in 16-row groups (core/row_groups.hpp), or null. Only AVX3_DL's fused
  // kernels read it.
  const std::byte* row_groups = nullptr;

  int64_t rows() const { return shape.rows(); }
  int64_t cols() const { return shape.last(); }
  size_t row_bytes() const {
    const TypeInfo info = GetTypeInfo(type);
    return static_cast<size_t>(cols()) / info.block_elems * info.block_bytes;
  }
  const std::byte* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
  template <typename T> std::span<const T> as() const { return {reinterpret_cast<const T*>(data), nbytes / sizeof(T)}; }
};

// A tensor that owns aligned storage.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::string name, Type type, Shape shape)
      : buf_(TensorBytes(type, shape, name)), view_{std::move(name), type, shape, nullptr, 0} {
    view_.data = buf_.data();
    view_.nbytes = buf_.size();
  }
  const TensorView& view() const { return view_; }
  std::byte* data() { return buf_.data(); }
  template <typename T> std::span<T> as() { return {buf_.as<T>(), buf_.size() / sizeof(T)}; }
  template <typename T> std::span<const T> as() const { return {buf_.as<T>(), buf_.size() / sizeof(T)}; }
  const Shape& shape() const { return view_.shape; }
  Type type() const { return view_.type; }

 private:
  AlignedBuffer buf_;
  TensorView view_;
};

}  // namespace g4
