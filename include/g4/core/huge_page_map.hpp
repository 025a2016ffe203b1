// Large mappings at 2 MiB-aligned addresses with transparent huge pages requested (MADV_HUGEPAGE).
// Why: with 4 KiB pages, streaming the weights misses the TLB every 4 KiB, each miss a two-level page walk
// under virtualisation, and the hardware prefetchers stop at every 4 KiB boundary. Decode streams ~7 GB per
// token, so it pays this ~1.7 million times per token. With 2 MiB pages, quantized decode streams 10-15% more
// bytes per second on this VM. Costs: resident memory grows in 2 MiB steps (lazily-touched buffers such as the
// KV cache may hold up to 2 MiB more each), and huge pages are only a request; without them (THP disabled,
// memory fragmented, a file already cached in small pages) the mapping works exactly as before.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace g4 {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// mmap(nullptr, bytes, prot, flags, fd, 0) placed at a 2 MiB boundary, so that file offset 0 and every
// 2 MiB-aligned offset can be mapped by one page-table entry. Returns MAP_FAILED on failure, like mmap.
inline void* MapHugeAligned(size_t bytes, int prot, int flags, int fd) {
  // Reserve enough address space to find an aligned start, then map over it and release the slack.
  void* reserve = ::mmap(nullptr, bytes + kHugePageBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (reserve == MAP_FAILED) return MAP_FAILED;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(reserve);
  const uintptr_t start = (lo + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
  void* p = ::mmap(reinterpret_cast<void*>(start), bytes, prot, flags | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    ::munmap(reserve, bytes + kHugePageBytes);
    return MAP_FAILED;
  }
  const uintptr_t end = start + bytes, reserve_end = lo + bytes + kHugePageBytes;
  if (start > lo) ::munmap(reserve, start - lo);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));  // the mapping ends on a page boundary
  const uintptr_t end_page = (end + page - 1) & ~(page - 1);
  if (reserve_end > end_page) ::munmap(reinterpret_cast<void*>(end_page), reserve_end - end_page);
  ::madvise(p, bytes, MADV_HUGEPAGE);  // a request: failure (THP compiled out) leaves 4 KiB pages
  return p;
}

}  // namespace g4
