// A program built against an installed or vendored g4rt: tokenizes each TEXT in a task of g4's thread pool, one
// line of ids each (nlohmann_json and threads are what these headers need; the kernels are not expanded here).
#include <cstdio>

#include "g4/core/thread_pool.hpp"
#include "g4/text/tokenizer.hpp"

int main(int argc, char** argv) {
  if (argc < 3) return std::fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT...\n", argv[0]), 2;
  const g4::Tokenizer tok = g4::Tokenizer::FromJsonFile(argv[1]);
  std::vector<std::vector<int32_t>> ids(static_cast<size_t>(argc - 2));
  g4::ThreadPool(2).Run(ids.size(), [&](size_t i, size_t) { ids[i] = tok.Encode(argv[i + 2]); });
  for (const auto& line : ids) {
    for (int32_t id : line) std::printf("%d ", id);
    std::printf("\n");
  }
}
