// End-to-end benchmark of a checkpoint (--model), or of the Gemma 4 12B shape with synthetic weights beside
// llama.cpp's published figures for this machine class (bench/support/model_bench.hpp). Prints a table, and JSON
// with --json FILE.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "support/model_bench.hpp"

using namespace g4;

namespace {

// llama.cpp b10587 on this machine class, 2 threads, the same 12B shape with random weights (issue #3).
struct Baseline {
  const char* type;
  double prefill, decode;  // tokens/s; 0 = not published
};
constexpr Baseline kLlamaCpp[] = {{"Q4_0", 9.34, 1.56}, {"Q8_0", 5.94, 0}};

void Usage() {
  std::printf(R"(usage: bench_model [options]
  --model PATH      a checkpoint (GGUF or Hugging Face folder) instead of synthetic weights
  --type T          synthetic weight type: Q4_0 (default), Q4_K, Q8_0, BF16, F16, F32
  --threads N       threads (default 2, the CI machine's cores)
  --prefill N       prompt length for the prefill measurement (default 512; 0 skips)
  --contexts LIST   decode context lengths (default 0,4096,32768)
  --steps N         decode steps per context and repetition (default 3)
  --repetitions N   repetitions; rows are medians (default 1)
  --layers N        run only the first N layers (default all 48) for a quick look
  --cache-type T    KV cache of keys and values: f32 (default), f16, q8_0 or q4_0
  -ctk, --cache-type-k T / -ctv, --cache-type-v T   the keys' or the values' type alone (llama.cpp's flags)
  --target NAME     run the kernels of one Highway target (g4::ForceTarget), e.g. AVX2 on an AVX-512 machine
  --json FILE       also write the results as JSON
)");
}

}  // namespace

int main(int argc, char** argv) try {
  bench::ModelBenchOptions o;
  std::string type_name = "Q4_0", json_path, cache_type, cache_type_k, cache_type_v;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc || a == "--help") { Usage(); return a == "--help" ? 0 : 2; }
    const std::string v = argv[++i];
    if (a == "--type") type_name = v;
    else if (a == "--model") o.model = v;
    else if (a == "--repetitions") o.repetitions = std::stoul(v);
    else if (a == "--threads") o.threads = std::stoul(v);
    else if (a == "--prefill") o.prefill = std::stoul(v);
    else if (a == "--steps") o.steps = std::stoul(v);
    else if (a == "--layers") o.layers = std::stoi(v);
    else if (a == "--cache-type") cache_type = v;
    else if (a == "--cache-type-k" || a == "-ctk") cache_type_k = v;
    else if (a == "--cache-type-v" || a == "-ctv") cache_type_v = v;
    else if (a == "--json") json_path = v;
    else if (a == "--target") ForceTarget(v);
    else if (a == "--contexts") {
      o.contexts.clear();
      std::stringstream ss(v);
      for (std::string c; std::getline(ss, c, ',');) o.contexts.push_back(std::stoul(c));
    } else { Usage(); return 2; }
  }
  const auto type = TypeFromName(type_name);
  if (!type || !GetTypeInfo(*type).is_float_weight) { std::fprintf(stderr, "unknown weight type %s\n", type_name.c_str()); return 2; }
  o.type = *type;
  o.kv_types = KVCacheTypesFromNames(cache_type, cache_type_k, cache_type_v);
  const bench::ModelBenchResult r = bench::RunModelBench(o, stdout);
  for (const Baseline& b : kLlamaCpp) {
    if (!o.model.empty() || type_name != b.type || r.layers != 48 || o.threads != 2) continue;  // like for like only
    if (b.prefill > 0 && r.prefill_tps > 0) std::printf("vs llama.cpp b10587 prefill %.2f tokens/s: %.2fx\n", b.prefill, r.prefill_tps / b.prefill);
    if (b.decode > 0 && !r.decode.empty()) std::printf("vs llama.cpp b10587 decode %.2f tokens/s: %.2fx\n", b.decode, r.decode.front().tps / b.decode);
  }
  if (!json_path.empty()) {
    std::ofstream j(json_path);
    j << "{\"model\": \"" << o.model << "\", \"type\": \"" << type_name << "\", \"layers\": " << r.layers << ", \"threads\": " << o.threads
      << ", \"read_bandwidth_gbs\": " << r.read_bandwidth / 1e9 << ", \"decode_bytes\": " << r.decode_bytes
      << ", \"decode_bound_tps\": " << r.decode_bound << ", \"prefill_tokens\": " << o.prefill << ", \"prefill_tps\": " << r.prefill_tps
      << ", \"decode\": [";
    for (size_t i = 0; i < r.decode.size(); ++i)
      j << (i ? ", " : "") << "{\"context\": " << r.decode[i].context << ", \"tps\": " << r.decode[i].tps
        << ", \"bytes_per_step\": " << r.decode[i].bytes << ", \"read_bandwidth_gbs\": " << r.decode[i].read_bandwidth / 1e9
        << ", \"fraction_of_bound\": " << r.FractionOfBound(r.decode[i]) << ", \"step_s\": " << r.decode[i].step_s
        << ", \"breakdown_sum_s\": " << r.decode[i].parts_s << "}";
    j << "], \"kv_gib_32k\": " << r.kv_gib_32k << ", \"kv_gib_256k\": " << r.kv_gib_256k << ", \"peak_rss_gib\": " << r.peak_rss_gib << "}\n";
  }
  return 0;
} catch (const std::exception& e) {  // g4::Error, and std::stoul's on a malformed number
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
