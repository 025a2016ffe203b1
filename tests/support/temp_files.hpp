// Scratch files for suites that write models and hostile inputs: one folder per process under the system's temp
// directory, removed when the suite exits (exported models are tens of MB).
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "g4/io/gguf_writer.hpp"

namespace g4::testing {

struct TempRoot {
  std::filesystem::path path = std::filesystem::temp_directory_path() / ("g4_test_" + std::to_string(::getpid()));
  ~TempRoot() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
inline const TempRoot kTempRoot;

// A fresh folder for the files one test writes.
inline std::string TempDir(const std::string& name) {
  const std::filesystem::path d = kTempRoot.path / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

inline void WriteBytes(const std::string& path, const std::vector<std::byte>& bytes) { GgufWriter::WriteFileBytes(path, bytes); }

inline std::vector<std::byte> Bytes(const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

}  // namespace g4::testing
