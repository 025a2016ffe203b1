// g4 perplexity: a model's perplexity over a text file, and its KL divergence from a base model's saved
// log-probabilities, with llama-perplexity's flags, chunking, output lines and base file (include/g4/eval/).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "g4/eval/kl_divergence.hpp"
#include "g4/eval/logits_file.hpp"
#include "g4/eval/perplexity.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/text/load_tokenizer.hpp"

namespace g4cli::cmd_perplexity {

using namespace g4;

const char* kHelp = R"(usage: g4 perplexity -m MODEL -f TEXT [options]
       g4 perplexity -m MODEL --kl-divergence-base FILE --kl-divergence [-f TEXT]

Perplexity as llama-perplexity computes it: TEXT is tokenized once (with <bos>), cut into chunks of -c tokens,
each chunk runs from an empty cache with <bos> first, and the second half of each chunk is scored. Prints the
running estimate per chunk ([1]5.1234,[2]...) and "Final estimate: PPL = X +/- U".

  -m, --model MODEL          a Hugging Face folder or a .gguf file
  -f, --file TEXT            the text (at least 2 * -c tokens)
  -c, --ctx-size N           tokens per chunk (default 512)
  -b, --batch-size N         tokens per forward pass (default 512)
  --chunks N                 score only the first N chunks
  -t, --threads N            threads (default: all)
  --kl-divergence-base FILE  without --kl-divergence: also save the log-probabilities of every scored position
                             to FILE (llama-perplexity's format: either program reads the other's)
  --kl-divergence            compare this model with the one that wrote FILE, on FILE's tokens (-f, if given,
                             must tokenize to them): per-chunk lines, then llama-perplexity's statistics
                             (mean KLD and its percentiles, Δp, "Same top p": top-token agreement)
  --tokenizer FILE           a tokenizer.json to use instead of the model's
  --no-repack                read quantized matrices in the file's layout (less memory)
  -h, --help                 this text
)";

std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  Require(f.good(), path, "cannot open the text file");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void PrintEta(double pass_s, size_t n_chunk) {
  std::fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.2f minutes\n", pass_s, pass_s * n_chunk / 60.0);
}

// Forward passes and log-softmax rows share the pool; rows go in parallel, their sums in order (reproducible).
template <typename F>
void ForEachRow(ThreadPool& pool, size_t n_rows, F&& f) {
  pool.ParallelFor(n_rows, 4, [&](size_t begin, size_t end, size_t) {
    for (size_t r = begin; r < end; ++r) f(r);
  });
}

int RunPerplexity(const Gemma4& model, ThreadPool& pool, const std::vector<int32_t>& tokens, int32_t bos,
                  const PerplexityChunks& plan, size_t batch, const std::string& base_out) {
  const size_t vocab = static_cast<size_t>(model.config().vocab_size), words = CompactRowWords(vocab);
  std::unique_ptr<LogitsFileWriter> writer;
  if (!base_out.empty()) {
    LogitsFileHeader h{static_cast<uint32_t>(plan.n_ctx), static_cast<int32_t>(vocab), static_cast<int32_t>(plan.n_chunk),
                       std::vector<int32_t>(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(plan.n_chunk * plan.n_ctx))};
    writer = std::make_unique<LogitsFileWriter>(base_out, h);
    std::fprintf(stderr, "perplexity: saving the log-probabilities to %s\n", base_out.c_str());
  }
  Sequence seq = model.NewSequence(plan.n_ctx, std::min(plan.n_ctx, batch));
  NllSums sums;
  std::vector<double> nll(plan.scored());
  std::vector<uint16_t> rows(writer ? plan.scored() * words : 0);
  for (size_t i = 0; i < plan.n_chunk; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::span<const int32_t> chunk(tokens.data() + i * plan.n_ctx, plan.n_ctx);
    const std::vector<float> logits = ScoredLogits(model, seq, chunk, bos);
    ForEachRow(pool, plan.scored(), [&](size_t r) {
      const std::span<const float> row(logits.data() + r * vocab, vocab);
      const LogSoftmax ls = LogSoftmaxOf(row);
      nll[r] = ls.NegLogProb(row, chunk[plan.first() + r + 1]);
      if (writer) EncodeCompactRow(row, ls, std::span(rows).subspan(r * words, words));
    });
    for (const double v : nll) sums.Add(v);
    if (writer) writer->WriteRows(rows);
    if (i == 0) PrintEta(Seconds(t0), plan.n_chunk);
    std::printf("[%zu]%.4lf,", i + 1, sums.Ppl());
    std::fflush(stdout);
  }
  if (writer) writer->Close();
  std::printf("\nFinal estimate: PPL = %.4lf +/- %.5lf\n", sums.Ppl(), sums.PplUncertainty());
  return 0;
}

