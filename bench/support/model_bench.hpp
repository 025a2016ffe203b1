// The end-to-end model benchmark behind bench/bench_model and `g4 bench`: a real checkpoint (GGUF or Hugging Face
// folder, as `g4 run -m` loads it), or the Gemma 4 12B shape (or its first N layers) with synthetic weights of one
// type built in memory. Prefill tokens/s; decode tokens/s at several context lengths, each step a forward pass plus
// `g4 run`'s default sampler over the whole vocabulary; the bytes a decode token reads, counted from the weights'
// types (every layer matrix and the tied output head, plus the keys and values attention reads); a breakdown of the
// decode step by part (ForwardProfile); peak resident memory. The host's read bandwidth can change while the
// benchmark runs (the Zen 4 CI host switches between ~36 and ~60 GB/s every few minutes), so every prefill run and
// decode step follows two passes of the bandwidth probe, and each row is compared with the probe beside it.
// Rows are medians over the repetitions.
#pragma once
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "read_bandwidth.hpp"
#include "synthetic_model.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/sampler.hpp"
#include "g4/session/memory_plan.hpp"

namespace g4::bench {

struct ModelBenchOptions {
  std::string model;  // a checkpoint; empty: synthetic weights of `type`
  Type type = Type::Q4_0;
  size_t threads = 2;
  size_t prefill = 512;  // 0 skips
  std::vector<size_t> contexts{0, 4096, 32768};
  size_t steps = 3;        // decode steps per context and repetition
  size_t repetitions = 1;  // rows are medians over these
  int layers = 0;          // synthetic weights: 0 = all 48
  KVTypes kv_types;  // of keys and values (default F32)
  // A run whose weights, largest cache and buffers exceed the available memory is refused before the model is set
  // up (g4/session/memory_plan.hpp), naming these flags (bench_model's; g4 bench passes its own).
  bool memory_check = true;
  MemoryFlags memory_flags{"--contexts", "--cache-type", "", ""};
};

// Bytes of weights one decode token reads, by type: every layer matrix once, and the tied output head (the token
// embedding matrix) whole; the token's own embedding row is negligible.
struct DecodeWeightBytes {
  std::map<Type, uint64_t> layers;
  Type head_type = Type::F32;
  uint64_t head = 0;
  uint64_t total() const {
    uint64_t t = head;
    for (const auto& [type, b] : layers) t += b;
    return t;
  }
};

inline DecodeWeightBytes CountDecodeWeightBytes(const TextWeights& w) {
  DecodeWeightBytes d;
  for (const LayerWeights& l : w.layers)
    for (const TensorView* v : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      if (v->nbytes > 0) d.layers[v->type] += v->nbytes;
  d.head_type = w.embed.type;
  d.head = w.embed.nbytes;
  return d;
}

// Bytes of keys and values one decode step reads at `context` from a cache of these types: every owned layer's KV
// heads over the positions it attends to (sliding layers at most the window).
inline uint64_t KVBytesRead(const Gemma4Config& cfg, size_t context, KVTypes kv_types) {
  uint64_t bytes = 0;
  for (int i = 0; i < cfg.n_layers - cfg.num_kv_shared_layers; ++i) {
    const LayerConfig& l = cfg.layers[static_cast<size_t>(i)];
    const uint64_t keys = l.kind == AttentionKind::kFull ? context + 1
                                                         : std::min<uint64_t>(context + 1, static_cast<uint64_t>(cfg.sliding_window));
    const size_t hd = static_cast<size_t>(l.head_dim);
    bytes += keys * static_cast<uint64_t>(l.n_kv_heads) * (KVRowBytes(kv_types.k, hd) + KVRowBytes(kv_types.v, hd));
  }
  return bytes;
}

struct ModelBenchResult {
  int layers = 0;
  double read_bandwidth = 0;  // bytes/s, at the start
  uint64_t decode_bytes = 0;  // weights read per decode token
  double decode_bound = 0;    // tokens/s at context 0, from read_bandwidth
  double prefill_tps = 0;
  struct Decode {
    size_t context;
    double tps;
    uint64_t bytes;         // read per token: weights + the keys and values read at this context
    double read_bandwidth;  // bytes/s: the mean of the best of two probe passes run before each step
    double step_s, parts_s;  // the mean measured step, and the sum of its breakdown
  };
  std::vector<Decode> decode;
  // A decode measurement's share of its bound: the bytes it streamed per second over the read bandwidth beside it.
  static double FractionOfBound(const Decode& d) { return d.tps * static_cast<double>(d.bytes) / d.read_bandwidth; }
  double kv_gib_32k = 0, kv_gib_256k = 0, peak_rss_gib = 0;  // KV: at 32K tokens and at 256K (or the model's limit)
};

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The breakdown of the mean decode step at one context: each part's milliseconds, then their sum beside the step.
inline void PrintBreakdown(FILE* log, const ForwardProfile& p, double sampling_s, size_t n, double step_s,
                           const DecodeWeightBytes& bytes) {
  const double k = 1e3 / static_cast<double>(n);
  auto row = [&](const std::string& part, double s, uint64_t read) {
    std::fprintf(log, "  %-22s %9.3f ms %5.1f%%", part.c_str(), s * k, 100.0 * s * k / (step_s * 1e3));
    if (read > 0) std::fprintf(log, "  %.3f GB at %.2f GB/s", static_cast<double>(read) / 1e9, static_cast<double>(read) / (s / static_cast<double>(n)) / 1e9);
    std::fprintf(log, "\n");
  };
  for (const auto& [type, s] : p.matmul_s) {
    const auto it = bytes.layers.find(type);
    row("matmul " + std::string(TypeName(type)), s, it == bytes.layers.end() ? 0 : it->second);
  }
  row("attention", p.attention_s, 0);
  row("output head " + std::string(TypeName(bytes.head_type)), p.head_s, bytes.head);
  row("softcap + sampling", p.softcap_s + sampling_s, 0);
  row("rest", p.rest_s, 0);
  const double sum = (p.total_s() + sampling_s) * k;
  std::fprintf(log, "  %-22s %9.3f ms of the measured step %.3f ms (%.1f%%)\n", "sum", sum, step_s * 1e3, 100.0 * sum / (step_s * 1e3));
}

inline ModelBenchResult RunModelBench(const ModelBenchOptions& o, FILE* log) {
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  ModelBenchResult r;
  ThreadPool pool(o.threads);
  ReadBandwidthProbe probe(pool, size_t{512} << 20);  // a pass takes 9-15 ms, a 12B step ~200 ms
  r.read_bandwidth = probe.BestRate(5);
  auto t0 = Clock::now();
  std::unique_ptr<Checkpoint> ck;
  std::unique_ptr<SyntheticModel> synth;
  Gemma4Config cfg;
  if (!o.model.empty()) {
    ck = std::make_unique<Checkpoint>(o.model);
    cfg = ck->config();
  } else {
    cfg = Gemma4Config::Gemma4_12B();
    if (o.layers > 0 && o.layers < cfg.n_layers) {
      cfg.n_layers = o.layers;
      cfg.layers.resize(static_cast<size_t>(o.layers));
    }
    synth = std::make_unique<SyntheticModel>(cfg, o.type);
  }
  const TextWeights& weights = ck ? ck->text() : synth->weights();
  const double build_s = seconds(t0);
  const DecodeWeightBytes bytes = CountDecodeWeightBytes(weights);
  if (o.memory_check) {  // the largest sequence below: a prefill's, or a decode context's with its steps
    size_t context = o.prefill + 1;
    for (size_t ctx : o.contexts) context = std::max(context, ctx + o.steps + 1);
    const MemoryShape shape{context, 512, o.kv_types, 1, 512, 1};
    RequireMemoryFits(PlanMemory(cfg, WeightBytes(weights), KeptRowGroupCopyBytes(weights, Repack::kWhereRead), shape, o.memory_flags),
                      MachineAvailableMemory(), o.memory_flags);
  }
  t0 = Clock::now();
  Gemma4 model(cfg, weights, pool);  // where the kernels read row groups, this packs the matrices
  const double setup_s = seconds(t0);
  r.layers = cfg.n_layers;
  r.decode_bytes = bytes.total();
  r.decode_bound = r.read_bandwidth / static_cast<double>(r.decode_bytes);
  if (ck) {
    std::fprintf(log, "%s: %d layers, hidden %d, vocabulary %d; %zu threads, target %s\n", o.model.c_str(), cfg.n_layers,
                 cfg.hidden_size, cfg.vocab_size, o.threads, CurrentTarget().c_str());
  } else {
    std::fprintf(log, "Gemma 4 12B shape, %d layers, synthetic %s weights, %zu threads, target %s\n", cfg.n_layers,
                 std::string(TypeName(o.type)).c_str(), o.threads, CurrentTarget().c_str());
  }
  std::fprintf(log, "weights read per decode token: %llu bytes (layer matrices:", static_cast<unsigned long long>(r.decode_bytes));
  for (const auto& [type, b] : bytes.layers) std::fprintf(log, " %s %llu", std::string(TypeName(type)).c_str(), static_cast<unsigned long long>(b));
  std::fprintf(log, "; output head %s %llu)\n", std::string(TypeName(bytes.head_type)).c_str(), static_cast<unsigned long long>(bytes.head));
  std::fprintf(log, "read bandwidth %.2f GB/s -> decode bound %.2f tokens/s at context 0; weights %s in %.1f s, model set up "
               "in %.1f s\n", r.read_bandwidth / 1e9, r.decode_bound, ck ? "opened" : "built", build_s, setup_s);

  // g4 run's default sampler, and the checkpoint's suppressed tokens.
  SamplerConfig sc;
  sc.top_k = 64;
  sc.top_p = 0.95f;
  for (int id : cfg.tokens.suppress)
    if (id < cfg.vocab_size) sc.suppressed.push_back(id);
  const int32_t first[] = {2};
  {  // pages the weights in
    Sequence warm = model.NewSequence(2, 512);
    ForwardOutput out;
    model.Forward(warm, {first}, out);
  }
  std::mt19937 rng(3);
  if (o.prefill > 0) {
    std::vector<double> tps, probed;
    for (size_t rep = 0; rep < o.repetitions; ++rep) {
      Sequence seq = model.NewSequence(o.prefill + 1, 512, o.kv_types);
      std::vector<int32_t> tokens(o.prefill);
      for (auto& x : tokens) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(cfg.vocab_size));
      ForwardOutput out;
      probed.push_back(probe.BestRate(2));
      t0 = Clock::now();
      model.Forward(seq, {tokens}, out);
      tps.push_back(static_cast<double>(o.prefill) / seconds(t0));
    }
    r.prefill_tps = Median(tps);
    std::fprintf(log, "prefill %5zu tokens: %8.2f tokens/s (median of %zu; probe beside %.2f GB/s)\n", o.prefill,
                 r.prefill_tps, o.repetitions, Median(probed) / 1e9);
  }
  for (size_t ctx : o.contexts) {
    std::vector<double> tps;
    double step_s = 0, probed = 0, sampling_s = 0;
    ForwardProfile prof;
    for (size_t rep = 0; rep < o.repetitions; ++rep) {
      // The cache is sized for the context and filled up to it.
      Sequence seq = model.NewSequence(ctx + o.steps + 1, 512, o.kv_types);
      FillKVCache(seq.cache);
      seq.AssumeWritten(static_cast<int64_t>(ctx));
      Sampler sampler(sc, cfg.vocab_size);
      ForwardOutput out;
      model.Forward(seq, {first}, out);  // warm-up: pages in this cache's first slots
      int32_t tok = sampler.Sample(out.logits);
      double rep_s = 0;
      out.profile = &prof;
      for (size_t s = 0; s < o.steps; ++s) {
        probed += probe.BestRate(2);  // best of two: a first pass after a pause can read ~40% slower
        const int32_t in[] = {tok};
        t0 = Clock::now();
        model.Forward(seq, {in}, out);
        const auto ts = Clock::now();
        tok = sampler.Sample(out.logits);
        sampling_s += seconds(ts);
        rep_s += seconds(t0);
      }
      step_s += rep_s;
      tps.push_back(static_cast<double>(o.steps) / rep_s);
    }
    const size_t n = o.steps * o.repetitions;
    const uint64_t kv = KVBytesRead(cfg, ctx, o.kv_types);
    r.decode.push_back({ctx, Median(tps), r.decode_bytes + kv, probed / static_cast<double>(n), step_s / static_cast<double>(n),
                        (prof.total_s() + sampling_s) / static_cast<double>(n)});
    const ModelBenchResult::Decode& d = r.decode.back();
    std::fprintf(log, "decode at context %6zu: %7.3f tokens/s (median of %zu x %zu steps) = %5.1f%% of the probe beside "
                 "the steps %.2f GB/s (%llu bytes per token, KV %llu)\n", ctx, d.tps, o.repetitions, o.steps,
                 100.0 * r.FractionOfBound(d), d.read_bandwidth / 1e9, static_cast<unsigned long long>(d.bytes),
                 static_cast<unsigned long long>(kv));
    std::fprintf(log, "breakdown of a decode step at context %zu (mean of %zu):\n", ctx, n);
    PrintBreakdown(log, prof, sampling_s, n, d.step_s, bytes);
  }
  // KV memory at 32K tokens (or the model's limit, if smaller) and at its limit: the synthetic model's whole 48 layers.
  const Gemma4Config full = ck ? cfg : Gemma4Config::Gemma4_12B();
  const size_t max_ctx = static_cast<size_t>(full.max_position), mid_ctx = std::min<size_t>(32768, max_ctx);
  r.kv_gib_32k = static_cast<double>(KVCache(full, mid_ctx, 512, o.kv_types).bytes()) / (1u << 30);
  r.kv_gib_256k = static_cast<double>(KVCache(full, max_ctx, 512, o.kv_types).bytes()) / (1u << 30);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_gib = static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
  std::fprintf(log, "KV cache (%s): %.3f GiB at %zu tokens, %.3f GiB at %zu; peak resident memory %.2f GiB\n",
               o.kv_types.Name().c_str(), r.kv_gib_32k, mid_ctx, r.kv_gib_256k, max_ctx, r.peak_rss_gib);
  return r;
}

}  // namespace g4::bench
