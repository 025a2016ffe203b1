// Tokenizer throughput on English prose: MB/s encoding one large text in one call with the chunk cache empty
// (cold) and filled (whole), the same text paragraph by paragraph (prompt-sized calls), and decoding. Runs the demo
// tokenizer and, when tests/fetch_gemma3_tokenizer.sh has fetched it, Gemma 3's real 262144-entry one. The text
// defaults to the licence texts every Debian system ships (/usr/share/common-licenses, about 240 KB of English).
// Times are CPU seconds of the one encoding thread, so MB/s is per core whatever else the machine runs; the load
// time is wall time. Prints a table, and one JSON object per tokenizer with --json.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "g4/text/tokenizer.hpp"

using namespace g4;
namespace fs = std::filesystem;

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// CPU time of the calling thread: on a shared machine, wall time would count the time other jobs held the core.
double ThreadSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Best of `reps` runs of fn, in CPU seconds of this thread.
template <typename Fn>
double Best(int reps, Fn fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = ThreadSeconds();
    fn();
    best = std::min(best, ThreadSeconds() - t0);
  }
  return best;
}

void Usage() {
  std::printf(R"(usage: bench_tokenizer [options]
  --tokenizer FILE   a tokenizer.json (repeatable; default: the demo one and Gemma 3's if fetched)
  --text FILE        English text to encode (repeatable; default: /usr/share/common-licenses/*)
  --json             also print one JSON object per tokenizer
Run from the repository root, or set G4_TEST_DATA to tests/data.
)");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> tokenizers, texts;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--tokenizer" || a == "--text") && i + 1 < argc) {
      (a == "--text" ? texts : tokenizers).push_back(argv[++i]);
    } else if (a == "--json") {
      json = true;
    } else {
      Usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  const std::string data = std::getenv("G4_TEST_DATA") ? std::getenv("G4_TEST_DATA") : "tests/data";
  if (tokenizers.empty()) {
    tokenizers.push_back(data + "/demo/tokenizer.json");
    if (fs::exists(data + "/tokenizer/gemma3/tokenizer.json"))
      tokenizers.push_back(data + "/tokenizer/gemma3/tokenizer.json");
  }
  std::string corpus;
  if (texts.empty() && fs::is_directory("/usr/share/common-licenses")) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
      if (e.is_regular_file() && !e.is_symlink()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& p : files) corpus += ReadFile(p);
  }
  for (const auto& t : texts) corpus += ReadFile(t);
  if (corpus.empty()) {
    std::fprintf(stderr, "bench_tokenizer: no text (give --text FILE)\n");
    return 2;
  }
  std::vector<std::string> paragraphs;
  for (size_t p = 0; p < corpus.size();) {
    size_t e = corpus.find("\n\n", p);
    e = e == std::string::npos ? corpus.size() : e + 2;
    paragraphs.push_back(corpus.substr(p, e - p));
    p = e;
  }
  const double mb = static_cast<double>(corpus.size()) / 1e6;
  std::printf("text: %.2f MB, %zu paragraphs\n\n", mb, paragraphs.size());
  std::printf("%-48s %7s %7s %10s %10s %10s %9s %8s\n", "tokenizer", "vocab", "load s", "cold MB/s", "whole MB/s",
              "paras MB/s", "dec MB/s", "B/token");
  for (const std::string& path : tokenizers) {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      const Tokenizer tok = Tokenizer::FromJsonFile(path);
      const double load = Seconds(t0);
      std::vector<int32_t> ids;
      const double cold = Best(1, [&] { ids = tok.Encode(corpus); });  // the chunk cache starts empty
      const double whole = Best(3, [&] { ids = tok.Encode(corpus); });
      const double paras = Best(3, [&] {
        for (const std::string& p : paragraphs) tok.Encode(p);
      });
      std::string back;
      const double dec = Best(3, [&] { back = tok.Decode(ids); });
      if (back != corpus)
        std::fprintf(stderr, "warning: %s: decode(encode(text)) differs from the text\n", path.c_str());
      const double bpt = static_cast<double>(corpus.size()) / static_cast<double>(ids.size());
      std::printf("%-48s %7d %7.2f %10.1f %10.1f %10.1f %9.1f %8.2f\n", path.c_str(), tok.size(), load, mb / cold,
                  mb / whole, mb / paras, mb / dec, bpt);
      if (json)
        std::printf(
            "{\"tokenizer\": \"%s\", \"vocab\": %d, \"load_s\": %.3f, \"encode_cold_mb_s\": %.2f, "
            "\"encode_whole_mb_s\": %.2f, \"encode_paragraphs_mb_s\": %.2f, \"decode_mb_s\": %.2f, "
            "\"bytes_per_token\": %.3f}\n",
            path.c_str(), tok.size(), load, mb / cold, mb / whole, mb / paras, mb / dec, bpt);
    } catch (const Error& e) {
      std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}
