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

// A committed buffer of `bytes` to probe again and again: committing 512 MB costs ~0.1 s, a pass over it ~15 ms,
// so a benchmark can re-probe right beside each measurement while the host's bandwidth drifts.
class ReadBandwidthProbe {
 public:
  ReadBandwidthProbe(ThreadPool& pool, size_t bytes) : pool_(pool), buf_(bytes), sink_(pool.size()) {
    uint64_t* p = buf_.as<uint64_t>();
    for (size_t i = 0; i < words(); ++i) p[i] = i;  // commit the pages
  }

  // Best bytes/second over `passes` passes.
  double BestRate(int passes) {
    double best = 0;
    for (int pass = 0; pass < passes; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      pool_.ParallelFor(words(), words() / pool_.size(), [&](size_t b, size_t e, size_t w) { sink_[w] += Sum(b, e); });
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, static_cast<double>(buf_.size()) / s);
    }
    volatile uint64_t keep = 0;  // the sums are kept so the reads are not elided
    for (uint64_t s : sink_) keep = keep + s;
    return best;
  }

 private:
  size_t words() const { return buf_.size() / sizeof(uint64_t); }

  uint64_t Sum(size_t b, size_t e) const {
    // Four independent accumulators keep several loads in flight; the compiler vectorises the loop.
    const uint64_t* p = buf_.as<uint64_t>();
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
  }

  ThreadPool& pool_;
  AlignedBuffer buf_;
  std::vector<uint64_t> sink_;
};

}  // namespace g4::bench
