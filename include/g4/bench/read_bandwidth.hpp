// The machine's measured memory read bandwidth, best of several passes over a buffer far larger than the caches.
// Decode is bound by this number: a decode step must stream every weight once. Every thread sums its share of
// the buffer in order (one stream per thread). The buffer is an AlignedBuffer, so it gets huge pages where the
// weights do (huge_page_map.hpp).
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

}  // namespace g4::bench
