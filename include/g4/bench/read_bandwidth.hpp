// The machine's measured memory read bandwidth: every thread sums its share of a buffer far larger than the
// caches, best of several passes. Decode is bound by this number: a decode step must stream every weight once.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/thread_pool.hpp"

namespace g4::bench {

inline double MeasureReadBandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int passes = 5) {
  AlignedBuffer buf(bytes);
  const size_t n = bytes / sizeof(uint64_t);
  uint64_t* p = buf.as<uint64_t>();
  for (size_t i = 0; i < n; ++i) p[i] = i;  // commit the pages
  std::vector<uint64_t> sink(pool.size());
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.ParallelFor(n, n / pool.size(), [&](size_t b, size_t e, size_t w) {
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
      sink[w] += s0 + s1 + s2 + s3;
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  volatile uint64_t keep = 0;
  for (uint64_t s : sink) keep = keep + s;
  return best;  // bytes per second
}

}  // namespace g4::bench