void PrintKldStatistics(const KldSums& k) {
  const MeanErr lp = k.LogPpl(), lb = k.LogPplBase(), ratio = k.LogPplRatio();
  const double ppl = std::exp(lp.mean), ppl_err = ppl * lp.err, base = std::exp(lb.mean), base_err = base * lb.err;
  const double cov = k.LogPplCovariance();
  std::printf("====== Perplexity statistics ======\n");
  std::printf("Mean PPL(Q)                   : %10.6lf ± %10.6lf\n", ppl, ppl_err);
  std::printf("Mean PPL(base)                : %10.6lf ± %10.6lf\n", base, base_err);
  std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100.0 * cov / (lp.err * lb.err));
  std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6lf ± %10.6lf\n", ratio.mean, ratio.err);
  std::printf("Mean PPL(Q)/PPL(base)         : %10.6lf ± %10.6lf\n", std::exp(ratio.mean), std::exp(ratio.mean) * ratio.err);
  const double diff_err = std::sqrt(std::max(0.0, ppl_err * ppl_err + base_err * base_err - 2.0 * ppl * base * cov));
  std::printf("Mean PPL(Q)-PPL(base)         : %10.6lf ± %10.6lf\n\n", ppl - base, diff_err);

  const std::vector<float> kld = k.SortedKld(), dp = k.SortedPDiff();
  const MeanErr mk = k.Kld();
  std::printf("====== KL divergence statistics ======\n");
  std::printf("Mean    KLD: %10.6lf ± %10.6lf\n", mk.mean, mk.err);
  std::printf("Maximum KLD: %10.6f\n", kld.back());
  for (const auto& [label, f] : {std::pair{"99.9%", 0.999f}, {"99.0%", 0.99f}, {"95.0%", 0.95f}, {"90.0%", 0.9f}})
    std::printf("%s   KLD: %10.6f\n", label, Percentile(kld, f));
  std::printf("Median  KLD: %10.6f\n", Percentile(kld, 0.5f));
  for (const auto& [label, f] : {std::pair{"10.0%", 0.1f}, {" 5.0%", 0.05f}, {" 1.0%", 0.01f}, {" 0.1%", 0.001f}})
    std::printf("%s   KLD: %10.6f\n", label, Percentile(kld, f));
  std::printf("Minimum KLD: %10.6f\n\n", kld.front());

  const MeanErr md = k.PDiff(), rms = k.PDiffRms(), top = k.SameTop();
  std::printf("====== Token probability statistics ======\n");
  std::printf("Mean    Δp: %6.3lf ± %5.3lf %%\n", 100.0 * md.mean, 100.0 * md.err);
  std::printf("Maximum Δp: %6.3lf%%\n", 100.0 * dp.back());
  for (const auto& [label, f] : {std::pair{"99.9%", 0.999f}, {"99.0%", 0.99f}, {"95.0%", 0.95f}, {"90.0%", 0.9f}, {"75.0%", 0.75f}})
    std::printf("%s   Δp: %6.3lf%%\n", label, 100.0 * Percentile(dp, f));
  std::printf("Median  Δp: %6.3lf%%\n", 100.0 * Percentile(dp, 0.5f));
  for (const auto& [label, f] : {std::pair{"25.0%", 0.25f}, {"10.0%", 0.1f}, {" 5.0%", 0.05f}, {" 1.0%", 0.01f}, {" 0.1%", 0.001f}})
    std::printf("%s   Δp: %6.3lf%%\n", label, 100.0 * Percentile(dp, f));
  std::printf("Minimum Δp: %6.3lf%%\n", 100.0 * dp.front());
  std::printf("RMS Δp    : %6.3lf ± %5.3lf %%\n", 100.0 * rms.mean, 100.0 * rms.err);
  std::printf("Same top p: %6.3lf ± %5.3lf %%\n", 100.0 * top.mean, 100.0 * top.err);
}

