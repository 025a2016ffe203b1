// MTP speculative decoding, measured two ways.
//  Cost model (default): on the 12B shape with synthetic weights (acceptance is meaningless with random weights),
//    the time to verify k+1 tokens over one decode step, one draft step over one decode step, and the tokens/s
//    those imply at per-draft acceptance rates 0.5, 0.7 and 0.9 (best k for each) against plain decoding.
//  Acceptance (--acceptance DEMO_DIR): the demo model with its trained drafter on the reference prompts of
//    demo_reference.json: a drafting round at every generated position, mean drafts accepted for k = 1..8, beside
//    the table transformers measured (demo/drafter/README.md, 40 held-out prompts).
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "g4/io/checkpoint.hpp"
#include "g4/io/json.hpp"
#include "g4/model/drafter.hpp"
#include "g4/bench/synthetic_model.hpp"

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
  std::printf("Gemma 4 12B shape (%d layers) + its drafter, %s weights, %zu threads, at context %zu\n", tcfg.n_layers,
              std::string(TypeName(type)).c_str(), threads, context);
  ForwardOutput out;
  auto run = [&](size_t n) {
    seq.pos = static_cast<int64_t>(context);
    std::vector<int32_t> toks(n, 2);
    out.all_logits = n > 1;
    target.Forward(seq, {toks}, out);
  };
  run(1);  // warm-up: pages the weights in
  const double decode = MeanSeconds(3, [&] { run(1); });
  std::printf("decode step           %8.1f ms\n", decode * 1e3);
  std::vector<double> verify(10);
  for (int k = 1; k <= 8; ++k) {
    verify[static_cast<size_t>(k)] = MeanSeconds(2, [&] { run(static_cast<size_t>(k) + 1); });
    std::printf("verify k=%d (%d tokens) %8.1f ms = %.2fx a decode step\n", k, k + 1, verify[static_cast<size_t>(k)] * 1e3,
                verify[static_cast<size_t>(k)] / decode);
  }
  std::vector<float> h(static_cast<size_t>(tcfg.hidden_size), 0.1f), logits, h_next;
  seq.pos = static_cast<int64_t>(context);
  drafter.Step(seq, 2, h, seq.pos, seq.pos, logits, h_next);
  const double draft = MeanSeconds(5, [&] { drafter.Step(seq, 2, h, seq.pos, seq.pos, logits, h_next); });
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

int Acceptance(const std::string& demo) {
  ThreadPool pool(1);
  const Checkpoint tck(demo), dck(demo + "/drafter");
  const Gemma4 target(tck.config(), tck.text(), pool);
  const Drafter drafter(dck.config(), dck.text(), *dck.assistant(), target);
  const nlohmann::json ref = ReadJsonFile(demo + "/demo_reference.json");
  const double table[] = {0, 0.356, 0.525, 0.622, 0.689, 0.736, 0.768, 0.797, 0.819};  // drafter/README.md
  std::vector<double> accepted(9, 0);
  std::vector<size_t> rounds(9, 0);
  for (const auto& sample : ref.at("samples")) {
    std::vector<int32_t> all = sample.at("prompt_ids").get<std::vector<int32_t>>();
    const size_t prompt_len = all.size();
    for (int32_t t : sample.at("greedy_ids").get<std::vector<int32_t>>()) all.push_back(t);
    Sequence seq = target.NewSequence(all.size() + 1, 16);
    ForwardOutput out;
    target.Forward(seq, {std::span(all).first(prompt_len)}, out);
    std::vector<float> logits, h_next;
    for (size_t p = prompt_len; p < all.size(); ++p) {
      // A round at p: the newest token all[p] (not yet in the cache), the state after position p - 1.
      for (size_t k = 1; k <= 8 && p + k < all.size(); ++k) {
        std::vector<float> h = out.final_hidden;
        int32_t tok = all[p];
        size_t m = 0;
        for (size_t j = 0; j < k; ++j) {
          drafter.Step(seq, tok, h, seq.pos, seq.pos, logits, h_next);
          tok = Gemma4::Argmax(logits);
          h.swap(h_next);
          if (m == j && tok == all[p + 1 + j]) ++m;
        }
        accepted[k] += static_cast<double>(m);
        rounds[k]++;
      }
      const int32_t one[] = {all[p]};
      target.Forward(seq, {one}, out);
    }
  }
  std::printf("demo drafter, %zu reference prompts, a round at every generated position\n", ref.at("samples").size());
  std::printf("k   mean accepted   transformers (40 held-out prompts)\n");
  for (int k = 1; k <= 8; ++k)
    std::printf("%d   %.3f (%zu rounds)   %.3f\n", k, accepted[static_cast<size_t>(k)] / static_cast<double>(rounds[static_cast<size_t>(k)]),
                rounds[static_cast<size_t>(k)], table[k]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string type = "Q4_0", demo;
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
    else {
      std::printf("usage: bench_speculative [--type Q4_0] [--threads 2] [--layers N] [--context 1024] | --acceptance DEMO_DIR\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (!demo.empty()) return Acceptance(demo);
  const auto t = TypeFromName(type);
  Require(t && GetTypeInfo(*t).is_float_weight, "--type", "unknown weight type " + type);
  return CostModel(*t, threads, layers, context);
} catch (const Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
