// The end-to-end model benchmark behind bench/bench_model and `g4 bench`: the Gemma 4 12B shape (or its first N
// layers) with synthetic weights of one type, built in memory; prefill tokens/s, decode tokens/s at several
// context lengths, peak resident memory, KV-cache bytes, and the decode bound at each context (the weight bytes
// plus the keys and values attention reads per token, over the measured read bandwidth). The host's read bandwidth
// can change while the benchmark runs (the Zen 4 CI host switches between ~36 and ~60 GB/s every few minutes), so
// each decode step follows two passes of the bandwidth probe, and a decode row is compared with the probe beside it.
#pragma once
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "read_bandwidth.hpp"
#include "synthetic_model.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/sampler.hpp"

namespace g4::bench {

struct ModelBenchOptions {
  Type type = Type::Q4_0;
  size_t threads = 2;
  size_t prefill = 512;  // 0 skips
  std::vector<size_t> contexts{0, 4096, 32768};
  size_t steps = 3;      // decode steps per context
  int layers = 0;        // 0: all 48
  Type kv_type = Type::F32;  // F32 or F16
};

struct ModelBenchResult {
  int layers = 0;
  double read_bandwidth = 0;  // bytes/s, at the start
  uint64_t decode_bytes = 0;  // weights streamed per decode step
  double decode_bound = 0;    // tokens/s at context 0, from read_bandwidth
  double prefill_tps = 0;
  struct Decode {
    size_t context;
    double tps;
    uint64_t bytes;         // streamed per step: weights + the keys and values read at this context
    double read_bandwidth;  // bytes/s: the mean of the best of two probe passes run before each step
  };
  std::vector<Decode> decode;
  // A decode measurement's share of its bound: the bytes it streamed per second over the read bandwidth beside it.
  static double FractionOfBound(const Decode& d) { return d.tps * static_cast<double>(d.bytes) / d.read_bandwidth; }
  double kv_gib_32k = 0, kv_gib_256k = 0, peak_rss_gib = 0;
};

// Bytes of keys and values one decode step reads at `context` from a cache of kv_type: every owned layer's KV
// heads over the positions it attends to (sliding layers at most the window).
inline uint64_t KVBytesRead(const Gemma4Config& cfg, size_t context, Type kv_type) {
  uint64_t bytes = 0;
  for (int i = 0; i < cfg.n_layers - cfg.num_kv_shared_layers; ++i) {
    const LayerConfig& l = cfg.layers[static_cast<size_t>(i)];
    const uint64_t keys = l.kind == AttentionKind::kFull ? context + 1
                                                         : std::min<uint64_t>(context + 1, static_cast<uint64_t>(cfg.sliding_window));
    bytes += keys * static_cast<uint64_t>(l.n_kv_heads) * static_cast<uint64_t>(l.head_dim) * 2 * GetTypeInfo(kv_type).block_bytes;
  }
  return bytes;
}

inline ModelBenchResult RunModelBench(const ModelBenchOptions& o, FILE* log) {
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  if (o.layers > 0 && o.layers < cfg.n_layers) {
    cfg.n_layers = o.layers;
    cfg.layers.resize(static_cast<size_t>(o.layers));
  }
  ModelBenchResult r;
  r.layers = cfg.n_layers;
  ThreadPool pool(o.threads);
  ReadBandwidthProbe probe(pool, size_t{512} << 20);  // a pass takes 9-15 ms, a 12B step ~200 ms
  r.read_bandwidth = probe.BestRate(5);
  auto t0 = Clock::now();
  SyntheticModel synth(cfg, o.type);
  const double build_s = seconds(t0);
  t0 = Clock::now();
  Gemma4 model(cfg, synth.weights(), pool);  // where the kernels read row groups, this packs the matrices
  const double setup_s = seconds(t0);
  r.decode_bytes = synth.decode_bytes();
  r.decode_bound = r.read_bandwidth / static_cast<double>(r.decode_bytes);
  std::fprintf(log, "Gemma 4 12B shape, %d layers, %s weights (%.2f GB streamed per decode step), %zu threads, "
               "target %s\n", cfg.n_layers, std::string(TypeName(o.type)).c_str(), static_cast<double>(r.decode_bytes) / 1e9,
               o.threads, CurrentTarget().c_str());
  std::fprintf(log, "read bandwidth %.2f GB/s -> decode bound %.2f tokens/s; synthetic weights built in %.1f s, "
               "model set up in %.1f s\n", r.read_bandwidth / 1e9, r.decode_bound, build_s, setup_s);
  std::mt19937 rng(3);
  if (o.prefill > 0) {
    Sequence seq = model.NewSequence(o.prefill + 1, 512);
    std::vector<int32_t> tokens(o.prefill);
    for (auto& x : tokens) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(cfg.vocab_size));
    ForwardOutput out;
    t0 = Clock::now();
    model.Forward(seq, {tokens}, out);
    r.prefill_tps = static_cast<double>(o.prefill) / seconds(t0);
    std::fprintf(log, "prefill %5zu tokens: %8.2f tokens/s\n", o.prefill, r.prefill_tps);
  }
  for (size_t ctx : o.contexts) {
    // The cache is sized for the context and filled up to it.
    Sequence seq = model.NewSequence(ctx + o.steps + 1, 512, o.kv_type);
    FillKVCache(seq.cache);
    seq.AssumeWritten(static_cast<int64_t>(ctx));
    ForwardOutput out;
    const int32_t first[] = {2};
    model.Forward(seq, {first}, out);  // warm-up: pages the weights in
    double step_s = 0, probed = 0;
    for (size_t s = 0; s < o.steps; ++s) {
      probed += probe.BestRate(2);  // best of two: a first pass after a pause can read ~40% slower
      const int32_t tok[] = {Argmax(out.logits)};
      t0 = Clock::now();
      model.Forward(seq, {tok}, out);
      step_s += seconds(t0);
    }
    const double tps = static_cast<double>(o.steps) / step_s;
    const uint64_t bytes = r.decode_bytes + KVBytesRead(cfg, ctx, o.kv_type);
    r.decode.push_back({ctx, tps, bytes, probed / static_cast<double>(o.steps)});
    std::fprintf(log, "decode at context %6zu: %6.3f tokens/s = %5.1f%% of the bandwidth bound (%.2f GB per step, probe "
                 "beside the steps %.2f GB/s)\n", ctx, tps, 100.0 * r.FractionOfBound(r.decode.back()),
                 static_cast<double>(bytes) / 1e9, r.decode.back().read_bandwidth / 1e9);
  }
  const Gemma4Config full = Gemma4Config::Gemma4_12B();
  r.kv_gib_32k = static_cast<double>(KVCache(full, 32768, 512, o.kv_type).bytes()) / (1u << 30);
  r.kv_gib_256k = static_cast<double>(KVCache(full, 262144, 512, o.kv_type).bytes()) / (1u << 30);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_gib = static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
  std::fprintf(log, "KV cache (%s): %.2f GiB at 32K tokens, %.2f GiB at 256K; peak resident memory %.2f GiB\n",
               std::string(TypeName(o.kv_type)).c_str(), r.kv_gib_32k,
               r.kv_gib_256k, r.peak_rss_gib);
  return r;
}

}  // namespace g4::bench
