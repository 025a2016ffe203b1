// The KV cache of one sequence. Each attention layer owns K and V as [n_kv_heads, capacity] rows of head_dim values
// (F32, F16, or ggml's Q8_0 / Q4_0 blocks of 32: a row is head_dim / 32 blocks; keys and values typed separately);
// the key of absolute position p lives in slot p % capacity. Full layers get capacity = the context the caller
// asked for (so the modulo is the identity); sliding layers get a ring of window + max_chunk - 1 slots: enough
// that writing a whole chunk never overwrites a key an earlier query of the same chunk still sees, and that a
// speculative round of up to max_chunk - 2 tokens can be rolled back (the ring still holds every entry the window
// and the drafter need). Each layer knows which positions it holds, and reads and rollbacks are checked against it
// (LayerKV, KVCache::Rollback). Layers that share KV (num_kv_shared_layers) own nothing.
//
// Memory (12B, F32): full layers 8 x 2 x 512 floats = 32 KiB per token (8 GiB at 256K tokens); sliding rings
// 40 x 2 x 2048 floats x (1024 + chunk - 1) slots. F16 halves both, Q8_0 takes 34 / 128 of F32 (2.1 GiB at 256K),
// Q4_0 18 / 128 (1.1 GiB). Buffers are lazily committed (AlignedBuffer mmaps), so resident memory follows use.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/checked.hpp"
#include "g4/core/dequantize.hpp"
#include "g4/core/quantize.hpp"
#include "g4/model/config.hpp"

namespace g4 {

// The types a KV cache stores: F32 (matches the reference to ~1e-5), F16 (half the memory, ~1e-3 rounding), and
// ggml's Q8_0 and Q4_0 blocks (rounding of at most scale / 127 and scale / 7 per block of 32, scale = its largest
// magnitude), which attention reads in place (kernels/attention-inl.h).
inline bool IsKVCacheType(Type t) { return t == Type::F32 || t == Type::F16 || t == Type::Q8_0 || t == Type::Q4_0; }

// The cache type a user names ("f32", "f16", "q8_0", "q4_0", any case, as llama.cpp's --cache-type-k); `where`
// names the option in the error.
inline Type KVCacheTypeFromName(std::string_view name, std::string_view where) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::optional<Type> type = TypeFromName(upper);
  Require(type && IsKVCacheType(*type), where,
          "'" + std::string(name) + "' is not a cache type (supported: f32, f16, q8_0, q4_0)");
  return *type;
}

// The types of a cache's keys and of its values (llama.cpp's --cache-type-k / --cache-type-v); one Type sets both.
struct KVTypes {
  Type k = Type::F32, v = Type::F32;
  KVTypes() = default;
  KVTypes(Type both) : k(both), v(both) {}  // NOLINT(google-explicit-constructor): a Type means both
  KVTypes(Type keys, Type values) : k(keys), v(values) {}
  bool operator==(const KVTypes&) const = default;
  // "f32", or "k q8_0, v f16" where they differ.
  std::string Name() const {
    return k == v ? std::string(TypeName(k)) : "k " + std::string(TypeName(k)) + ", v " + std::string(TypeName(v));
  }
};

// The cache types of llama.cpp's flags: --cache-type-k and --cache-type-v (empty where not given) over
// --cache-type (both; empty: f32). Errors name the flag.
inline KVTypes KVCacheTypesFromNames(std::string_view both, std::string_view keys, std::string_view values) {
  const Type t = both.empty() ? Type::F32 : KVCacheTypeFromName(both, "--cache-type");
  return {keys.empty() ? t : KVCacheTypeFromName(keys, "--cache-type-k"),
          values.empty() ? t : KVCacheTypeFromName(values, "--cache-type-v")};
}

// Bytes of one cached row of head_dim values of type t (Q8_0 / Q4_0: head_dim / 32 blocks of 34 / 18 bytes).
inline size_t KVRowBytes(Type t, size_t head_dim) {
  const TypeInfo info = GetTypeInfo(t);
  if (head_dim % info.block_elems != 0)  // checked before building the message: every row address asks
    Fail("kv cache", "head_dim " + std::to_string(head_dim) + " is not a whole number of " + std::string(info.name) +
                         " blocks of " + std::to_string(info.block_elems));
  return head_dim / info.block_elems * info.block_bytes;
}

