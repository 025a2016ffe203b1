// Owned, 64-byte aligned, zero-initialised storage (cache-line and AVX-512 aligned).
// Large buffers come from anonymous mmap: the kernel hands out zero pages lazily, so a KV cache sized for
// 256K tokens costs resident memory only for the positions actually written.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "g4/core/huge_page_map.hpp"

namespace g4 {

class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 64;
  static constexpr size_t kMmapThreshold = size_t{1} << 21;  // 2 MiB

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) : size_(bytes) {
    if (bytes == 0) return;
    capacity_ = (bytes + kAlign - 1) / kAlign * kAlign;
    if (capacity_ >= kMmapThreshold) {
      void* p = MapHugeAligned(capacity_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
      if (p == MAP_FAILED) throw std::bad_alloc();
      data_ = static_cast<std::byte*>(p);
      mapped_ = true;
    } else {
      void* p = std::aligned_alloc(kAlign, capacity_);
      if (!p) throw std::bad_alloc();
      std::memset(p, 0, capacity_);
      data_ = static_cast<std::byte*>(p);
    }
  }
  ~AlignedBuffer() { Release(); }
  AlignedBuffer(AlignedBuffer&& o) noexcept { *this = std::move(o); }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      Release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
      mapped_ = std::exchange(o.mapped_, false);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  template <typename T> T* as() { return reinterpret_cast<T*>(data_); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(data_); }

 private:
  void Release() {
    if (!data_) return;
    if (mapped_) ::munmap(data_, capacity_);
    else std::free(data_);
    data_ = nullptr;
  }
  std::byte* data_ = nullptr;
  size_t size_ = 0, capacity_ = 0;
  bool mapped_ = false;
};

}  // namespace g4
