// MTP speculative decoding, measured two ways.
//  Cost model (default): on the 12B shape with synthetic weights (acceptance is meaningless with random weights),
//    the time to verify k+1 tokens over one decode step, one draft step over one decode step, and the tokens/s
//    those imply at per-draft acceptance rates 0.5, 0.7 and 0.9 (best k for each) against plain decoding.
//  Acceptance (--acceptance DEMO_DIR [--prompts FILE]): the demo model with its trained drafter on 40 docstring
//    prompts (bench/data/docstring_prompts.json, written by bench/docstring_prompts.py), with transformers'
//    protocol: mean drafts accepted for k = 1..8 beside the table it measured (demo/drafter/README.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "g4/io/checkpoint.hpp"
#include "g4/io/json.hpp"
#include "g4/model/drafter.hpp"
#include "g4/model/sampler.hpp"
#include "g4/text/load_tokenizer.hpp"
#include "support/synthetic_model.hpp"

using namespace g4;

namespace {

template <typename F>
double MeanSeconds(int reps, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

int CostModel(Type type, size_t threads, int layers, size_t context) {
  Gemma4Config tcfg = Gemma4Config::Gemma4_12B();
  if (layers > 0 && layers < tcfg.n_layers) {
    // Keep the last full layer (the drafter reads it): the first layers-1, then layer 47.
    std::vector<LayerConfig> kept(tcfg.layers.begin(), tcfg.layers.begin() + layers - 1);
    kept.push_back(tcfg.layers.back());
    tcfg.layers = kept;
    tcfg.n_layers = layers;
  }
  ThreadPool pool(threads);
  bench::SyntheticModel target_w(tcfg, type);
  const Gemma4Config dcfg = Gemma4Config::Gemma4_12B_Assistant();
  bench::SyntheticModel drafter_w(dcfg, type);
  Gemma4 target(tcfg, target_w.weights(), pool);
  Drafter drafter(dcfg, drafter_w.weights(), drafter_w.assistant(), target);
  Sequence seq = target.NewSequence(context + 16, 16);
  bench::FillKVCache(seq.cache);
  std::printf("Gemma 4 12B shape (%d layers) + its drafter, %s weights, %zu threads, at context %zu\n", tcfg.n_layers,
              std::string(TypeName(type)).c_str(), threads, context);
  ForwardOutput out;
  // Every measured call starts from the filled context.
  auto at_context = [&] {
    if (seq.pos() == 0) seq.AssumeWritten(static_cast<int64_t>(context));
    else seq.Rollback(static_cast<int64_t>(context));
  };
  auto run = [&](size_t n) {
    at_context();
    std::vector<int32_t> toks(n, 2);
    out.all_logits = n > 1;
    target.Forward(seq, {toks}, out);
  };
  std::vector<float> h(static_cast<size_t>(tcfg.hidden_size), 0.1f), logits, h_next;
  auto draft_step = [&] {
    at_context();
    drafter.Step(seq, 2, h, seq.pos(), seq.pos(), logits, h_next);
  };
  run(1);  // warm-up: pages the weights in
  draft_step();
  // Rounds of (decode, verify k = 1..8, draft), medians over the rounds: the host's memory bandwidth drifts
  // over seconds, and interleaving exposes every measurement to the same drift.
  constexpr int kRounds = 5;
  std::vector<std::vector<double>> samples(10);  // [0]: decode, [k]: verify k, [9]: draft
  for (int r = 0; r < kRounds; ++r) {
    samples[0].push_back(MeanSeconds(1, [&] { run(1); }));
    for (size_t k = 1; k <= 8; ++k) samples[k].push_back(MeanSeconds(1, [&] { run(k + 1); }));
    samples[9].push_back(MeanSeconds(4, draft_step));
  }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  const double decode = median(samples[0]), draft = median(samples[9]);
  std::printf("decode step           %8.1f ms   (medians of %d interleaved rounds)\n", decode * 1e3, kRounds);
  std::vector<double> verify(10);
  for (size_t k = 1; k <= 8; ++k) {
    verify[k] = median(samples[k]);
    std::printf("verify k=%zu (%zu tokens) %8.1f ms = %.2fx a decode step\n", k, k + 1, verify[k] * 1e3, verify[k] / decode);
  }
  std::printf("draft step            %8.1f ms = %.1f%% of a decode step\n", draft * 1e3, 100 * draft / decode);
  for (double a : {0.5, 0.7, 0.9}) {
    double best = 0;
    int best_k = 0;
    for (int k = 1; k <= 8; ++k) {
      double expected = 1, p = 1;  // the target's own token, plus each draft accepted with probability a in a row
      for (int i = 1; i <= k; ++i) expected += (p *= a);
      const double tps = expected / (k * draft + verify[static_cast<size_t>(k)]);
      if (tps > best) best = tps, best_k = k;
    }
    std::printf("acceptance %.1f: %.2f tokens/s with k=%d vs %.2f plain = %.2fx\n", a, best, best_k, 1 / decode, best * decode);
  }
  return 0;
}

// The protocol of demo/drafter/README.md: 24-token prompts (<bos> + 23 text tokens), 96-token greedy
// continuations of the target (not stopped at <eos>), a drafting round at each of the first 88 generated
// positions (40 prompts x 88 = the 3520 rounds of drafter_report.json). The drafter is deterministic and its
// position fixed within a round, so the k-draft round is the first k drafts of the 8-draft one.
// Rounds of one prompt are correlated (a repetitive continuation is accepted again and again), so the
// sampling error printed is the standard error over prompts.
int Acceptance(const std::string& demo, const std::string& prompts_file) {
  constexpr size_t kPromptTokens = 24, kContinuation = 96, kMaxK = 8, kRounds = kContinuation - kMaxK;
  ThreadPool pool(1);
  const Checkpoint tck(demo), dck(demo + "/drafter");
  const Gemma4 target(tck.config(), tck.text(), pool);
  const Drafter drafter(dck.config(), dck.text(), *dck.assistant(), target);
  const Tokenizer tokenizer = LoadModelTokenizer(tck);
  const nlohmann::json prompts = ReadJsonFile(prompts_file).at("prompts");
  const double table[] = {0, 0.356, 0.525, 0.622, 0.689, 0.736, 0.768, 0.797, 0.819};  // drafter/README.md
  std::vector<std::vector<double>> per_prompt(kMaxK + 1);  // [k][prompt]: mean accepted drafts
  for (const auto& prompt : prompts) {
    std::vector<int32_t> all = tokenizer.Encode(prompt.at("text").get<std::string>(), {.add_bos = true, .parse_special = false});
    Require(all.size() >= kPromptTokens, prompts_file, "a prompt shorter than 24 tokens");
    all.resize(kPromptTokens);
    Sequence seq = target.NewSequence(kPromptTokens + kContinuation, 16);
    ForwardOutput out;
    target.Forward(seq, {all}, out);
    // Generated token i sits at position p = 24 + i; with the cache holding positions < p, its round drafts
    // from all[p] and the state after p - 1; the drafts are compared once the continuation is known.
    std::vector<std::vector<int32_t>> drafts(kRounds);
    std::vector<float> logits, h_next;
    for (size_t i = 0; i < kContinuation; ++i) {
      all.push_back(Argmax(out.logits));
      if (i < kRounds) {
        std::vector<float> h = out.final_hidden;
        int32_t tok = all.back();
        for (size_t j = 0; j < kMaxK; ++j) {
          drafter.Step(seq, tok, h, seq.pos(), seq.pos(), logits, h_next);
          drafts[i].push_back(tok = Argmax(logits));
          h.swap(h_next);
        }
      }
      if (i + 1 < kContinuation) target.Forward(seq, {std::span(all).last(1)}, out);
    }
    std::vector<double> sum(kMaxK + 1, 0);
    for (size_t i = 0; i < kRounds; ++i) {
      size_t m = 0;  // drafts agreeing with the continuation, in a row
      while (m < kMaxK && drafts[i][m] == all[kPromptTokens + i + 1 + m]) ++m;
      for (size_t k = 1; k <= kMaxK; ++k) sum[k] += static_cast<double>(std::min(m, k));
    }
    for (size_t k = 1; k <= kMaxK; ++k) per_prompt[k].push_back(sum[k] / kRounds);
  }
  const size_t n = prompts.size();
  std::printf("demo drafter: %zu docstring prompts of %zu tokens (%s), %zu-token greedy continuations, %zu rounds\n",
              n, kPromptTokens, prompts_file.c_str(), kContinuation, n * kRounds);
  std::printf("k   mean accepted drafts (+- standard error over prompts)   transformers (40 held-out prompts)\n");
  for (size_t k = 1; k <= kMaxK; ++k) {
    double mean = 0, var = 0;
    for (double v : per_prompt[k]) mean += v / static_cast<double>(n);
    for (double v : per_prompt[k]) var += (v - mean) * (v - mean) / static_cast<double>(n - 1);
    std::printf("%zu   %.3f +- %.3f                                        %.3f (%+.1f SE)\n", k, mean,
                std::sqrt(var / static_cast<double>(n)), table[k], (table[k] - mean) / std::sqrt(var / static_cast<double>(n)));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string type = "Q4_0", demo, prompts = "bench/data/docstring_prompts.json";
  size_t threads = 2, context = 1024;
  int layers = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--type" && has_value) type = argv[++i];
    else if (a == "--threads" && has_value) threads = std::stoul(argv[++i]);
    else if (a == "--layers" && has_value) layers = std::stoi(argv[++i]);
    else if (a == "--context" && has_value) context = std::stoul(argv[++i]);
    else if (a == "--acceptance" && has_value) demo = argv[++i];
    else if (a == "--prompts" && has_value) prompts = argv[++i];
    else if (a == "--target" && has_value) ForceTarget(argv[++i]);  // one Highway target's kernels (AVX2, ...)
    else {
      std::printf("usage: bench_speculative [--type Q4_0] [--threads 2] [--layers N] [--context 1024] [--target NAME] | --acceptance DEMO_DIR [--prompts FILE]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (!demo.empty()) return Acceptance(demo, prompts);
  const auto t = TypeFromName(type);
  Require(t && GetTypeInfo(*t).is_float_weight, "--type", "unknown weight type " + type);
  return CostModel(*t, threads, layers, context);
} catch (const Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
