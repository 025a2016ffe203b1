// The memory this process may still use, from what Linux reports: /proc/meminfo's MemAvailable, lowered by a
// cgroup v2 memory.max on the way from this process's group to the root (the limit less what the group uses
// apart from inactive file pages, as container runtimes count a working set). G4_AVAILABLE_MEMORY (bytes, or with
// a K/M/G/T suffix) replaces both: to plan for a smaller machine, or to keep room for other programs. The parsers
// take the files' texts, so they are tested (and fuzzed: tests/fuzz/fuzz_available_memory.cpp) without a machine.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "g4/core/error.hpp"

namespace g4 {

struct AvailableMemory {
  uint64_t bytes = 0;
  std::string source;  // where the figure comes from, for the message
};

// "MemAvailable:  24106228 kB" of /proc/meminfo, in bytes; nullopt where the line is missing or malformed.
inline std::optional<uint64_t> ParseMemAvailable(std::string_view meminfo) {
  for (size_t at = 0; at < meminfo.size();) {
    size_t end = meminfo.find('\n', at);
    if (end == std::string_view::npos) end = meminfo.size();
    std::string_view line = meminfo.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with("MemAvailable:")) continue;
    line.remove_prefix(13);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    uint64_t kb = 0;
    size_t digits = 0;
    for (; digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits])); ++digits) {
      const uint64_t d = static_cast<uint64_t>(line[digits] - '0');
      if (kb > (UINT64_MAX / 1024 - d) / 10) return std::nullopt;
      kb = kb * 10 + d;
    }
    if (digits == 0 || line.substr(digits) != " kB") return std::nullopt;
    return kb * 1024;
  }
  return std::nullopt;
}

// A byte count: digits with an optional K, M, G or T suffix (powers of 1024, an optional trailing 'B' or 'iB') and
// surrounding white space; nullopt for anything else ("max" included) or an overflow.
inline std::optional<uint64_t> ParseByteCount(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  uint64_t n = 0;
  size_t i = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (n > (UINT64_MAX - d) / 10) return std::nullopt;
    n = n * 10 + d;
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = s.substr(i);
  int shift = 0;
  if (!unit.empty()) {
    const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(unit.front())));
    shift = u == 'K' ? 10 : u == 'M' ? 20 : u == 'G' ? 30 : u == 'T' ? 40 : -1;
    unit.remove_prefix(1);
    if (shift < 0 || !(unit.empty() || unit == "B" || unit == "iB")) return std::nullopt;
  }
  if (shift > 0 && n > (UINT64_MAX >> shift)) return std::nullopt;
  return n << shift;
}

// The value of `key` in a cgroup memory.stat text ("inactive_file 123"), or 0.
inline uint64_t ParseMemoryStat(std::string_view stat, std::string_view key) {
  std::istringstream in{std::string(stat)};
  std::string k, v;
  while (in >> k >> v)
    if (k == key) return ParseByteCount(v).value_or(0);
  return 0;
}

// The cgroup v2 path of this process from /proc/self/cgroup ("0::/path"), or nullopt (cgroup v1 only).
inline std::optional<std::string> ParseCgroupV2Path(std::string_view self_cgroup) {
  for (size_t at = 0; at < self_cgroup.size();) {
    size_t end = self_cgroup.find('\n', at);
    if (end == std::string_view::npos) end = self_cgroup.size();
    const std::string_view line = self_cgroup.substr(at, end - at);
    at = end + 1;
    if (line.starts_with("0::/")) return std::string(line.substr(3));
  }
  return std::nullopt;
}

namespace available_memory_detail {
inline std::optional<std::string> ReadSmallFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return std::nullopt;
  std::string s(64 * 1024, '\0');
  f.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(f.gcount()));
  return s;
}
}  // namespace available_memory_detail

// What this process may still use: G4_AVAILABLE_MEMORY if set (a malformed value is an error naming it); else
// MemAvailable under `proc`, lowered by the tightest cgroup v2 limit on the way from this process's group up to
// the root under `cgroup_root` (limit - (usage - inactive file pages)). The roots are parameters for tests.
inline AvailableMemory MachineAvailableMemory(const std::filesystem::path& proc = "/proc",
                                              const std::filesystem::path& cgroup_root = "/sys/fs/cgroup",
                                              const char* env = std::getenv("G4_AVAILABLE_MEMORY")) {
  using available_memory_detail::ReadSmallFile;
  if (env != nullptr) {
    const std::optional<uint64_t> n = ParseByteCount(env);
    Require(n.has_value(), "G4_AVAILABLE_MEMORY", "'" + std::string(env) + "' is not a byte count (e.g. 16G)");
    return {*n, "G4_AVAILABLE_MEMORY"};
  }
  AvailableMemory best{UINT64_MAX, "unknown (no MemAvailable in " + (proc / "meminfo").string() + ")"};
  if (const auto meminfo = ReadSmallFile(proc / "meminfo"))
    if (const auto n = ParseMemAvailable(*meminfo)) best = {*n, "MemAvailable in " + (proc / "meminfo").string()};
  const auto self = ReadSmallFile(proc / "self" / "cgroup");
  const std::optional<std::string> group = self ? ParseCgroupV2Path(*self) : std::nullopt;
  if (!group) return best;
  std::filesystem::path dir = cgroup_root;
  if (const std::filesystem::path rel = std::filesystem::path(*group).relative_path(); !rel.empty()) dir /= rel;
  for (;; dir = dir.parent_path()) {
    const auto max = ReadSmallFile(dir / "memory.max");
    const auto current = ReadSmallFile(dir / "memory.current");
    const std::optional<uint64_t> limit = max ? ParseByteCount(*max) : std::nullopt;
    const std::optional<uint64_t> used = current ? ParseByteCount(*current) : std::nullopt;
    if (limit && used) {
      const auto stat = ReadSmallFile(dir / "memory.stat");
      const uint64_t inactive = stat ? ParseMemoryStat(*stat, "inactive_file") : 0;
      const uint64_t in_use = *used - std::min(*used, inactive);
      const uint64_t left = *limit - std::min(*limit, in_use);
      if (left < best.bytes) best = {left, "cgroup limit " + (dir / "memory.max").string() + " less its usage"};
    }
    if (dir == cgroup_root || !dir.has_relative_path() || dir.parent_path() == dir) break;
  }
  return best;
}

}  // namespace g4
