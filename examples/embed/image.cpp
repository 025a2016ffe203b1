// A question about an image: the picture's soft tokens and the text in one user turn, the answer streamed.
//   image MODEL.gguf MMPROJ.gguf PICTURE "question"
#include <cstdio>

#include "g4/session/session.hpp"

int main(int argc, char** argv) try {
  if (argc != 5) return std::fprintf(stderr, "usage: %s MODEL MMPROJ PICTURE QUESTION\n", argv[0]), 2;
  g4::ThreadPool pool;
  g4::ModelFiles files;
  files.model = argv[1];
  files.mmproj = argv[2];
  const g4::LoadedModel model(files, pool);
  const g4::Media picture = model.EmbedImage(g4::LoadImage(argv[3]), /*budget=*/70);
  const std::vector<g4::Message> chat{{"user", {g4::Part::Image(picture), g4::Part::Text(argv[4])}}};
  g4::GenerateParams params;
  params.max_tokens = 16;
  g4::Session session(model);
  const g4::Reply reply = session.Respond(chat, params, [](std::string_view text) {
    return std::fwrite(text.data(), 1, text.size(), stdout), true;
  });
  std::printf("\n[%zu prompt tokens (%zu for the picture), %zu generated]\n", reply.prompt_tokens, picture->n, reply.tokens.size());
} catch (const g4::Error& e) {
  return std::fprintf(stderr, "error: %s\n", e.what()), 1;
}