int RunKlDivergence(const Gemma4& model, ThreadPool& pool, LogitsFileReader& base, int32_t bos, size_t batch) {
  const LogitsFileHeader& h = base.header();
  const size_t vocab = static_cast<size_t>(model.config().vocab_size), words = CompactRowWords(vocab);
  const PerplexityChunks plan{h.n_ctx, static_cast<size_t>(h.n_chunk)};
  Sequence seq = model.NewSequence(plan.n_ctx, std::min(plan.n_ctx, batch));
  KldSums sums;
  std::vector<KldPosition> pos(plan.scored());
  std::vector<uint16_t> rows;
  std::printf("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p\n");
  for (size_t i = 0; i < plan.n_chunk; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    base.ReadChunk(rows);
    const std::span<const int32_t> chunk(h.tokens.data() + i * plan.n_ctx, plan.n_ctx);
    const std::vector<float> logits = ScoredLogits(model, seq, chunk, bos);
    ForEachRow(pool, plan.scored(), [&](size_t r) {
      pos[r] = KldAt(std::span(logits).subspan(r * vocab, vocab), std::span(rows).subspan(r * words, words), chunk[plan.first() + r + 1]);
    });
    for (const KldPosition& p : pos) sums.Add(p);
    if (i == 0) PrintEta(Seconds(t0), plan.n_chunk);
    const MeanErr lp = sums.LogPpl(), ratio = sums.LogPplRatio(), kld = sums.Kld(), rms = sums.PDiffRms(), top = sums.SameTop();
    std::printf("%4zu    %9.4lf ± %9.4lf    %10.5lf ± %10.5lf    %10.5lf ± %10.5lf    %6.3lf ± %6.3lf %%    %6.3lf ± %6.3lf %%\n", i + 1,
                std::exp(lp.mean), std::exp(lp.mean) * lp.err, ratio.mean, ratio.err, kld.mean, kld.err, 100.0 * rms.mean,
                100.0 * rms.err, 100.0 * top.mean, 100.0 * top.err);
    std::fflush(stdout);
  }
  std::printf("\n");
  if (sums.count() < 100) {  // llama-perplexity's rule: no statistics over so few positions
    std::printf("(%zu positions scored: the statistics need at least 100)\n", sums.count());
    return 0;
  }
  PrintKldStatistics(sums);
  return 0;
}

