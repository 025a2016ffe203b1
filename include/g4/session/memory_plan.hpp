// Memory planning: the bytes a configuration will hold resident (weights, each slot's KV cache at its whole context,
// activation buffers) against the memory this machine has available, checked before anything is allocated. KV
// caches are lazily committed (AlignedBuffer maps zero pages), so allocating a cache that cannot fit succeeds and
// the process is killed later, mid-conversation, once the context fills; this refuses such a context up front,
// with the numbers and the --ctx-size / --cache-type that would fit.
//
// What counts:
// - weights: every tensor of the checkpoint (and of its mmproj and drafter files) once, as llama.cpp counts the
//   model file. They are file mappings, but every token reads every decoder matrix, so they must stay resident; the
//   row-group copies (Repack) replace the mapped pages they were made from (those drop to the page cache), except
//   where AMX prefill still reads the originals: then the copies count again (weight_copies).
// - caches: one KVCache per slot, sized by KVCache::Shapes (full layers grow with the context, sliding rings are
//   window + max_chunk - 1 slots, shared-KV layers own nothing), all of it committed once the context fills.
// - buffers: one slot's LayerScratch at the rows of the largest pass, and the pass's own [rows, hidden] arrays and
//   logits (the kernels' per-thread int8 copies of the activations, a quarter of a row each, are left out).
// Against: MachineAvailableMemory (core/available_memory.hpp), or any figure an embedder passes.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "g4/core/available_memory.hpp"
#include "g4/core/row_groups.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/kernels/cpu_tuning.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/kv_cache.hpp"
#include "g4/session/loaded_model.hpp"
#include "g4/session/scheduler.hpp"
#include "g4/session/session.hpp"

namespace g4 {

// The shape of a configuration: what sizes its caches and buffers.
struct MemoryShape {
  size_t context = 4096;
  size_t max_chunk = 512;
  KVTypes cache_types;
  size_t slots = 1;         // sequences, each with its own cache and buffers
  size_t pass_rows = 512;   // most token rows of one forward pass
  size_t logit_rows = 1;    // most rows of one pass that get logits

