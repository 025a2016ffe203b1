// The smallest program that embeds g4rt: load a model, continue a prompt greedily, print.
//   embed MODEL_DIR_OR_GGUF "prompt text"
#define G4_IMPLEMENTATION  // exactly one translation unit of a program expands the kernels
#include <cstdio>

#include "g4/impl.hpp"
#include "g4/session/session.hpp"

int main(int argc, char** argv) try {
  if (argc != 3) return std::fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]), 2;
  g4::ThreadPool pool;
  g4::ModelFiles files;
  files.model = argv[1];
  const g4::LoadedModel model(files, pool);
  g4::Session session(model);
  g4::GenerateParams params;
  params.sampling.temperature = 0;  // greedy
  params.max_tokens = 32;
  const g4::Reply reply = session.Complete(argv[2], {}, params);
  std::printf("%s%s\n", argv[2], reply.text.c_str());
} catch (const g4::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
