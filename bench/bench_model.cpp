// End-to-end benchmark of the Gemma 4 12B shape with synthetic weights (built in memory; no download):
// prefill tokens/s, decode tokens/s at several context lengths, peak resident memory, KV-cache bytes, and the
// decode bound (weight bytes per token / measured read bandwidth) beside llama.cpp's published figures for
// this machine class. Prints a table, and JSON with --json FILE.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "g4/model/gemma4.hpp"
#include "read_bandwidth.hpp"
#include "synthetic_model.hpp"

using namespace g4;

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double PeakRssGiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
}

std::vector<int32_t> RandomTokens(size_t n, int vocab) {
  std::mt19937 rng(3);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

// llama.cpp b10587 on this machine class, 2 threads, the same 12B shape with random weights (issue #3).
struct Baseline {
  const char* type;
  double prefill, decode;  // tokens/s; 0 = not published
};
constexpr Baseline kLlamaCpp[] = {{"Q4_0", 9.34, 1.56}, {"Q8_0", 5.94, 0}};

void Usage() {
  std::printf(R"(usage: bench_model [options]
  --type T          weight type: Q4_0 (default), Q4_K, Q8_0, BF16, F16, F32
  --threads N       threads (default 2, the CI machine's cores)
  --prefill N       prompt length for the prefill measurement (default 512; 0 skips)
  --contexts LIST   decode context lengths (default 0,4096,32768)
  --steps N         decode steps per context (default 3)
  --layers N        run only the first N layers (default all 48) for a quick look; figures scale accordingly
  --json FILE       also write the results as JSON
)");
}

}  // namespace

int main(int argc, char** argv) {
  std::string type_name = "Q4_0", json_path, contexts_arg = "0,4096,32768";
  size_t threads = 2, prefill = 512, steps = 3;
  int layers = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--type") type_name = value();
    else if (a == "--threads") threads = std::stoul(value());
    else if (a == "--prefill") prefill = std::stoul(value());
    else if (a == "--contexts") contexts_arg = value();
    else if (a == "--steps") steps = std::stoul(value());
    else if (a == "--layers") layers = std::stoi(value());
    else if (a == "--json") json_path = value();
    else { Usage(); return a == "--help" ? 0 : 2; }
  }
  const auto type = TypeFromName(type_name);
  if (!type || !GetTypeInfo(*type).is_float_weight) { std::fprintf(stderr, "unknown weight type %s\n", type_name.c_str()); return 2; }
  std::vector<size_t> contexts;
  for (std::stringstream ss(contexts_arg); ss.good();) {
    std::string c;
    std::getline(ss, c, ',');
    if (!c.empty()) contexts.push_back(std::stoul(c));
  }

  Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  if (layers > 0 && layers < cfg.n_layers) {
    cfg.n_layers = layers;
    cfg.layers.resize(static_cast<size_t>(layers));
  }
  ThreadPool pool(threads);
  const double bw = bench::MeasureReadBandwidth(pool);
  auto t0 = std::chrono::steady_clock::now();
  bench::SyntheticModel synth(cfg, *type);
  const double build_s = Seconds(t0);
  Gemma4 model(cfg, synth.weights(), pool);
  const double weight_gb = static_cast<double>(synth.decode_bytes()) / 1e9;
  const double bound = bw / static_cast<double>(synth.decode_bytes());
  std::printf("Gemma 4 12B shape, %d layers, %s weights (%.2f GB streamed per decode step), %zu threads\n", cfg.n_layers,
              type_name.c_str(), weight_gb, threads);
  std::printf("read bandwidth %.2f GB/s -> decode bound %.2f tokens/s; synthetic weights built in %.1f s\n", bw / 1e9, bound, build_s);

  double prefill_tps = 0;
  if (prefill > 0) {
    Sequence seq = model.NewSequence(prefill + 1, 512);
    ForwardOutput out;
    const auto tokens = RandomTokens(prefill, cfg.vocab_size);
    t0 = std::chrono::steady_clock::now();
    model.Forward(seq, {tokens}, out);
    prefill_tps = static_cast<double>(prefill) / Seconds(t0);
    std::printf("prefill %5zu tokens: %8.2f tokens/s\n", prefill, prefill_tps);
  }
  struct DecodeRow { size_t context; double tps; };
  std::vector<DecodeRow> decode;
  for (size_t ctx : contexts) {
    // The cache is sized for the context and filled up to it (zeros cost the same to attend over as keys).
    Sequence seq = model.NewSequence(ctx + steps + 1, 512);
    seq.pos = static_cast<int64_t>(ctx);
    ForwardOutput out;
    const int32_t first[] = {2};
    model.Forward(seq, {first}, out);  // warm-up: pages in the weights
    t0 = std::chrono::steady_clock::now();
    for (size_t s = 0; s < steps; ++s) {
      const int32_t tok[] = {Gemma4::Argmax(out.logits)};
      model.Forward(seq, {tok}, out);
    }
    const double tps = static_cast<double>(steps) / Seconds(t0);
    decode.push_back({ctx, tps});
    std::printf("decode at context %6zu: %6.3f tokens/s = %5.1f%% of the bandwidth bound\n", ctx, tps, 100.0 * tps / bound);
  }
  const Gemma4Config full = Gemma4Config::Gemma4_12B();
  const double kv32 = static_cast<double>(KVCache(full, 32768, 512).bytes()) / (1u << 30);
  const double kv256 = static_cast<double>(KVCache(full, 262144, 512).bytes()) / (1u << 30);
  const double rss = PeakRssGiB();
  std::printf("KV cache (f32): %.2f GiB at 32K tokens, %.2f GiB at 256K; peak resident memory %.2f GiB\n", kv32, kv256, rss);
  for (const Baseline& b : kLlamaCpp) {
    if (type_name != b.type || cfg.n_layers != full.n_layers || threads != 2) continue;  // like for like only
    if (b.prefill > 0 && prefill_tps > 0) std::printf("vs llama.cpp b10587 prefill %.2f tokens/s: %.2fx\n", b.prefill, prefill_tps / b.prefill);
    if (b.decode > 0 && !decode.empty()) std::printf("vs llama.cpp b10587 decode %.2f tokens/s: %.2fx\n", b.decode, decode.front().tps / b.decode);
  }
  if (!json_path.empty()) {
    std::ofstream j(json_path);
    j << "{\"type\": \"" << type_name << "\", \"layers\": " << cfg.n_layers << ", \"threads\": " << threads
      << ", \"read_bandwidth_gbs\": " << bw / 1e9 << ", \"decode_bytes\": " << synth.decode_bytes()
      << ", \"decode_bound_tps\": " << bound << ", \"prefill_tokens\": " << prefill << ", \"prefill_tps\": " << prefill_tps
      << ", \"decode\": [";
    for (size_t i = 0; i < decode.size(); ++i)
      j << (i ? ", " : "") << "{\"context\": " << decode[i].context << ", \"tps\": " << decode[i].tps
        << ", \"fraction_of_bound\": " << decode[i].tps / bound << "}";
    j << "], \"kv_gib_32k\": " << kv32 << ", \"kv_gib_256k\": " << kv256 << ", \"peak_rss_gib\": " << rss << "}\n";
  }
  return 0;
}