int Run(std::vector<std::string> argv) {
  const g4cli::Args args(argv,
                         {"--model", "--file", "--ctx-size", "--batch-size", "--chunks", "--threads", "--kl-divergence-base", "--tokenizer"},
                         {"--kl-divergence", "--no-repack", "--help"},
                         {{"-m", "--model"}, {"-f", "--file"}, {"-c", "--ctx-size"}, {"-b", "--batch-size"}, {"-t", "--threads"}, {"-h", "--help"}});
  if (args.has("--help")) return std::fputs(kHelp, stdout), 0;
  Require(args.has("--model"), "perplexity", "-m MODEL is required (see --help)");
  Require(args.positional().empty(), args.positional().empty() ? "" : args.positional()[0], "unexpected argument (see --help)");
  const bool kld = args.has("--kl-divergence");
  Require(!kld || args.has("--kl-divergence-base"), "--kl-divergence", "needs --kl-divergence-base FILE (the base model's log-probabilities)");
  Require(kld || args.has("--file"), "perplexity", "-f TEXT is required (see --help)");
  const long long max_chunks = args.get_int("--chunks", -1, 1, 1 << 30);
  const size_t batch = static_cast<size_t>(args.get_int("--batch-size", 512, 1, 1 << 16));
  // Read and check the base file before the model loads: a wrong file is reported at once.
  std::unique_ptr<LogitsFileReader> base;
  if (kld) base = std::make_unique<LogitsFileReader>(args.get("--kl-divergence-base"));

  ThreadPool pool(static_cast<size_t>(args.get_int("--threads", 0, 1, ThreadPool::kMaxThreads)));
  const Checkpoint ck(args.get("--model"));
  const Tokenizer tok = LoadModelTokenizer(ck, args.get("--tokenizer"));
  const Gemma4 model(ck.config(), ck.text(), pool, args.has("--no-repack") ? Repack::kNone : Repack::kWhereRead);
  const long long max_ctx = model.config().max_position;
  // Gemma's vocabularies add <bos> (GGUF's tokenizer.ggml.add_bos_token, the Hugging Face post-processor).
  const int32_t bos = tok.special_ids().bos;

  std::vector<int32_t> tokens;
  if (args.has("--file")) {
    const std::string path = args.get("--file");
    std::fprintf(stderr, "perplexity: tokenizing the input ..\n");
    tokens = tok.Encode(ReadText(path), {.add_bos = bos >= 0, .parse_special = false});
  }
  if (kld) {
    const LogitsFileHeader& h = base->header();
    const std::string& file = base->path();
    Require(h.n_vocab == model.config().vocab_size, file,
            "holds log-probabilities over " + std::to_string(h.n_vocab) + " tokens; this model's vocabulary has " +
                std::to_string(model.config().vocab_size) + " (a base from another model family)");
    Require(h.n_ctx <= max_ctx, file, "context " + std::to_string(h.n_ctx) + " exceeds the model's " + std::to_string(max_ctx));
    if (args.has("--ctx-size"))
      Require(args.get_int("--ctx-size", 0, 1, 1 << 24) == h.n_ctx, "--ctx-size",
              args.get("--ctx-size") + " differs from the " + std::to_string(h.n_ctx) + " that " + file + " was computed with (leave -c out)");
    Require(!args.has("--chunks"), "--chunks", "the base file sets the chunks");
    if (!tokens.empty())
      Require(tokens.size() >= h.tokens.size() && std::equal(h.tokens.begin(), h.tokens.end(), tokens.begin()), args.get("--file"),
              "does not tokenize to the tokens " + file + " was computed from (another text, or another tokenizer)");
    std::fprintf(stderr, "perplexity: %d chunks of %u tokens from %s, %zu positions scored each\n", h.n_chunk, h.n_ctx,
                 file.c_str(), h.scored_per_chunk());
    return RunKlDivergence(model, pool, *base, bos, batch);
  }
  const long long n_ctx = args.get_int("--ctx-size", 512, 4, 1 << 24);
  Require(n_ctx <= max_ctx, "--ctx-size", std::to_string(n_ctx) + " exceeds the model's context of " + std::to_string(max_ctx));
  const PerplexityChunks plan = PlanChunks(tokens.size(), static_cast<size_t>(n_ctx), max_chunks, args.get("--file"));
  std::fprintf(stderr, "perplexity: %zu tokens; %zu chunks of %zu, %zu positions scored each\n", tokens.size(), plan.n_chunk,
               plan.n_ctx, plan.scored());
  return RunPerplexity(model, pool, tokens, bos, plan, batch, args.get("--kl-divergence-base"));
}

const g4cli::RegisterCommand reg("perplexity", "perplexity over a text file, KL divergence from a base model (llama-perplexity style)", Run);

}  // namespace g4cli::cmd_perplexity