  static MemoryShape For(const SessionOptions& o) { return {o.context, o.max_chunk, o.cache_type, 1, o.max_chunk, 1}; }
  // A step holds every decoding slot's token and prompt chunks within the budget, where an image block that starts
  // a chunk goes whole (up to max_chunk); whichever slot leads a step lends its buffers, so each may grow to it.
  static MemoryShape For(const SchedulerOptions& o) {
    const size_t rows = std::min(o.slots * o.max_chunk, o.slots + o.prefill_budget + o.max_chunk);
    return {o.context, o.max_chunk, o.cache_type, o.slots, rows, o.slots};
  }
};

// Bytes of one sequence's KV cache: what KVCache allocates for these arguments (K and V of every owning layer).
inline uint64_t KVCacheBytes(const Gemma4Config& cfg, size_t context, size_t max_chunk, KVTypes types) {
  uint64_t n = 0;
  for (const LayerKV& l : KVCache::Shapes(cfg, context, max_chunk, types)) n = CheckedAdd(n, l.bytes(), "kv cache");
  return n;
}

// Floats of a LayerScratch after passes of `rows` rows with `logit_rows` rows of logits (decoder_layer.hpp: each
// vector grows to its largest use over the layers; t also holds a batched head's logits).
inline uint64_t LayerScratchFloats(const Gemma4Config& cfg, uint64_t rows, uint64_t logit_rows) {
  uint64_t q = 0, kv = 0;
  for (const LayerConfig& l : cfg.layers) {
    q = std::max<uint64_t>(q, static_cast<uint64_t>(cfg.n_heads) * static_cast<uint64_t>(l.head_dim));
    kv = std::max<uint64_t>(kv, static_cast<uint64_t>(l.n_kv_heads) * static_cast<uint64_t>(l.head_dim));
  }
  const uint64_t H = static_cast<uint64_t>(cfg.hidden_size), F = static_cast<uint64_t>(cfg.intermediate_size);
  const uint64_t V = static_cast<uint64_t>(cfg.vocab_size);
  const uint64_t t = std::max(rows * H, logit_rows > 1 ? logit_rows * V : 0);
  return rows * (2 * q + 2 * kv + H + 2 * F) + t;  // q, attn, k, v, xn, gate, up; t
}

// Bytes of one slot's buffers: its LayerScratch, and the pass's residual stream and normed copy [rows, hidden],
// the output head's input rows and the logits and final hidden rows handed back.
inline uint64_t BufferBytes(const Gemma4Config& cfg, uint64_t rows, uint64_t logit_rows) {
  const uint64_t H = static_cast<uint64_t>(cfg.hidden_size), V = static_cast<uint64_t>(cfg.vocab_size);
  return 4 * (LayerScratchFloats(cfg, rows, logit_rows) + 2 * rows * H + logit_rows * (2 * H + V));
}

// Bytes of every tensor a checkpoint holds (its mmproj's included).
inline uint64_t WeightBytes(const Checkpoint& ck) {
  uint64_t n = 0;
  for (const TensorRecord& t : ck.tensors()) n = CheckedAdd(n, t.bytes, "weights");
  return n;
}

// Bytes of a decoder's tensors (weights built in memory, or the part of a checkpoint a benchmark reads).
inline uint64_t WeightBytes(const TextWeights& w) {
  uint64_t n = w.embed.nbytes + w.final_norm.nbytes;
  for (const LayerWeights& l : w.layers)
    for (const TensorView* v : {&l.attn_norm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.q_norm, &l.k_norm, &l.post_attn_norm,
                                &l.ffn_norm, &l.gate_proj, &l.up_proj, &l.down_proj, &l.post_ffn_norm, &l.layer_scalar})
      n = CheckedAdd(n, v->nbytes, "weights");
  return n;
}

// Bytes of the row-group copies Gemma4 makes of `w` that stay beside their originals: where the kernels read the
// copies (Repack::kWhereRead) and AMX prefill still reads the originals; else the copies replace them, or none is made.
inline uint64_t KeptRowGroupCopyBytes(const TextWeights& w, Repack repack) {
  if (repack != Repack::kWhereRead || !KernelsReadRowGroups() || !AmxUsable()) return 0;
  uint64_t n = 0;
  auto add = [&](const TensorView& v) {
    if (v.data != nullptr && HasRowGroupLayout(v.type) && v.shape.rank == 2) n += RowGroupBytes(v);
  };
  add(w.embed);
  for (const LayerWeights& l : w.layers)
    for (const TensorView* v : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) add(*v);
  return n;
}

// The names a refusal gives the settings: the library's by default; a program passes its flags' spelling.
struct MemoryFlags {
  std::string context = "context";
  std::string cache_type = "cache_type";
  std::string slots = "slots";  // empty: nothing to suggest
  std::string skip;             // a way around the check to mention, or empty
};

struct MemoryPlan {
  Gemma4Config config;          // the model's (for re-planning at another context or cache type)
  MemoryShape shape;
  uint64_t weights = 0;         // resident weights
  uint64_t weight_copies = 0;   // row-group copies kept beside their originals (AMX prefill)
  uint64_t cache = 0;           // one slot's KV cache at shape.context
  uint64_t buffers = 0;         // one slot's buffers
  uint64_t total() const { return weights + weight_copies + shape.slots * (cache + buffers); }
};

// The plan for a model of `cfg` whose weights take `weights` (+ `weight_copies`) bytes. A context over the model's
// positions is an error naming flags.context; other bad shapes throw what KVCache would.
inline MemoryPlan PlanMemory(const Gemma4Config& cfg, uint64_t weights, uint64_t weight_copies, const MemoryShape& shape,
                             const MemoryFlags& flags = {}) {
  Require(shape.context <= static_cast<size_t>(cfg.max_position), flags.context,
          std::to_string(shape.context) + " tokens requested; the model supports at most " + std::to_string(cfg.max_position));
  return {cfg, shape, weights, weight_copies, KVCacheBytes(cfg, shape.context, shape.max_chunk, shape.cache_types),
          BufferBytes(cfg, shape.pass_rows, shape.logit_rows)};
}

// The plan for the files LoadedModel would load, from their headers alone (no weight is read).
inline MemoryPlan PlanMemory(const ModelFiles& files, const MemoryShape& shape, const MemoryFlags& flags = {}) {
  const Checkpoint ck(files.model, files.mmproj);
  uint64_t weights = WeightBytes(ck);
  if (!files.draft.empty()) weights += WeightBytes(Checkpoint(files.draft));
  return PlanMemory(ck.config(), weights, KeptRowGroupCopyBytes(ck.text(), files.repack), shape, flags);
}

namespace memory_plan_detail {
// "8.94 GiB", or "61.3 MiB" under a GiB (a small model's figures would all read 0.0x GiB).
inline std::string Size(uint64_t bytes) {
  char b[40];
  if (bytes >= (1ull << 30)) std::snprintf(b, sizeof b, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  else std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(bytes) / (1ull << 20));
  return b;
}
inline std::string Lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}
inline MemoryPlan With(const MemoryPlan& p, size_t context, KVTypes types, size_t slots) {
  MemoryShape s = p.shape;
  s.context = context;
  s.cache_types = types;
  s.slots = slots;
  return PlanMemory(p.config, p.weights, p.weight_copies, s);
}
}  // namespace memory_plan_detail

