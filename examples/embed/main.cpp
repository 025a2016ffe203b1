// The smallest program that embeds g4rt: load a model, tokenize, generate greedily, print.
//   embed MODEL_DIR_OR_GGUF "prompt text"
#define G4_IMPLEMENTATION  // exactly one translation unit of a program expands the kernels
#include <cstdio>

#include "g4/impl.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/text/model_tokenizer.hpp"

int main(int argc, char** argv) try {
  if (argc != 3) return std::fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]), 2;
  g4::ThreadPool pool;
  const g4::Checkpoint ck(argv[1]);
  const g4::Tokenizer tok = g4::LoadModelTokenizer(ck);
  const g4::Gemma4 model(ck.config(), ck.text(), pool);
  g4::Sequence seq = model.NewSequence(512);
  const auto prompt = tok.Encode(argv[2], {.add_bos = true, .parse_special = false});
  const auto answer = model.GenerateGreedy(seq, prompt, 32);
  std::printf("%s%s\n", argv[2], tok.Decode(answer, /*skip_control=*/true).c_str());
} catch (const g4::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
