// g4 bench: the model benchmark (bench/support/model_bench.hpp). With -m, a real checkpoint as `g4 run -m` loads it;
// without, synthetic weights built in memory with defaults that finish in about a minute (the first 8 layers of the
// 12B shape in Q4_0); --layers 48 measures the whole model. bench/ holds the full kernel benchmarks.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "memory_check.hpp"
#include "support/model_bench.hpp"

namespace g4cli::cmd_bench {

const char* kHelp = R"(usage: g4 bench [-m FILE] [options]

Prefill and decode speed against the machine's measured read bandwidth, the bytes a decode token reads (from the
weights' types), and where a decode step spends its time. Options as llama-bench's where they overlap.
  -m, --model PATH        a checkpoint (GGUF or Hugging Face folder); without it, the Gemma 4 12B shape with
                          synthetic weights built in memory (no model file needed)
  --type T                synthetic weights: Q4_0 (default), Q4_K, Q6_K, Q8_0, BF16, F16, F32
  --layers N              synthetic weights: layers of the 12B (default 8 of 48; 48 = the whole model)
  -t, --threads N         threads (default: all)
  -p, --n-prompt N        prompt tokens for the prefill figure (default 512 with -m, else 128; 0 skips)
  -n, --n-gen N           decode steps per context and repetition (default 16 with -m, else 3)
  -r, --repetitions N     repetitions; rows are medians (default 3 with -m, else 1)
  --context LIST          decode context lengths (default 0 with -m, else 0,4096)
  --cache-type T          KV cache of keys and values: f32 (default), f16, q8_0 or q4_0
  -ctk, --cache-type-k T  the keys' type alone; -ctv, --cache-type-v T the values' (llama.cpp's flags)
  --no-memory-check       run even where the weights and the largest context's cache need more than the available
                          memory (MemAvailable, a cgroup limit, or G4_AVAILABLE_MEMORY=SIZE)
)";

int RunBench(std::vector<std::string> argv) {
  const g4cli::Args args(argv, {"--model", "--type", "--layers", "--threads", "--n-prompt", "--n-gen", "--repetitions", "--context", "--cache-type",
                                "--cache-type-k", "--cache-type-v"},
                         {"--help", g4cli::kNoMemoryCheck}, {{"-m", "--model"}, {"-t", "--threads"}, {"-p", "--n-prompt"}, {"-n", "--n-gen"}, {"-r", "--repetitions"}, {"-h", "--help"},
                          {"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"}});
  if (args.has("--help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  g4::Require(args.positional().empty(), "bench", "takes no positional arguments (see --help)");
  g4::bench::ModelBenchOptions o;
  o.model = args.get("--model");
  const bool file = !o.model.empty();
  for (const char* flag : {"--type", "--layers"})
    g4::Require(!file || !args.has(flag), flag, "is for synthetic weights; with -m the file's own are measured");
  const auto type = g4::TypeFromName(args.get("--type", "Q4_0"));
  g4::Require(type && g4::GetTypeInfo(*type).is_float_weight, "--type", "unknown weight type " + args.get("--type"));
  o.type = *type;
  o.threads = static_cast<size_t>(args.get_int("--threads", std::max(1u, std::thread::hardware_concurrency()), 1, g4::ThreadPool::kMaxThreads));
  o.layers = static_cast<int>(args.get_int("--layers", 8, 1, 48));
  o.prefill = static_cast<size_t>(args.get_int("--n-prompt", file ? 512 : 128, 0, 1 << 16));
  o.steps = static_cast<size_t>(args.get_int("--n-gen", file ? 16 : 3, 1, 1 << 16));
  o.repetitions = static_cast<size_t>(args.get_int("--repetitions", file ? 3 : 1, 1, 1000));
  o.kv_types = g4::KVCacheTypesFromNames(args.get("--cache-type"), args.get("--cache-type-k"), args.get("--cache-type-v"));
  o.contexts.clear();
  std::stringstream ss(args.get("--context", file ? "0" : "0,4096"));
  for (std::string c; std::getline(ss, c, ',');) {
    char* end = nullptr;
    const unsigned long v = std::strtoul(c.c_str(), &end, 10);
    g4::Require(!c.empty() && *end == '\0' && v <= 262144, "--context", "'" + c + "' is not a context length up to 262144");
    o.contexts.push_back(v);
  }
  o.memory_check = !args.has(g4cli::kNoMemoryCheck);
  o.memory_flags = {"--context", "--cache-type", "", g4cli::kNoMemoryCheck};
  g4::bench::RunModelBench(o, stdout);
  return 0;
}

const g4cli::RegisterCommand kRegister("bench", "benchmark a checkpoint, or the 12B shape with synthetic weights", RunBench);

}  // namespace g4cli::cmd_bench
