// g4 bench: the model benchmark with defaults that finish in about a minute (the first 8 layers of the 12B shape
// in Q4_0, synthetic weights); --layers 48 measures the whole model. bench/ holds the full kernel benchmarks.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "support/model_bench.hpp"

namespace g4cli::cmd_bench {

const char* kHelp = R"(usage: g4 bench [options]

Benchmarks the Gemma 4 12B shape with synthetic weights built in memory (no model file needed).
  --type T          Q4_0 (default), Q4_K, Q6_K, Q8_0, BF16, F16, F32
  -t, --threads N   threads (default: all)
  --layers N        layers of the 12B to run (default 8 of 48; 48 = the whole model, ~7 GB at Q4_0)
  --prefill N       prompt tokens for the prefill figure (default 128; 0 skips)
  --contexts LIST   decode context lengths (default 0,4096)
  --steps N         decode steps per context (default 3)
  --cache-type T    KV cache: f32 (default) or f16
)";

int RunBench(std::vector<std::string> argv) {
  const g4cli::Args args(argv, {"--type", "--threads", "--layers", "--prefill", "--contexts", "--steps", "--cache-type"}, {"--help"},
                         {{"-t", "--threads"}, {"-h", "--help"}});
  if (args.has("--help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  g4::Require(args.positional().empty(), "bench", "takes no positional arguments (see --help)");
  g4::bench::ModelBenchOptions o;
  const auto type = g4::TypeFromName(args.get("--type", "Q4_0"));
  g4::Require(type && g4::GetTypeInfo(*type).is_float_weight, "--type", "unknown weight type " + args.get("--type"));
  o.type = *type;
  o.threads = static_cast<size_t>(args.get_int("--threads", std::max(1u, std::thread::hardware_concurrency()), 1, g4::ThreadPool::kMaxThreads));
  o.layers = static_cast<int>(args.get_int("--layers", 8, 1, 48));
  o.prefill = static_cast<size_t>(args.get_int("--prefill", 128, 0, 1 << 16));
  o.steps = static_cast<size_t>(args.get_int("--steps", 3, 1, 1000));
  o.kv_type = g4::KVCacheTypeFromName(args.get("--cache-type", "f32"), "--cache-type");
  o.contexts.clear();
  std::stringstream ss(args.get("--contexts", "0,4096"));
  for (std::string c; std::getline(ss, c, ',');) {
    char* end = nullptr;
    const unsigned long v = std::strtoul(c.c_str(), &end, 10);
    g4::Require(!c.empty() && *end == '\0' && v <= 262144, "--contexts", "'" + c + "' is not a context length up to 262144");
    o.contexts.push_back(v);
  }
  g4::bench::RunModelBench(o, stdout);
  return 0;
}

const g4cli::RegisterCommand kRegister("bench", "benchmark the 12B shape with synthetic weights", RunBench);

}  // namespace g4cli::cmd_bench
