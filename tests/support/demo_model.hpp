// The demo model (tests/data/demo: a small trained Gemma 4 with readable output), loaded for a test: with its MTP
// drafter and a Jinja chat template when asked (it carries none of its own).
#pragma once
#include <string>

#include "g4/session/loaded_model.hpp"
#include "support/test_data.hpp"

namespace g4::testing {

inline ModelFiles DemoFiles(bool drafter = false, const std::string& chat_template = {}) {
  ModelFiles f;
  f.model = DataDir() + "/demo";
  if (drafter) f.draft = DataDir() + "/demo/drafter";
  f.chat_template = chat_template;
  return f;
}

inline std::string OfficialTemplatePath(bool interleaved = false) {
  return DataDir() + "/chat-template/" + (interleaved ? "gemma4-official-interleaved.jinja" : "gemma4-official.jinja");
}

struct DemoModel {
  ThreadPool pool{2};
  LoadedModel lm;
  explicit DemoModel(bool drafter = false, const std::string& chat_template = {}) : lm(DemoFiles(drafter, chat_template), pool) {}
};

}  // namespace g4::testing
