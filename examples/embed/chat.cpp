// Streaming chat: each line of standard input is a user turn; answers stream as they are decoded, and every turn
// after the first reuses the cache of the conversation so far.   chat MODEL < turns.txt
#include <cstdio>
#include <iostream>

#include "g4/session/session.hpp"

int main(int argc, char** argv) try {
  if (argc != 2) return std::fprintf(stderr, "usage: %s MODEL < turns.txt\n", argv[0]), 2;
  g4::ThreadPool pool;
  g4::ModelFiles files;
  files.model = argv[1];
  const g4::LoadedModel model(files, pool);
  g4::Session session(model);
  g4::GenerateParams params;
  params.max_tokens = 48;
  std::vector<g4::Message> chat;
  for (std::string line; std::getline(std::cin, line);) {
    chat.push_back({"user", {g4::Part::Text(line)}});
    const g4::Reply reply = session.Respond(chat, params, [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      return true;  // false stops the answer here
    });
    std::printf("\n[%zu of %zu prompt tokens were cached]\n", reply.cached_tokens, reply.prompt_tokens);
    chat.push_back({"assistant", {g4::Part::Text(reply.text)}});
  }
} catch (const g4::Error& e) {
  return std::fprintf(stderr, "error: %s\n", e.what()), 1;
}
