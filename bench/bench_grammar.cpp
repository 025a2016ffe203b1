// Cost of constrained decoding per token (issue #32): the token mask over the real 262144-entry vocabulary
// (tests/data/tokenizer/gemma3/tokenizer.json) for a few schemas, stepping through a realistic answer token by
// token (mask + Accept, as Sampler does each step), beside a 12B Q4_0 decode step measured in the same run with
// synthetic weights (bench/support/model_bench.hpp). Goal: <= 5% of a decode step on average, <= 20% worst case.
// Prints a table; nothing is asserted.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/grammar/json_schema.hpp"
#include "g4/grammar/token_matcher.hpp"
#include "g4/text/tokenizer.hpp"
#include "support/model_bench.hpp"

using namespace g4;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Case {
  const char* name;
  const char* schema;  // empty: any JSON object (json_object)
  const char* answer;  // what the model "writes", tokenized with the real tokenizer
};

const Case kCases[] = {
    {"nested object",
     R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "email": {"type": "string"},
         "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                     "required": ["street", "city"], "additionalProperties": false}},
         "required": ["name", "age", "address"], "additionalProperties": false})",
     R"({
  "name": "Ada Lovelace, Countess of Lovelace",
  "age": 36,
  "email": "ada@analytical-engine.org",
  "address": {"street": "12 St James's Square", "city": "London", "zip": "12345"}
})"},
    {"array of enums",
     R"({"type": "object", "properties": {"labels": {"type": "array", "items": {"enum": ["bug", "feature", "question", "documentation", "wontfix"]}, "maxItems": 8},
         "score": {"type": "number"}, "urgent": {"type": "boolean"}}, "required": ["labels", "score", "urgent"], "additionalProperties": false})",
     R"({"labels": ["bug", "documentation", "question", "feature"], "score": 0.8125e1, "urgent": false})"},
    {"anyOf + $ref tree",
     R"({"$defs": {"node": {"type": "object", "properties": {"op": {"enum": ["add", "mul", "neg"]}, "value": {"anyOf": [{"type": "number"}, {"type": "null"}]},
         "args": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["op"], "additionalProperties": false}}, "$ref": "#/$defs/node"})",
     R"({"op": "add", "args": [{"op": "mul", "args": [{"op": "neg", "value": 3.5}, {"op": "add", "value": null}]}, {"op": "neg", "value": -1e-3}]})"},
    {"json_object (free text)", "",
     R"({"summary": "The quarterly report shows revenue growth of 12% driven by cloud services, while hardware sales declined slightly. Management expects margins to improve next year as cost-cutting measures take effect.", "sentiment": "positive", "confidence": 0.87, "topics": ["revenue", "cloud", "hardware", "margins"]})"},
};

}  // namespace

int main(int argc, char** argv) try {
  std::string tokenizer_path = "tests/data/tokenizer/gemma3/tokenizer.json";
  bool model = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tokenizer" && i + 1 < argc) tokenizer_path = argv[++i];
    else if (a == "--no-model") model = false;
    else {
      std::printf("usage: bench_grammar [--tokenizer tokenizer.json] [--no-model]\n  run from the repository root\n");
      return a == "--help" ? 0 : 2;
    }
  }
  const Tokenizer tok = Tokenizer::FromJsonFile(tokenizer_path);
  auto t0 = Clock::now();
  const auto trie = std::make_shared<const TokenTrie>(TokenTrie::FromTokenizer(tok));
  std::printf("vocabulary %d tokens, %zu in the trie, %zu trie nodes, built in %.0f ms\n", tok.size(), trie->token_count(), trie->size(),
              1e3 * Seconds(t0));
  const std::vector<int32_t> ends{1, 106};  // <eos>, <end_of_turn> in this vocabulary

  struct Row {
    std::string name;
    size_t steps;
    double compile_ms, mean_ms, max_ms, first_ms;
  };
  std::vector<Row> rows;
  std::vector<float> logits(static_cast<size_t>(tok.size()), 0.0f);
  for (const Case& c : kCases) {
    t0 = Clock::now();
    Grammar g = *c.schema ? JsonSchemaGrammar(nlohmann::ordered_json::parse(c.schema)) : JsonObjectGrammar();
    const auto tg = MakeTokenGrammar(std::move(g), trie, ends);
    const double compile_ms = 1e3 * Seconds(t0);
    const std::vector<int32_t> ids = tok.Encode(c.answer, {.add_bos = false, .parse_special = false});
    TokenMatcher m(tg);
    std::vector<double> step_ms;
    for (size_t i = 0; i <= ids.size(); ++i) {
      const int32_t id = i < ids.size() ? ids[i] : ends[0];
      t0 = Clock::now();
      m.Mask(logits);  // as Sampler::Probabilities, then Sampler::AcceptOutput
      m.Accept(id);
      step_ms.push_back(1e3 * Seconds(t0));
    }
    double sum = 0;
    for (const double x : step_ms) sum += x;
    rows.push_back({c.name, step_ms.size(), compile_ms, sum / static_cast<double>(step_ms.size()),
                    *std::max_element(step_ms.begin(), step_ms.end()), step_ms.front()});
  }

  double decode_ms = 0;
  if (model) {
    bench::ModelBenchOptions o;
    o.prefill = 0;
    o.contexts = {0};
    o.steps = 3;
    const bench::ModelBenchResult r = bench::RunModelBench(o, stdout);
    decode_ms = 1e3 / r.decode.front().tps;
    std::printf("12B Q4_0 decode step (synthetic weights, %zu threads): %.1f ms\n", o.threads, decode_ms);
  }
  std::printf("\n%-26s %6s %11s %13s %12s %13s", "schema", "steps", "compile ms", "mask+accept", "worst ms", "first step");
  if (decode_ms > 0) std::printf(" %10s %10s", "mean/step", "worst/step");
  std::printf("\n");
  for (const Row& r : rows) {
    std::printf("%-26s %6zu %11.2f %10.3f ms %12.3f %10.3f ms", r.name.c_str(), r.steps, r.compile_ms, r.mean_ms, r.max_ms, r.first_ms);
    if (decode_ms > 0) std::printf(" %9.2f%% %9.2f%%", 100 * r.mean_ms / decode_ms, 100 * r.max_ms / decode_ms);
    std::printf("\n");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
