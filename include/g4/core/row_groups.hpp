// Quantized matrices repacked in 16-row groups, the layout the fused AVX3_DL kernels read fastest
// (kernels/matmul_vnni_decode-inl.h): group g holds rows 16g..16g+15 (a last, shorter group repeats the
// matrix's last row), block after block. Within a block, each field of the format (an f16 scale, or dwords of
// quants and packed scales) is stored transposed: byte o of every row's block maps to 16 * o (RowGroupOffset: Q6_K
// stores its fields in the order they are read), followed by the other rows' same unit (unit = the field's 2 or 4
// bytes). So the kernels load with one 64-byte read what they
// would build from 16 rows with 12 inserts, 4 vpermt2d and 4 shuffles, and a scale vector with one 32-byte read
// instead of 16 scalar loads. Same bytes per row as the file's layout, read as one contiguous stream (Zen 4, one
// core, L2-resident, Q4_0: 13 -> 5.9 ns per 32 x 16 block for one token, 28 -> 19.5 for five). It is a copy:
// the kernels of other targets, AMX and row lookups keep reading TensorView::data.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"

namespace g4 {

inline constexpr size_t kRowGroupRows = 16;
// How far ahead of their contiguous stream the kernels reading row groups prefetch into L2. Before, they prefetched
// the next group's same super-block, 50-200 KB ahead for [.. x 3840] / [.. x 15360]; the faster memory of Zen 5
// wanted 16 KiB (2 threads, [15360 x 3840] unless named, alternated call by call, medians of 60-200, % of the
// probe at ~47-50 GB/s, next group -> 16 KiB): one token (matmul_maddubs-inl.h) Q6_K 94.5-95.0 -> 101.0-102.0,
// Q4_K 98-99 -> 100-102, and at ~65 GB/s Q6_K [3840 x 15360] 59 -> 87; 4 tokens (matmul_vnni_decode-inl.h) Q4_0
// 91.4 -> 97.5, Q4_K 69.7 -> 72.2, Q6_K 67.3 -> 69.6, Q8_0 76.5 -> 93.4. Beside it, 8 KiB did 1-4% better at ~47
// but was not caught at ~65, where 4 KiB lost to 16 (Q6_K 76 against 87); 32 and 64 KiB did worse at ~47. The last
// groups' prefetches reach past the copy's end: harmless, a prefetch never faults.
inline constexpr size_t kRowGroupPrefetchDistance = 16 * 1024;

// A run of a block's bytes transposed in units of `unit` bytes (an f16 scale: 2, anything else: 4).
struct RowGroupField {
  size_t offset, bytes, unit;
};

// The fields of a block of each type, in the order a group stores them, covering the whole block. Q6_K's are in
// the order its kernels read them: d and the scales (the super-block's header), then for each half of the block its
// 64 bytes of low bits and 32 of high bits. In the block's own order the header comes last and the two halves'
// low and high bits are 2 KiB apart in a group, so a group was read jumping back and forth.
inline constexpr RowGroupField kQ8_0GroupFields[] = {{0, sizeof(f16), 2}, {offsetof(BlockQ8_0, qs), sizeof(BlockQ8_0::qs), 4}};
inline constexpr RowGroupField kQ4_0GroupFields[] = {{0, sizeof(f16), 2}, {offsetof(BlockQ4_0, qs), sizeof(BlockQ4_0::qs), 4}};
inline constexpr RowGroupField kQ4_KGroupFields[] = {{0, sizeof(BlockQ4_K), 4}};  // d | dmin, packed scales, qs: dwords
inline constexpr RowGroupField kQ6_KGroupFields[] = {
    {offsetof(BlockQ6_K, d), sizeof(f16), 2}, {offsetof(BlockQ6_K, scales), 16, 4},
    {offsetof(BlockQ6_K, ql), 64, 4},         {offsetof(BlockQ6_K, qh), 32, 4},
    {offsetof(BlockQ6_K, ql) + 64, 64, 4},    {offsetof(BlockQ6_K, qh) + 32, 32, 4}};

// Empty where the type has no grouped layout.
constexpr std::span<const RowGroupField> RowGroupFields(Type type) {
  switch (type) {
    case Type::Q8_0: return kQ8_0GroupFields;
    case Type::Q4_0: return kQ4_0GroupFields;
    case Type::Q4_K: return kQ4_KGroupFields;
    case Type::Q6_K: return kQ6_KGroupFields;
    default: return {};
  }
}

// Where byte o of a block is stored: a group keeps byte o of every row's block, the field's units of the 16 rows
// one after another, at 16 * RowGroupOffset(type, o) from the block's start in the group. Within a field the offset
// grows with o, so a kernel adds to it what it adds to o.
constexpr size_t RowGroupOffset(Type type, size_t o) {
  size_t at = 0;
  for (const RowGroupField& f : RowGroupFields(type)) {
    if (o >= f.offset && o < f.offset + f.bytes) return at + (o - f.offset);
    at += f.bytes;
  }
  return o;
}

inline bool HasRowGroupLayout(Type type) { return !RowGroupFields(type).empty(); }

// A matrix's bytes in the row-group layout: whole groups of 16 rows.
inline size_t RowGroupBytes(const TensorView& w) {
  return (static_cast<size_t>(w.rows()) + kRowGroupRows - 1) / kRowGroupRows * kRowGroupRows * w.row_bytes();
}

// out: RowGroupBytes(w) bytes. Groups are packed in parallel: a 12B's Q4_0 matrices (6.7 GB) took 18 s packed
// one 4-byte copy at a time on one thread.
inline void PackRowGroups(const TensorView& w, std::byte* out, ThreadPool& pool) {
  const std::span<const RowGroupField> fields = RowGroupFields(w.type);
  Require(!fields.empty(), w.name, std::string("row groups need Q4_0, Q8_0, Q4_K or Q6_K weights, got ") +
                                      std::string(TypeName(w.type)));
  Require(w.shape.rank == 2 && w.rows() > 0 && w.data != nullptr, w.name, "row groups need a non-empty matrix");
  const size_t block_bytes = GetTypeInfo(w.type).block_bytes, row_bytes = w.row_bytes();
  const size_t n_blocks = row_bytes / block_bytes, rows = static_cast<size_t>(w.rows());
  pool.ParallelFor((rows + kRowGroupRows - 1) / kRowGroupRows, 1, [&](size_t g_begin, size_t g_end, size_t) {
    for (size_t g = g_begin; g < g_end; ++g) {
      const std::byte* row[kRowGroupRows];
      for (size_t j = 0; j < kRowGroupRows; ++j) row[j] = w.data + std::min(g * kRowGroupRows + j, rows - 1) * row_bytes;
      std::byte* dst = out + g * kRowGroupRows * row_bytes;
      for (size_t b = 0; b < n_blocks; ++b, dst += kRowGroupRows * block_bytes) {
        const std::byte* src[kRowGroupRows];
        for (size_t j = 0; j < kRowGroupRows; ++j) src[j] = row[j] + b * block_bytes;
        // Units of a size known at compile time: a memcpy of f.unit bytes was a call (3-4x slower packing).
        auto transpose = [&]<size_t kUnit>(size_t o, size_t at) {
          for (size_t j = 0; j < kRowGroupRows; ++j) std::memcpy(dst + kRowGroupRows * at + kUnit * j, src[j] + o, kUnit);
        };
        for (const RowGroupField& f : fields) {
          const size_t at = RowGroupOffset(w.type, f.offset);
          for (size_t i = 0; i < f.bytes; i += f.unit) {
            if (f.unit == 4) transpose.template operator()<4>(f.offset + i, at + i);
            else transpose.template operator()<2>(f.offset + i, at + i);
          }
        }
      }
    }
  });
}

// An owned row-group copy of a matrix (HasRowGroupLayout), and a view of the original that points the fused kernels
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

// A model's row-group copies: Pack points a weight at a new copy of itself where it is a quantized matrix with the
// layout, and leaves it alone otherwise. `release`: where the original is pages of a file mapping, this process's
// copies of them are dropped once packed (ReleaseMappedPages); pass false where a kernel still reads the original
// (AMX prefill).
class RowGroupCopies {
 public:
  void Pack(TensorView& v, bool release, ThreadPool& pool) {
    if (v.data == nullptr || !HasRowGroupLayout(v.type) || v.shape.rank != 2) return;
    copies_.emplace_back(v, pool);
    if (release) ReleaseMappedPages(v.data, v.nbytes);
    v = copies_.back().view();  // the buffer stays put when the vector grows
  }

 private:
  std::vector<RowGroupWeights> copies_;
};

}  // namespace g4
