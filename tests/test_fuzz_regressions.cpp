// Replays every input under tests/data/fuzz-regressions/<harness>/ through the fuzz harness's own entry point
// (tests/fuzz/targets.hpp): each once crashed a harness or tripped a sanitizer, and must now load or fail with a
// clean g4::Error. The sanitizer build of tests/run_all.sh replays them under ASan and UBSan too.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "../tests/fuzz/targets.hpp"

namespace g4_test_fuzz_regressions {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

namespace {

namespace fs = std::filesystem;

fs::path RegressionDir() {
  const char* data = std::getenv("G4_TEST_DATA");
  return fs::path(data ? data : "tests/data") / "fuzz-regressions";
}

// Runs `target` on every file of the harness's folder; returns how many it replayed.
size_t Replay(const std::string& harness, const std::function<void(g4::fuzz::Bytes)>& target) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(RegressionDir() / harness, ec)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    INFO(entry.path().string());
    try {
      target(bytes);
    } catch (const g4::Error&) {
      // the clean refusal
    } catch (const std::exception& e) {
      FAIL("escaped as " << typeid(e).name() << ": " << e.what());
    }
    ++n;
  }
  return n;
}

}  // namespace

TEST_SUITE("fuzz_regressions") {
  TEST_CASE("every saved input replays to success or a g4::Error") {
    const std::map<std::string, std::function<void(g4::fuzz::Bytes)>> targets = {
        {"gguf", g4::fuzz::Gguf},
        {"safetensors", g4::fuzz::Safetensors},
        {"hf_config", g4::fuzz::HfConfig},
        {"tokenizer_json", g4::fuzz::TokenizerJson},
        {"tokenizer_encode", g4::fuzz::TokenizerEncode},
        {"wav", g4::fuzz::Wav},
        {"image", g4::fuzz::Image},
        {"chat_template", g4::fuzz::ChatTemplate},
        {"json_schema", g4::fuzz::JsonSchema},
        {"jinja", g4::fuzz::Jinja},
        {"available_memory", g4::fuzz::AvailableMemoryTexts},
    };
    size_t total = 0;
    for (const auto& [harness, target] : targets) total += Replay(harness, target);
    // Every folder under fuzz-regressions names a harness above (a typo would silently replay nothing).
    for (const auto& entry : fs::directory_iterator(RegressionDir())) CHECK(targets.count(entry.path().filename().string()) == 1);
    CHECK(total > 0);
  }
}

}  // namespace g4_test_fuzz_regressions
