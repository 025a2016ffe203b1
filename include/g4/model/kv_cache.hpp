// The KV cache of one sequence. Each attention layer owns K and V as [n_kv_heads, capacity, head_dim] f32;
// the key of absolute position p lives in slot p % capacity. Full layers get capacity = the context the caller
// asked for (so the modulo is the identity); sliding layers get a ring of window + max_chunk - 1 slots: enough
// that writing a whole chunk never overwrites a key an earlier query of the same chunk still sees, and that a
// speculative round of up to max_chunk - 2 tokens can be rolled back (the ring still holds every entry the window
// and the drafter need). Each layer knows which positions it holds, and reads and rollbacks are checked against it
// (LayerKV, KVCache::Rollback). Layers that share KV (num_kv_shared_layers) own nothing.
//
// Memory (12B, F32): full layers 8 x 2 x 512 floats = 32 KiB per token (8 GiB at 256K tokens); sliding rings
// 40 x 2 x 2048 floats x (1024 + chunk - 1) slots. F16 halves both. Buffers are lazily committed
// (AlignedBuffer mmaps), so resident memory follows use.
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
#include "g4/model/config.hpp"

namespace g4 {

// The types a KV cache stores: F32 (matches the reference to ~1e-5) or F16 (half the memory, ~1e-3 rounding).
inline bool IsKVCacheType(Type t) { return t == Type::F32 || t == Type::F16; }

// The cache type a user names ("f32" or "f16", any case, as in llama.cpp's --cache-type-k); `where` names the
// option in the error.
inline Type KVCacheTypeFromName(std::string_view name, std::string_view where) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::optional<Type> type = TypeFromName(upper);
  Require(type && IsKVCacheType(*type), where, "'" + std::string(name) + "' is not a cache type (supported: f32, f16)");
  return *type;
}

// One layer's keys and values, and which positions its slots hold: a contiguous range [begin, end). Writes continue
// from `end`; writing position q overwrites the slot of q - capacity, so writing up to e keeps only positions
// >= e - capacity of what was held. A rollback drops the positions from its target on. Every read asks for its positions through RequireHeld: evicted or rolled-back entries
// are an error, never numbers.
struct LayerKV {
  int source_layer = -1;  // the layer whose cache this layer reads (itself unless KV is shared)
  size_t n_kv_heads = 0, head_dim = 0, capacity = 0;
  Type type = Type::F32;  // F32 or F16
  AlignedBuffer k, v;     // [n_kv_heads, capacity, head_dim] of `type`

  // Writes the key and value rows [head_dim] of one head at position pos (converted to the cache's type). The
  // positions count as held once MarkWritten says the whole chunk is in.
  void Store(size_t head, int64_t pos, const float* key, const float* value) {
    Put(k, head, pos, key);
    Put(v, head, pos, value);
  }
  // Reads them back as f32 (tests, the reference checks).
  void Load(size_t head, int64_t pos, float* key, float* value) const {
    RequireHeld(pos, pos + 1, "kv cache read");
    Get(k, head, pos, key);
    Get(v, head, pos, value);
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

  // The raw bytes of one cached row (copy, save and restore move rows without conversion).
  size_t row_bytes() const { return head_dim * GetTypeInfo(type).block_bytes; }
  // The bytes of the K buffer (and again of the V buffer): [n_kv_heads, capacity] rows.
  uint64_t buffer_bytes() const { return CheckedMul(CheckedMul(n_kv_heads, capacity, "kv cache"), row_bytes(), "kv cache"); }
  std::byte* RowBytes(AlignedBuffer& b, size_t head, int64_t pos) const { return b.data() + Offset(head, pos) * GetTypeInfo(type).block_bytes; }
  const std::byte* RowBytes(const AlignedBuffer& b, size_t head, int64_t pos) const {
    return b.data() + Offset(head, pos) * GetTypeInfo(type).block_bytes;
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
  size_t Offset(size_t head, int64_t pos) const { return (head * capacity + static_cast<size_t>(pos) % capacity) * head_dim; }
  void Put(AlignedBuffer& b, size_t head, int64_t pos, const float* src) const {
    if (type == Type::F32) {
      std::copy_n(src, head_dim, b.as<float>() + Offset(head, pos));
    } else {
      f16* dst = b.as<f16>() + Offset(head, pos);
      for (size_t i = 0; i < head_dim; ++i) dst[i] = F32ToF16(src[i]);
    }
  }
  void Get(const AlignedBuffer& b, size_t head, int64_t pos, float* dst) const {
    DequantizeRow(type, RowBytes(b, head, pos), head_dim, dst);
  }

  int64_t begin_ = 0, end_ = 0;  // positions held: [begin_, end_)
};

class KVCache {
 public:
  // context: the most positions this sequence may reach; max_chunk: the most tokens one forward call processes;
  // type: F32 (default: matches the reference to 1e-5) or F16 (half the memory, ~1e-3 relative rounding).
  KVCache(const Gemma4Config& cfg, size_t context, size_t max_chunk, Type type = Type::F32)
      : context_(context), max_chunk_(max_chunk), sliding_window_(cfg.sliding_window), layers_(Shapes(cfg, context, max_chunk, type)) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      if (layers_[i].source_layer != static_cast<int>(i)) continue;
      layers_[i].k = AlignedBuffer(layers_[i].buffer_bytes());
      layers_[i].v = AlignedBuffer(layers_[i].buffer_bytes());
    }
  }

  // Every layer's shape for these arguments, without buffers: what a KVCache allocates, so memory can be planned
  // before allocating (session/memory_plan.hpp). Shared layers have n_kv_heads = 0 and read `source_layer`.
  static std::vector<LayerKV> Shapes(const Gemma4Config& cfg, size_t context, size_t max_chunk, Type type) {
    Require(IsKVCacheType(type), "cache type", std::string(TypeName(type)) + " (supported: F32, F16)");
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
      l.type = type;
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
          std::copy_n(from.RowBytes(from.k, h, p), from.row_bytes(), to.RowBytes(to.k, h, p));
          std::copy_n(from.RowBytes(from.v, h, p), from.row_bytes(), to.RowBytes(to.v, h, p));
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
      c.type = l.type;
      c.CopyHeld(l);
    }
  }

  size_t context_, max_chunk_;
  int64_t sliding_window_;
  std::vector<LayerKV> layers_;
};

}  // namespace g4
