// Q4_0 and Q8_0 matrices repacked in 16-row groups, the layout the fused AVX3_DL kernels read fastest
// (kernels/matmul_vnni_decode-inl.h): group g holds rows 16g..16g+15 (a last, shorter group repeats the
// matrix's last row), block after block, each block as the 16 rows' f16 scales (32 bytes) and then the quants
// transposed into 64-byte vectors whose dword j is dword k of row j's quants (Q4_0: k = 0..3, Q8_0: 0..7).
// Same bytes per row as the file's layout, read as one contiguous stream with no transposes or scale gathers
// (Zen 4, one core, L2-resident, Q4_0: 12.1 -> 5.9 ns per 32 x 16 block for one token, 27.1 -> 14.5 for
// five). It is a copy: the kernels of other targets, AMX and row lookups keep reading TensorView::data.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/error.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/types.hpp"

namespace g4 {

inline constexpr size_t kRowGroupRows = 16;

inline bool HasRowGroupLayout(Type type) { return type == Type::Q4_0 || type == Type::Q8_0; }

// A matrix's bytes in the row-group layout: whole groups of 16 rows.
inline size_t RowGroupBytes(const TensorView& w) {
  return (static_cast<size_t>(w.rows()) + kRowGroupRows - 1) / kRowGroupRows * kRowGroupRows * w.row_bytes();
}

// out: RowGroupBytes(w) bytes.
inline void PackRowGroups(const TensorView& w, std::byte* out) {
  Require(HasRowGroupLayout(w.type), w.name, std::string("row groups need Q4_0 or Q8_0 weights, got ") +
                                                 std::string(TypeName(w.type)));
  Require(w.shape.rank == 2 && w.rows() > 0 && w.data != nullptr, w.name, "row groups need a non-empty matrix");
  const size_t block_bytes = w.type == Type::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const size_t quant_bytes = block_bytes - sizeof(f16), n_blocks = w.row_bytes() / block_bytes;
  const size_t rows = static_cast<size_t>(w.rows());
  for (size_t g = 0; g * kRowGroupRows < rows; ++g) {
    for (size_t b = 0; b < n_blocks; ++b) {
      std::byte* dst = out + (g * n_blocks + b) * kRowGroupRows * block_bytes;
      for (size_t j = 0; j < kRowGroupRows; ++j) {
        const std::byte* block = w.row(static_cast<int64_t>(std::min(g * kRowGroupRows + j, rows - 1))) + b * block_bytes;
        std::memcpy(dst + sizeof(f16) * j, block, sizeof(f16));
        for (size_t k = 0; k < quant_bytes / 4; ++k)
          std::memcpy(dst + kRowGroupRows * sizeof(f16) + 64 * k + 4 * j, block + sizeof(f16) + 4 * k, 4);
      }
    }
  }
}

// An owned row-group copy of a Q4_0 or Q8_0 matrix, and a view of the original that points the fused kernels
// at it (TensorView::row_groups). The original must outlive it.
class RowGroupWeights {
 public:
  explicit RowGroupWeights(const TensorView& w) : buf_(RowGroupBytes(w)), view_(w) {
    PackRowGroups(w, buf_.data());
    view_.row_groups = buf_.data();
  }
  const TensorView& view() const { return view_; }

 private:
  AlignedBuffer buf_;
  TensorView view_;
};

}  // namespace g4
