// Core: 16-bit float conversions, checked size arithmetic, tensor byte counts, the thread pool, huge-page
// mappings.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/checked.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/core/types.hpp"

namespace g4_test_core {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

TEST_CASE("f16: every finite half value survives f16 -> f32 -> f16 exactly") {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const f16 h{static_cast<uint16_t>(b)};
    const float f = F16ToF32(h);
    if (std::isnan(f)) {
      CHECK(std::isnan(F16ToF32(F32ToF16(f))));
      continue;
    }
    REQUIRE(F32ToF16(f).bits == h.bits);
  }
}

TEST_CASE("f16: rounding to nearest even matches a double-precision oracle") {
  // Oracle: among all finite halves, pick the nearest; ties go to the even mantissa.
  std::vector<double> halves;
  for (uint32_t b = 0; b < 0x7C00; ++b) halves.push_back(F16ToF32({static_cast<uint16_t>(b)}));
  uint32_t seed = 12345;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1664525u + 1013904223u;
    const float x = std::ldexp(static_cast<float>(seed >> 8) / (1 << 24), static_cast<int>(seed % 40) - 26);
    const auto it = std::lower_bound(halves.begin(), halves.end(), static_cast<double>(x));
    uint16_t want;
    if (it == halves.end()) {
      want = 0x7C00;  // beyond 65504 + half ulp handled below
      if (x < 65520.0f) want = 0x7BFF;
    } else {
      const size_t hi = static_cast<size_t>(it - halves.begin());
      if (hi == 0 || *it == x) {
        want = static_cast<uint16_t>(hi);
      } else {
        const double dlo = x - halves[hi - 1], dhi = *it - x;
        want = static_cast<uint16_t>(dlo < dhi ? hi - 1 : dhi < dlo ? hi : ((hi - 1) % 2 == 0 ? hi - 1 : hi));
      }
    }
    REQUIRE(F32ToF16(x).bits == want);
    REQUIRE(F32ToF16(-x).bits == (want | 0x8000));
  }
}

