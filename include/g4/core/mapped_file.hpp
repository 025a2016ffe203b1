// A read-only memory-mapped file. Weights are used in place from the mapping (zero copy); the kernel pages
// them in on first touch, so opening a 7 GB model costs nothing until its tensors are read. The mapping asks for
// huge pages (huge_page_map.hpp): the page cache then reads the file in 2 MiB folios where the file system
// supports them (ext4, xfs on recent kernels), unless the file is already cached in small pages.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>

#include "g4/core/error.hpp"
#include "g4/core/huge_page_map.hpp"

namespace g4 {

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
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace g4
