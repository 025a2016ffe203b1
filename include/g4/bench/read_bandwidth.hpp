// The machine's measured memory read bandwidth, best of several passes over a buffer far larger than the caches.
// Decode is bound by this number: a decode step must stream every weight once.
//   MeasureReadBandwidth: every thread sums its share of the buffer in order (one stream per thread).
//   MeasureRowGroupBandwidth: the access pattern of the fused quantized kernels (matmul_vnni_decode-inl.h):
//     groups of 16 rows read side by side, a load per 16 bytes of each row, the next group prefetched into L2;
//     no arithmetic. What this reaches is the most those kernels can stream with weights used in place (on the
//     2-core VM, 97% of MeasureReadBandwidth: the access pattern itself costs little).
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/thread_pool.hpp"

namespace g4::bench {

namespace detail {

// Best bytes/second over `passes` runs of read(begin, end, worker) on [0, n_items) split over the pool, for a
// buffer of `bytes` (committed by the caller). read returns a checksum, kept so the reads are not elided.
template <class Read>
double BestPassRate(ThreadPool& pool, size_t bytes, size_t n_items, int passes, Read&& read) {
  std::vector<uint64_t> sink(pool.size());
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.ParallelFor(n_items, n_items / pool.size(), [&](size_t b, size_t e, size_t w) { sink[w] += read(b, e); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  volatile uint64_t keep = 0;
  for (uint64_t s : sink) keep = keep + s;
  return best;  // bytes per second
}

inline AlignedBuffer CommittedBuffer(size_t bytes) {
  AlignedBuffer buf(bytes);
  uint64_t* p = buf.as<uint64_t>();
  for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i) p[i] = i;  // commit the pages
  return buf;
}

}  // namespace detail

inline double MeasureReadBandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int passes = 5) {
  const AlignedBuffer buf = detail::CommittedBuffer(bytes);
  const uint64_t* p = buf.as<uint64_t>();
  return detail::BestPassRate(pool, bytes, bytes / sizeof(uint64_t), passes, [&](size_t b, size_t e) {
    // Four independent accumulators keep several loads in flight; the compiler vectorises the loop.
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = b;
    for (; i + 4 <= e; i += 4) {
      s0 += p[i];
      s1 += p[i + 1];
      s2 += p[i + 2];
      s3 += p[i + 3];
    }
    for (; i < e; ++i) s0 += p[i];
    return s0 + s1 + s2 + s3;
  });
}

// row_bytes: bytes per weight row; step (>= 16): bytes of a row read per step (the super-block, 18 for Q4_0).
inline double MeasureRowGroupBandwidth(ThreadPool& pool, size_t row_bytes, size_t step,
                                       size_t bytes = size_t{1} << 30, int passes = 3) {
  constexpr size_t kRows = 16;
  const size_t group_bytes = kRows * row_bytes, n_groups = bytes / group_bytes;
  const AlignedBuffer buf = detail::CommittedBuffer(n_groups * group_bytes);
  const std::byte* base = buf.as<std::byte>();
  return detail::BestPassRate(pool, n_groups * group_bytes, n_groups, passes, [&](size_t b, size_t e) {
    uint64_t sum = 0;
    const size_t n_steps = row_bytes / step, pf_step = (group_bytes + n_steps - 1) / n_steps;
    for (size_t g = b; g < e; ++g) {
      const std::byte* rows = base + g * group_bytes;
      const std::byte* next = rows + group_bytes;  // spread over this group's steps, as the kernels do
      const std::byte* pf_at = next;
      for (size_t s = 0; s < n_steps; ++s) {
        if (g + 1 < e)
          for (const std::byte* until = next + (s + 1) * pf_step; pf_at < until; pf_at += 64)
            __builtin_prefetch(pf_at, 0, 2);
        for (size_t j = 0; j < kRows; ++j)
          for (size_t o = 0; o + 16 <= step; o += 16) {  // the step's 16-byte pieces of each row
            // One 8-byte load per piece touches the same cache lines in the same order. Loading all 16 bytes
            // (two loads and an xor) made this loop the bottleneck: it read 20-24 GB/s where the probe read 29.
            uint64_t v;
            std::memcpy(&v, rows + j * row_bytes + s * step + o, sizeof v);
            sum += v;
          }
      }
    }
    return sum;
  });
}

}  // namespace g4::bench
