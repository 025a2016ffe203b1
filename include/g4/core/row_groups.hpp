// Q4_0 and Q8_0 matrices repacked in 16-row groups, the layout the fused AVX3_DL kernels read fastest
// (kernels/matmul_vnni_decode-inl.h): group g holds rows 16g..16g+15 (a last, shorter group repeats the
// matrix's last row), block after block, each block as the 16 rows' f16 scales (32 bytes) and then the quants
// transposed into 64-byte vectors whose dword j is dword k of row j's quants (Q4_0: k = 0..3, Q8_0: 0..7).
// Same bytes per row as the file's layout, read as one contiguous stream with no transposes or scale gathers
// (Zen 4, one core, L2-resident, Q4_0: 13 -> 5.9 ns per 32 x 16 block for one token, 28 -> 19.5 for five). It is a copy: the kernels of other targets, AMX and row lookups keep reading TensorView::data.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/error.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"

namespace g4 {

inline constexpr size_t kRowGroupRows = 16;

inline bool HasRowGroupLayout(Type type) { return type == Type::Q4_0 || type == Type::Q8_0; }

// A matrix's bytes in the row-group layout: whole groups of 16 rows.
inline size_t RowGroupBytes(const TensorView& w) {
  return (static_cast<size_t>(w.rows()) + kRowGroupRows - 1) / kRowGroupRows * kRowGroupRows * w.row_bytes();
}

// out: RowGroupBytes(w) bytes. Groups are packed in parallel: a 12B's Q4_0 matrices (6.7 GB) took 18 s packed
// one 4-byte copy at a time on one thread.
inline void PackRowGroups(const TensorView& w, std::byte* out, ThreadPool& pool) {
  Require(HasRowGroupLayout(w.type), w.name, std::string("row groups need Q4_0 or Q8_0 weights, got ") +
                                                 std::string(TypeName(w.type)));
  Require(w.shape.rank == 2 && w.rows() > 0 && w.data != nullptr, w.name, "row groups need a non-empty matrix");
  const size_t block_bytes = w.type == Type::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const size_t quant_dwords = (block_bytes - sizeof(f16)) / 4, row_bytes = w.row_bytes();
  const size_t n_blocks = row_bytes / block_bytes, rows = static_cast<size_t>(w.rows());
  pool.ParallelFor((rows + kRowGroupRows - 1) / kRowGroupRows, 1, [&](size_t g_begin, size_t g_end, size_t) {
    for (size_t g = g_begin; g < g_end; ++g) {
      const std::byte* row[kRowGroupRows];
      for (size_t j = 0; j < kRowGroupRows; ++j) row[j] = w.data + std::min(g * kRowGroupRows + j, rows - 1) * row_bytes;
      std::byte* dst = out + g * kRowGroupRows * row_bytes;
      for (size_t b = 0; b < n_blocks; ++b, dst += kRowGroupRows * block_bytes) {
        for (size_t j = 0; j < kRowGroupRows; ++j) {
          const std::byte* block = row[j] + b * block_bytes;
          std::memcpy(dst + sizeof(f16) * j, block, sizeof(f16));
          for (size_t k = 0; k < quant_dwords; ++k)
            std::memcpy(dst + kRowGroupRows * sizeof(f16) + 64 * k + 4 * j, block + sizeof(f16) + 4 * k, 4);
        }
      }
    }
  });
}

// An owned row-group copy of a Q4_0 or Q8_0 matrix, and a view of the original that points the fused kernels
// at it (TensorView::row_groups). The original must outlive it.
class RowGroupWeights {
 public:
  RowGroupWeights(const TensorView& w, ThreadPool& pool) : buf_(RowGroupBytes(w)), view_(w) {
    PackRowGroups(w, buf_.data(), pool);
    view_.row_groups = buf_.data();
  }
  const TensorView& view() const { return view_; }

 private:
  AlignedBuffer buf_;
  TensorView view_;
};

}  // namespace g4
