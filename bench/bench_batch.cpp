// Aggregate decode throughput of several sequences in one batched forward pass (Gemma4::ForwardBatch), on the
// Gemma 4 12B shape with synthetic weights: 1, 2, 4 and 8 streams at a context, and a 4-stream decode step's time
// while a long prompt is prefilled beside the streams, in chunks as the scheduler sizes them (PrefillBudget: a step
// within --stall times a plain one, at most --chunk tokens) and in fixed chunks of --chunk tokens. Decode streams the
// weights once per step whatever the number of sequences, so the aggregate tokens/s should grow nearly with it until
// the work per byte catches up. Each stream count's best step is split into its parts (ForwardProfile: the layers'
// matmuls, attention, the output head, the rest).
//   bench_batch [--type Q4_0] [--layers N] [--threads N] [--context 1024] [--cache-type f32|f16|q8_0|q4_0] [-ctk T] [-ctv T] [--steps 4]
//               [--prefill 2048] [--chunk 256] [--stall 2.5] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "g4/model/forward_profile.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/sampler.hpp"
#include "g4/session/prefill_budget.hpp"
#include "support/synthetic_model.hpp"

using namespace g4;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) try {
  Type type = Type::Q4_0;
  int layers = 0;
  size_t threads = 2, context = 1024, steps = 4, prefill = 2048, chunk = 256;
  double stall = 2.5;
  std::string cache_type, cache_type_k, cache_type_v;  // llama.cpp's --cache-type, -ctk, -ctv
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    Require(i + 1 < argc, a, "needs a value");
    const std::string v = argv[++i];
    if (a == "--type") {
      const std::optional<Type> t = TypeFromName(v);
      Require(t.has_value(), "--type", "unknown weight type " + v);
      type = *t;
    } else if (a == "--layers") layers = std::stoi(v);
    else if (a == "--threads") threads = std::stoul(v);
    else if (a == "--context") context = std::stoul(v);
    else if (a == "--steps") steps = std::stoul(v);
    else if (a == "--prefill") prefill = std::stoul(v);
    else if (a == "--chunk") chunk = std::stoul(v);
    else if (a == "--stall") stall = std::stod(v);
    else if (a == "--cache-type") cache_type = v;
    else if (a == "--cache-type-k" || a == "-ctk") cache_type_k = v;
    else if (a == "--cache-type-v" || a == "-ctv") cache_type_v = v;
    else if (a == "--json") json = v;
    else Fail(a, "unknown option");
  }
  const KVTypes kv_type = KVCacheTypesFromNames(cache_type, cache_type_k, cache_type_v);
  Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  if (layers > 0 && layers < cfg.n_layers) {
    cfg.n_layers = layers;
    cfg.layers.resize(static_cast<size_t>(layers));
  }
  ThreadPool pool(threads);
  bench::SyntheticModel synth(cfg, type);
  const Gemma4 model(cfg, synth.weights(), pool);
  Require(chunk >= 1, "--chunk", "must be >= 1");
  std::printf("Gemma 4 12B shape, %d layers, %s weights, %zu threads, target %s, decode at context %zu, %s cache\n",
              cfg.n_layers, std::string(TypeName(type)).c_str(), threads, CurrentTarget().c_str(), context,
              kv_type.Name().c_str());
  const size_t kMaxStreams = 8;
  std::vector<Sequence> seqs;
  for (size_t s = 0; s < kMaxStreams; ++s) {
    seqs.push_back(model.NewSequence(context + steps + 2, 8, kv_type));
    bench::FillKVCache(seqs.back().cache);
    seqs.back().AssumeWritten(static_cast<int64_t>(context));
  }
  std::vector<ForwardOutput> outs(kMaxStreams);
  std::vector<int32_t> next(kMaxStreams, 2);
  // One decode step of the first n streams (its parts' times into `profile`, if given); returns its seconds.
  auto step = [&](size_t n, std::vector<Gemma4::BatchEntry> extra = {}, ForwardProfile* profile = nullptr) {
    std::vector<Gemma4::BatchEntry> batch;
    for (size_t s = 0; s < n; ++s) batch.push_back({&seqs[s], {std::span(next).subspan(s, 1)}, &outs[s]});
    batch.insert(batch.end(), extra.begin(), extra.end());
    outs[0].profile = profile;
    const auto t0 = Clock::now();
    model.ForwardBatch(batch);
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    for (size_t s = 0; s < n; ++s) next[s] = Argmax(outs[s].logits);
    return sec;
  };
  auto rewind = [&] {
    for (Sequence& s : seqs) s.Rollback(static_cast<int64_t>(context));
  };
  step(kMaxStreams);  // warm-up: pages the weights in
  rewind();
  const std::vector<size_t> streams{1, 2, 4, 8};
  std::vector<double> tps, speedup;
  std::vector<double> part_matmul, part_attention, part_head, part_rest;  // ms of the best step's parts
  for (size_t n : streams) {
    double best = 1e30;  // the best step of `steps`: the host's bandwidth drifts
    ForwardProfile best_parts;
    for (size_t i = 0; i < steps; ++i) {
      ForwardProfile parts;
      const double sec = step(n, {}, &parts);
      if (sec < best) best = sec, best_parts = parts;
    }
    rewind();
    tps.push_back(static_cast<double>(n) / best);
    speedup.push_back(tps.back() / tps.front());
    double matmul = 0;
    for (const auto& [t, sec] : best_parts.matmul_s) matmul += sec;
    part_matmul.push_back(matmul * 1e3);
    part_attention.push_back(best_parts.attention_s * 1e3);
    part_head.push_back(best_parts.head_s * 1e3);
    part_rest.push_back((best_parts.softcap_s + best_parts.rest_s) * 1e3);
    std::printf("%zu stream(s): %7.2f tokens/s aggregate, %5.2fx one stream (step %.0f ms: layers' matmuls %.0f, attention "
                "%.0f, head %.0f, rest %.0f)\n",
                n, tps.back(), speedup.back(), best * 1e3, part_matmul.back(), part_attention.back(), part_head.back(),
                part_rest.back());
  }
  // Four streams decoding while a prompt is prefilled beside them, in chunks of chunk_of() tokens.
  double plain = 1e30;
  PrefillBudget budget(chunk, stall);
  for (size_t i = 0; i < steps; ++i) {
    const double sec = step(4);
    plain = std::min(plain, sec);
    budget.Record(4, 0, sec);
  }
  rewind();
  std::vector<int32_t> prompt(prefill);
  std::mt19937 rng(5);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(cfg.vocab_size));
  struct Prefill {
    double worst = 0, seconds = 0;  // the longest step; all steps
    size_t steps = 0;
  };
  auto prefill_beside = [&](auto&& chunk_of, auto&& record) {
    Sequence prompt_seq = model.NewSequence(prefill + 1, chunk, kv_type);
    ForwardOutput prompt_out;
    Prefill r;
    for (size_t at = 0; at < prefill; ++r.steps) {
      const size_t n = std::min(chunk_of(), prefill - at);
      const double sec = step(4, {{&prompt_seq, {std::span(prompt).subspan(at, n)}, &prompt_out}});
      record(n, sec);
      rewind();
      r.worst = std::max(r.worst, sec);
      r.seconds += sec;
      at += n;
    }
    return r;
  };
  const Prefill learned = prefill_beside([&] { return budget.Next(4); }, [&](size_t n, double sec) { budget.Record(4, n, sec); });
  const Prefill fixed = prefill_beside([&] { return chunk; }, [](size_t, double) {});
  auto report = [&](const char* what, const Prefill& r) {
    std::printf("  %s: %zu steps of %.1f tokens on average, worst step %.0f ms (%.2fx plain), mean %.0f ms (%.2fx); prefill %.1f tokens/s\n",
                what, r.steps, static_cast<double>(prefill) / static_cast<double>(r.steps), r.worst * 1e3, r.worst / plain,
                r.seconds / static_cast<double>(r.steps) * 1e3, r.seconds / static_cast<double>(r.steps) / plain,
                static_cast<double>(prefill) / r.seconds);
  };
  std::printf("4 streams: plain step %.0f ms; beside a %zu-token prompt prefilled\n", plain * 1e3, prefill);
  report(("as PrefillBudget sizes them (stall " + std::to_string(stall).substr(0, 4) + ", at most " + std::to_string(chunk) + ")").c_str(), learned);
  report(("in chunks of " + std::to_string(chunk)).c_str(), fixed);
  if (!json.empty()) {
    std::ofstream f(json);
    auto list = [&](const std::vector<double>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
      return s + "]";
    };
    f << "{\"type\": \"" << TypeName(type) << "\", \"layers\": " << cfg.n_layers << ", \"threads\": " << threads
      << ", \"context\": " << context << ", \"streams\": [1, 2, 4, 8], \"tokens_per_s\": " << list(tps)
      << ", \"speedup\": " << list(speedup) << ", \"step_parts_ms\": {\"layer_matmuls\": " << list(part_matmul)
      << ", \"attention\": " << list(part_attention) << ", \"head\": " << list(part_head) << ", \"rest\": " << list(part_rest)
      << "}, \"cache_type\": \"" << kv_type.Name()
      << "\", \"step_ms_plain\": " << plain * 1e3
      << ", \"step_ms_during_prefill\": " << learned.seconds / static_cast<double>(learned.steps) * 1e3
      << ", \"step_ms_during_prefill_worst\": " << learned.worst * 1e3
      << ", \"stall\": " << stall << ", \"prefill_tokens_per_step\": " << static_cast<double>(prefill) / static_cast<double>(learned.steps)
      << ", \"prefill_tokens_per_s\": " << static_cast<double>(prefill) / learned.seconds
      << ", \"fixed_chunk\": " << chunk << ", \"step_ms_during_prefill_fixed_chunk\": " << fixed.worst * 1e3
      << ", \"prefill_tokens_per_s_fixed_chunk\": " << static_cast<double>(prefill) / fixed.seconds << "}\n";
  }
} catch (const Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