// The largest context up to the plan's (a multiple of 256 when over 256) at which `plan` with caches of `types`
// fits `available` bytes, or 0 where none does. The cache grows with the context, so this is a binary search.
inline size_t LargestFittingContext(const MemoryPlan& plan, KVTypes types, uint64_t available) {
  using memory_plan_detail::With;
  size_t lo = 0, hi = std::min(plan.shape.context, static_cast<size_t>(plan.config.max_position));
  while (lo < hi) {
    const size_t mid = lo + (hi - lo + 1) / 2;
    if (With(plan, mid, types, plan.shape.slots).total() <= available) lo = mid;
    else hi = mid - 1;
  }
  return lo > 256 ? lo / 256 * 256 : lo;
}

// The cache types KVCache takes, most bytes per value first.
inline std::vector<Type> KVCacheTypes() {
  std::vector<Type> types;
  for (uint32_t id = 0; id < 64; ++id)
    if (const std::optional<Type> t = TypeFromGgmlId(id); t && IsKVCacheType(*t)) types.push_back(*t);
  std::stable_sort(types.begin(), types.end(), [](Type a, Type b) {
    const TypeInfo x = GetTypeInfo(a), y = GetTypeInfo(b);
    return x.block_bytes * y.block_elems > y.block_bytes * x.block_elems;
  });
  return types;
}

// Why `plan` does not fit `available`, with the numbers and what would fit; nullopt when it fits.
inline std::optional<std::string> MemoryShortfall(const MemoryPlan& plan, const AvailableMemory& available, const MemoryFlags& flags = {}) {
  using namespace memory_plan_detail;
  if (plan.total() <= available.bytes) return std::nullopt;
  const MemoryShape& s = plan.shape;
  const std::string type = Lower(s.cache_types.Name());
  std::string m = std::to_string(s.context) + " tokens";
  if (s.slots > 1) m += " in each of " + std::to_string(s.slots) + " slots";
  m += " need " + Size(plan.total()) + " of memory: weights " + Size(plan.weights + plan.weight_copies);
  if (plan.weight_copies) m += " (" + Size(plan.weight_copies) + " of them row-group copies kept for AMX)";
  m += " + KV cache " + Size(plan.cache) + " (" + type + ")";
  if (s.slots > 1) m += " x " + std::to_string(s.slots) + " slots";
  m += " + buffers " + Size(plan.buffers);
  if (s.slots > 1) m += " x " + std::to_string(s.slots);
  m += "; " + Size(available.bytes) + " is available (" + available.source + ").";
  if (const size_t fits = LargestFittingContext(plan, s.cache_types, available.bytes); fits > 0)
    m += " With " + flags.cache_type + " " + type + " the largest " + flags.context + " that fits is " + std::to_string(fits) + ".";
  else
    m += " No " + flags.context + " fits with " + flags.cache_type + " " + type + ".";
  for (Type t : KVCacheTypes()) {
    if (KVCacheBytes(plan.config, s.context, s.max_chunk, t) >= plan.cache) continue;  // not cheaper
    if (With(plan, s.context, t, s.slots).total() <= available.bytes) {
      m += " " + flags.cache_type + " " + Lower(TypeName(t)) + " fits " + std::to_string(s.context) + " tokens.";
      break;
    }
  }
  if (!flags.slots.empty() && s.slots > 1) {  // fewer slots at the asked context
    size_t n = s.slots - 1;
    while (n > 0 && With(plan, s.context, s.cache_types, n).total() > available.bytes) --n;
    if (n > 0) m += " " + flags.slots + " " + std::to_string(n) + " fits " + std::to_string(s.context) + " tokens each.";
  }
  if (!flags.skip.empty()) m += " (" + flags.skip + " skips this check.)";
  return m;
}

// Throws a g4::Error naming flags.context when `plan` does not fit `available` (see MemoryShortfall); also when
// the context is over the model's positions.
inline void RequireMemoryFits(const MemoryPlan& plan, const AvailableMemory& available, const MemoryFlags& flags = {}) {
  if (const std::optional<std::string> why = MemoryShortfall(plan, available, flags)) Fail(flags.context, *why);
}

}  // namespace g4