// One layer's keys and values, and which positions its slots hold: a contiguous range [begin, end). Writes continue
// from `end`; writing position q overwrites the slot of q - capacity, so writing up to e keeps only positions
// >= e - capacity of what was held. A rollback drops the positions from its target on. Every read asks for its positions through RequireHeld: evicted or rolled-back entries
// are an error, never numbers.
struct LayerKV {
  int source_layer = -1;  // the layer whose cache this layer reads (itself unless KV is shared)
  size_t n_kv_heads = 0, head_dim = 0, capacity = 0;
  Type k_type = Type::F32, v_type = Type::F32;  // IsKVCacheType
  AlignedBuffer k, v;  // [n_kv_heads, capacity] rows of head_dim values of k_type / v_type

  // Writes the key and value rows [head_dim] of one head at position pos (converted to the cache's type). The
  // positions count as held once MarkWritten says the whole chunk is in.
  void Store(size_t head, int64_t pos, const float* key, const float* value) {
    Put(k, head, pos, key);
    Put(v, head, pos, value);
  }
  // Reads them back as f32 (tests, the reference checks).
  void Load(size_t head, int64_t pos, float* key, float* value) const {
    RequireHeld(pos, pos + 1, "kv cache read");
    DequantizeRow(k_type, RowBytes(k, head, pos), head_dim, key);
    DequantizeRow(v_type, RowBytes(v, head, pos), head_dim, value);
  }

  // Positions [begin, end) were stored, continuing from held_end().
  void MarkWritten(int64_t begin, int64_t end) {
    if (begin != end_ || end < begin)  // checked before building the message: this runs for every layer of every step
      Fail("kv cache", "positions [" + std::to_string(begin) + ", " + std::to_string(end) + ") do not continue the cache at " +
                           std::to_string(end_));
    end_ = end;
    begin_ = std::max(begin_, end - static_cast<int64_t>(capacity));
  }
  // Drops the positions >= end (a rollback).
  void Truncate(int64_t end) {
    end_ = std::min(end_, end);
    begin_ = std::min(begin_, end_);  // nothing before a target below `begin` is held either
  }
  int64_t held_begin() const { return begin_; }
  int64_t held_end() const { return end_; }
  void RequireHeld(int64_t begin, int64_t end, std::string_view who) const {
    if (begin < begin_ || end > end_ || begin > end)
      Fail(who, "positions [" + std::to_string(begin) + ", " + std::to_string(end) + ") are not all in the cache, which holds [" +
                    std::to_string(begin_) + ", " + std::to_string(end_) + ") in " + std::to_string(capacity) + " slots");
  }

  // The raw bytes of one cached row of buffer `b` (k or v): copy, save and restore move rows without conversion.
  size_t row_bytes(const AlignedBuffer& b) const { return KVRowBytes(&b == &k ? k_type : v_type, head_dim); }
  // The bytes of the K and the V buffer together: [n_kv_heads, capacity] rows each.
  uint64_t bytes() const {
    const uint64_t rows = CheckedMul(n_kv_heads, capacity, "kv cache");
    return CheckedMul(rows, KVRowBytes(k_type, head_dim) + KVRowBytes(v_type, head_dim), "kv cache");
  }
  std::byte* RowBytes(AlignedBuffer& b, size_t head, int64_t pos) const { return b.data() + Slot(head, pos) * row_bytes(b); }
  const std::byte* RowBytes(const AlignedBuffer& b, size_t head, int64_t pos) const {
    return b.data() + Slot(head, pos) * row_bytes(b);
  }
  // Takes over the positions [begin, end) as held (a restored file's rows, already put in place).
  void SetHeld(int64_t begin, int64_t end) {
    Require(begin >= 0 && begin <= end && static_cast<uint64_t>(end - begin) <= capacity, "kv cache",
            "cannot hold positions [" + std::to_string(begin) + ", " + std::to_string(end) + ") in " + std::to_string(capacity) + " slots");
    begin_ = begin;
    end_ = end;
  }
  void CopyHeld(const LayerKV& o) { SetHeld(o.begin_, o.end_); }