TEST_CASE("bf16: exact on representable values, round-to-nearest-even otherwise") {
  for (uint32_t b = 0; b < 0x10000; b += 7) {
    const bf16 h{static_cast<uint16_t>(b)};
    const float f = BF16ToF32(h);
    if (!std::isnan(f)) REQUIRE(F32ToBF16(f).bits == h.bits);
  }
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1.0).
  CHECK(BF16ToF32(F32ToBF16(1.0f + 0x1p-8f)) == 1.0f);
  CHECK(BF16ToF32(F32ToBF16(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f);
  CHECK(std::isnan(BF16ToF32(F32ToBF16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("checked arithmetic throws instead of wrapping") {
  CHECK(CheckedAdd(1, 2, "x") == 3);
  CHECK_THROWS_AS(CheckedAdd(UINT64_MAX, 1, "x"), Error);
  CHECK_THROWS_AS(CheckedMul(1ull << 33, 1ull << 33, "x"), Error);
  const int64_t dims[] = {1ll << 40, 1ll << 30};
  CHECK_THROWS_WITH_AS(CheckedElementCount(dims, "blk.0.attn_q.weight"), doctest::Contains("blk.0.attn_q.weight"), Error);
  CHECK_THROWS_AS(CheckRange(10, 5, 14, "t"), Error);
  CHECK_NOTHROW(CheckRange(10, 4, 14, "t"));
}

TEST_CASE("tensor byte counts follow the block layouts") {
  CHECK(TensorBytes(Type::F32, {3, 5}, "t") == 60);
  CHECK(TensorBytes(Type::BF16, {3, 5}, "t") == 30);
  CHECK(TensorBytes(Type::Q8_0, {2, 64}, "t") == 2 * 2 * 34);
  CHECK(TensorBytes(Type::Q4_0, {1, 32}, "t") == 18);
  CHECK(TensorBytes(Type::Q4_K, {2, 512}, "t") == 4 * 144);
  CHECK(TensorBytes(Type::Q6_K, {1, 256}, "t") == 210);
  CHECK_THROWS_WITH_AS(TensorBytes(Type::Q4_K, {2, 100}, "w"), doctest::Contains("multiple"), Error);
  Tensor t("x", Type::F32, {4, 4});
  CHECK(t.view().nbytes == 64);
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
}

TEST_CASE("thread pool: every task runs once, partitioning is deterministic, errors propagate") {
  for (size_t threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    CHECK(pool.size() == threads);
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<std::atomic<int>> hits(97);
      std::vector<size_t> owner(97);
      pool.Run(97, [&](size_t task, size_t worker) {
        hits[task]++;
        owner[task] = worker;
      });
      for (size_t i = 0; i < 97; ++i) {
        REQUIRE(hits[i] == 1);
        REQUIRE(owner[i] == i % threads);
      }
    }
    std::vector<int> covered(1000, 0);
    pool.ParallelFor(1000, 10, [&](size_t b, size_t e, size_t) {
      for (size_t i = b; i < e; ++i) covered[i]++;
    });
    for (int c : covered) REQUIRE(c == 1);
    CHECK_THROWS_WITH_AS(pool.Run(10, [](size_t task, size_t) { if (task == 7) throw Error("task", "seven"); }),
                         doctest::Contains("seven"), Error);
  }
  CHECK_THROWS_AS(ThreadPool(10000), Error);
}

TEST_CASE("huge-page mappings: 2 MiB-aligned, zeroed and writable buffers; a file's exact bytes") {
  const size_t bytes = 5 * g4::kHugePageBytes + 3;
  g4::AlignedBuffer buf(bytes);
  CHECK(reinterpret_cast<uintptr_t>(buf.data()) % g4::kHugePageBytes == 0);
  size_t nonzero = 0;
  for (size_t i = 0; i < bytes; ++i) nonzero += buf.data()[i] != std::byte{0};
  CHECK(nonzero == 0);
  buf.data()[bytes - 1] = std::byte{7};  // the last byte is inside the mapping
  CHECK(buf.data()[bytes - 1] == std::byte{7});
  g4::AlignedBuffer small(100);  // below the mmap threshold: the heap, 64-byte aligned
  CHECK(reinterpret_cast<uintptr_t>(small.data()) % g4::AlignedBuffer::kAlign == 0);

  const std::string path = (std::filesystem::temp_directory_path() /
                            ("g4_test_core_" + std::to_string(::getpid()) + ".bin")).string();
  std::vector<unsigned char> content(3 * g4::kHugePageBytes + 5);
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<unsigned char>(i * 2654435761u >> 24);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  REQUIRE(std::fwrite(content.data(), 1, content.size(), f) == content.size());
  std::fclose(f);
  {
    const g4::MappedFile m(path);
    REQUIRE(m.size() == content.size());
    CHECK(reinterpret_cast<uintptr_t>(m.bytes().data()) % g4::kHugePageBytes == 0);
    CHECK(std::memcmp(m.bytes().data(), content.data(), content.size()) == 0);
  }
  std::remove(path.c_str());
}

// Resident kB of the mapping that starts at `start`, from /proc/self/smaps; -1 if there is none.
static long MappingRssKb(const void* start) {
  std::ifstream smaps("/proc/self/smaps");
  char head[32];
  std::snprintf(head, sizeof head, "%lx-", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(start)));
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.rfind(head, 0) == 0) inside = true;
    else if (inside && line.rfind("Rss:", 0) == 0) return std::stol(line.substr(4));
  }
  return -1;
}

TEST_CASE("ReleaseMappedPages drops a file mapping's resident pages, which read back unchanged, and leaves anonymous memory alone") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("g4_test_release_" + std::to_string(::getpid()) + ".bin")).string();
  std::vector<unsigned char> content(5 * 1024 * 1024 + 3);
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<unsigned char>(i * 2654435761u >> 24);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  REQUIRE(std::fwrite(content.data(), 1, content.size(), f) == content.size());
  std::fclose(f);
  const long page = ::sysconf(_SC_PAGESIZE);
  {
    const g4::MappedFile m(path);
    const std::byte* data = m.bytes().data();
    REQUIRE(std::memcmp(data, content.data(), content.size()) == 0);  // every page faulted in
    const long rss_before = MappingRssKb(data);
    CHECK(rss_before * 1024 >= static_cast<long>(content.size()) - page);
    // All but the first and last 100 bytes: the partial pages at both ends stay.
    const size_t released = g4::ReleaseMappedPages(data + 100, content.size() - 200);
    CHECK(released == (content.size() - 100) / page * page - page);
    const long rss_after = MappingRssKb(data);
    CHECK(rss_after >= 0);
    CHECK(rss_after * 1024 <= 2 * page);
    CHECK(std::memcmp(data, content.data(), content.size()) == 0);  // faulted back in from the page cache
  }
  std::remove(path.c_str());

  g4::AlignedBuffer anon(4 * 1024 * 1024);
  for (size_t i = 0; i < anon.size(); ++i) anon.data()[i] = static_cast<std::byte>(i * 31 + 7);
  CHECK(g4::ReleaseMappedPages(anon.data(), anon.size()) == 0);
  size_t changed = 0;
  for (size_t i = 0; i < anon.size(); ++i) changed += anon.data()[i] != static_cast<std::byte>(i * 31 + 7);
  CHECK(changed == 0);
}

}  // namespace g4_test_core
