// g4: one program with subcommands (run, info, check, quantize, tokenize, bench). Each command lives in its own
// cmd_*.cpp and registers itself; this file only dispatches and turns errors into messages and exit codes.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "command.hpp"
#include "g4/core/error.hpp"
#include "g4/kernels/ops.hpp"

static void PrintUsage(FILE* out) {
  std::fprintf(out, "usage: g4 COMMAND [ARGS...]\n\ncommands:\n");
  for (const auto& [name, cmd] : g4cli::Commands()) std::fprintf(out, "  %-10s %s\n", name.c_str(), cmd.summary.c_str());
  std::fprintf(out, "\n`g4 COMMAND --help` describes a command's arguments.\n"
                    "G4_KERNELS=NAME runs the kernels of one SIMD target (AVX3_DL, AVX3, AVX2, SSE4, SCALAR) instead of\n"
                    "the best this CPU supports: to compare them, or to check a model on another machine's kernels.\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    PrintUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  const auto it = g4cli::Commands().find(name);
  if (it == g4cli::Commands().end()) {
    std::fprintf(stderr, "g4: unknown command '%s'\n\n", name.c_str());
    PrintUsage(stderr);
    return 2;
  }
  try {
    if (const char* kernels = std::getenv("G4_KERNELS"); kernels != nullptr && *kernels != '\0') {
      try {
        g4::ForceTarget(kernels);
      } catch (const g4::Error& e) {
        throw g4::Error("G4_KERNELS", e.what());
      }
    }
    return it->second.run(std::vector<std::string>(argv + 2, argv + argc));
  } catch (const g4::Error& e) {
    std::fprintf(stderr, "g4 %s: error: %s\n", name.c_str(), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "g4 %s: error: %s\n", name.c_str(), e.what());
  }
  return 1;
}