 private:
  size_t Slot(size_t head, int64_t pos) const { return head * capacity + static_cast<size_t>(pos) % capacity; }
  void Put(AlignedBuffer& b, size_t head, int64_t pos, const float* src) const {
    QuantizeRow(&b == &k ? k_type : v_type, src, head_dim, RowBytes(b, head, pos));
  }

  int64_t begin_ = 0, end_ = 0;  // positions held: [begin_, end_)
};

class KVCache {
 public:
  // context: the most positions this sequence may reach; max_chunk: the most tokens one forward call processes;
  // types: of keys and values (IsKVCacheType; default F32, which matches the reference to 1e-5).
  KVCache(const Gemma4Config& cfg, size_t context, size_t max_chunk, KVTypes types = {})
      : context_(context), max_chunk_(max_chunk), sliding_window_(cfg.sliding_window), layers_(Shapes(cfg, context, max_chunk, types)) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      LayerKV& l = layers_[i];
      if (l.source_layer != static_cast<int>(i)) continue;
      const uint64_t rows = CheckedMul(l.n_kv_heads, l.capacity, "kv cache");
      l.k = AlignedBuffer(CheckedMul(rows, l.row_bytes(l.k), "kv cache"));
      l.v = AlignedBuffer(CheckedMul(rows, l.row_bytes(l.v), "kv cache"));
    }
  }

  // Every layer's shape for these arguments, without buffers: what a KVCache allocates, so memory can be planned
  // before allocating (session/memory_plan.hpp). Shared layers have n_kv_heads = 0 and read `source_layer`.
  static std::vector<LayerKV> Shapes(const Gemma4Config& cfg, size_t context, size_t max_chunk, KVTypes types) {
    for (Type t : {types.k, types.v})
      Require(IsKVCacheType(t), "cache type", std::string(TypeName(t)) + " (supported: F32, F16, Q8_0, Q4_0)");
    Require(context > 0, "context", "must be positive");
    Require(context <= static_cast<size_t>(cfg.max_position), "context",
            std::to_string(context) + " tokens requested; the model supports at most " + std::to_string(cfg.max_position));
    Require(max_chunk > 0, "max_chunk", "must be positive");
    const int first_shared = cfg.n_layers - cfg.num_kv_shared_layers;
    std::vector<LayerKV> layers(static_cast<size_t>(cfg.n_layers));
    for (int i = 0; i < cfg.n_layers; ++i) {
      const LayerConfig& lc = cfg.layers[static_cast<size_t>(i)];
      LayerKV& l = layers[static_cast<size_t>(i)];
      l.source_layer = i;
      if (i >= first_shared) {  // reads the last non-shared layer of the same kind
        for (int j = first_shared - 1; j >= 0; --j)
          if (cfg.layers[static_cast<size_t>(j)].kind == lc.kind) { l.source_layer = j; break; }
        if (l.source_layer != i) continue;
      }
      l.k_type = types.k;
      l.v_type = types.v;
      l.n_kv_heads = static_cast<size_t>(lc.n_kv_heads);
      l.head_dim = static_cast<size_t>(lc.head_dim);
      l.capacity = lc.kind == AttentionKind::kFull
                       ? context
                       : std::min(context, static_cast<size_t>(cfg.sliding_window) + max_chunk - 1);
    }
    return layers;
  }

  LayerKV& layer(int i) { return layers_[static_cast<size_t>(layers_[static_cast<size_t>(i)].source_layer)]; }
  const LayerKV& layer(int i) const { return layers_[static_cast<size_t>(layers_[static_cast<size_t>(i)].source_layer)]; }
  bool owns(int i) const { return layers_[static_cast<size_t>(i)].source_layer == i; }
  int n_layers() const { return static_cast<int>(layers_.size()); }
  size_t context() const { return context_; }
  size_t max_chunk() const { return max_chunk_; }

  // The first position at or after which every position must stay held for decoding to go on from `to`: a ring
  // must keep the window the next query sees plus the one more entry the MTP drafter reads (W + 1); a full layer
  // everything.
  int64_t NeededFrom(const LayerKV& l, int64_t to) const {
    return l.capacity >= context_ ? 0 : std::max<int64_t>(0, to - (sliding_window_ + 1));
  }
  bool Keeps(const LayerKV& l, int64_t to) const { return NeededFrom(l, to) == to || NeededFrom(l, to) >= l.held_begin(); }
  // Whether decoding can go on from position `to` after dropping the positions >= to.
  bool CanRollback(int64_t to) const {
    for (int i = 0; i < n_layers(); ++i) {
      const LayerKV& l = layers_[static_cast<size_t>(i)];
      if (!owns(i)) continue;
      if (to < 0 || to > l.held_end() || !Keeps(l, to)) return false;
    }
    return true;
  }
  void Rollback(int64_t to) {
    for (int i = 0; i < n_layers(); ++i) {
      const LayerKV& l = layers_[static_cast<size_t>(i)];
      if (!owns(i)) continue;
      Require(to >= 0 && to <= l.held_end(), "rollback",
              "to position " + std::to_string(to) + ": the sequence is at position " + std::to_string(l.held_end()));
      Require(Keeps(l, to), "rollback",
              "from position " + std::to_string(l.held_end()) + " to " + std::to_string(to) + ": layer " + std::to_string(i) +
                  "'s ring of " + std::to_string(l.capacity) + " slots no longer holds positions before " +
                  std::to_string(l.held_begin()) + ", and going on from " + std::to_string(to) + " needs them from " +
                  std::to_string(NeededFrom(l, to)) + " (roll back to 0 and recompute, or use a larger max_chunk)");
    }
    for (int i = 0; i < n_layers(); ++i)
      if (owns(i)) layers_[static_cast<size_t>(i)].Truncate(to);
  }

  // A deep copy: the same held positions, in buffers of its own.
  KVCache Clone() const {
    KVCache c(*this, 0);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const LayerKV& from = layers_[i];
      LayerKV& to = c.layers_[i];
      if (from.source_layer != static_cast<int>(i)) continue;
      to.k = AlignedBuffer(from.k.size());
      to.v = AlignedBuffer(from.v.size());
      // Only held rows are copied: the rest of a long context's buffer stays uncommitted.
      for (size_t h = 0; h < from.n_kv_heads; ++h)
        for (int64_t p = from.held_begin(); p < from.held_end(); ++p) {
          std::copy_n(from.RowBytes(from.k, h, p), from.row_bytes(from.k), to.RowBytes(to.k, h, p));
          std::copy_n(from.RowBytes(from.v, h, p), from.row_bytes(from.v), to.RowBytes(to.v, h, p));
        }
    }
    return c;
  }

  size_t bytes() const {
    size_t n = 0;
    for (const LayerKV& l : layers_) n += l.k.size() + l.v.size();
    return n;
  }

 private:
  // Clone's start: the shape and held positions of `o`, without buffers.
  KVCache(const KVCache& o, int) : context_(o.context_), max_chunk_(o.max_chunk_), sliding_window_(o.sliding_window_) {
    for (const LayerKV& l : o.layers_) {
      LayerKV& c = layers_.emplace_back();
      c.source_layer = l.source_layer;
      c.n_kv_heads = l.n_kv_heads;
      c.head_dim = l.head_dim;
      c.capacity = l.capacity;
      c.k_type = l.k_type;
      c.v_type = l.v_type;
      c.CopyHeld(l);
    }
  }

  size_t context_, max_chunk_;
  int64_t sliding_window_;
  std::vector<LayerKV> layers_;
};

// Bytes one more cached position takes in every layer that owns a cache (keys and values of all its KV heads): the
// growth of the full layers' buffers per token of context; a ring's buffers are that times its capacity.
inline uint64_t KVBytesPerToken(const Gemma4Config& cfg, KVTypes types) {
  uint64_t bytes = 0;
  for (const LayerKV& l : KVCache::Shapes(cfg, 1, 1, types)) bytes += l.n_kv_heads * (l.row_bytes(l.k) + l.row_bytes(l.v));
  return bytes;
}

}  // namespace g4
