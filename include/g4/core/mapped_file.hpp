// A read-only memory-mapped file. Weights are used in place from the mapping (zero copy); the kernel pages
// them in on first touch, so opening a 7 GB model costs nothing until its tensors are read. The mapping asks for
// huge pages (huge_page_map.hpp): the page cache then reads the file in 2 MiB folios where the file system
// supports them (ext4, xfs on recent kernels), unless the file is already cached in small pages.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/huge_page_map.hpp"

namespace g4 {

namespace detail {
// The address ranges of the live MappedFiles, for ReleaseMappedPages.
struct MappedRanges {
  std::mutex mu;
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;  // [begin, end)
};
inline MappedRanges& mapped_ranges() {
  static MappedRanges r;
  return r;
}
}  // namespace detail

// Drops this process's pages of the whole pages of [p, p + n) that lie in a live MappedFile, and returns their
// bytes. The mapping stays valid: it is private and read-only, so a later read faults the page in again from
// the page cache (or the file), unchanged. Anything else is left alone: on anonymous memory MADV_DONTNEED would
// zero the data. A model that copied its matrices (row groups) gives the originals' resident memory back this
// way, and the file stays in the page cache for the next run.
inline size_t ReleaseMappedPages(const std::byte* p, size_t n) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + n;
  detail::MappedRanges& mapped = detail::mapped_ranges();
  std::lock_guard<std::mutex> lock(mapped.mu);
  size_t released = 0;
  for (const auto& [map_begin, map_end] : mapped.ranges) {
    const uintptr_t lo = (std::max(begin, map_begin) + page - 1) & ~(page - 1);
    const uintptr_t hi = std::min(end, map_end) & ~(page - 1);
    if (hi > lo && ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED) == 0) released += hi - lo;
  }
  return released;
}

class MappedFile {
 public:
  explicit MappedFile(std::string path) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Fail(path_, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      Fail(path_, "not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = MapHugeAligned(size_, PROT_READ, MAP_PRIVATE, fd);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        Fail(path_, std::string("cannot mmap: ") + std::strerror(err));
      }
      data_ = static_cast<const std::byte*>(p);
      detail::MappedRanges& mapped = detail::mapped_ranges();
      std::lock_guard<std::mutex> lock(mapped.mu);
      mapped.ranges.emplace_back(range());
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (!data_) return;
    {
      detail::MappedRanges& mapped = detail::mapped_ranges();
      std::lock_guard<std::mutex> lock(mapped.mu);
      std::erase(mapped.ranges, range());
    }
    ::munmap(const_cast<std::byte*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  std::pair<uintptr_t, uintptr_t> range() const {
    return {reinterpret_cast<uintptr_t>(data_), reinterpret_cast<uintptr_t>(data_) + size_};
  }

  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace g4
