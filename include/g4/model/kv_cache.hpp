// The KV cache of one sequence. Each attention layer owns K and V as [n_kv_heads, capacity, head_dim] f32;
// the key of absolute position p lives in slot p % capacity. Full layers get capacity = the context the caller
// asked for (so the modulo is the identity); sliding layers get a ring of window + max_chunk - 1 slots: enough
// that writing a whole chunk never overwrites a key an earlier query of the same chunk still sees, and that a
// speculative round of up to max_chunk - 1 tokens can be rolled back by just moving `pos` back (the ring still
// holds every entry the window needs). Layers that share KV (num_kv_shared_layers) own nothing.
//
// Memory (12B, F32): full layers 8 x 2 x 512 floats = 32 KiB per token (8 GiB at 256K tokens); sliding rings
// 40 x 2 x 2048 floats x (1024 + chunk - 1) slots. F16 halves both. Buffers are lazily committed
// (AlignedBuffer mmaps), so resident memory follows use.
#pragma once
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

struct LayerKV {
  int source_layer = -1;  // the layer whose cache this layer reads (itself unless KV is shared)
  size_t n_kv_heads = 0, head_dim = 0, capacity = 0;
  Type type = Type::F32;  // F32 or F16
  AlignedBuffer k, v;     // [n_kv_heads, capacity, head_dim] of `type`

  // Writes the key and value rows [head_dim] of one head at position pos (converted to the cache's type).
  void Store(size_t head, int64_t pos, const float* key, const float* value) {
    Put(k, head, pos, key);
    Put(v, head, pos, value);
  }
  // Reads them back as f32 (tests, the reference checks).
  void Load(size_t head, int64_t pos, float* key, float* value) const {
    Get(k, head, pos, key);
    Get(v, head, pos, value);
  }

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
    DequantizeRow(type, reinterpret_cast<const std::byte*>(b.data()) + Offset(head, pos) * GetTypeInfo(type).block_bytes, head_dim, dst);
  }
};

class KVCache {
 public:
  // context: the most positions this sequence may reach; max_chunk: the most tokens one forward call processes;
  // type: F32 (default: matches the reference to 1e-5) or F16 (half the memory, ~1e-3 relative rounding).
  KVCache(const Gemma4Config& cfg, size_t context, size_t max_chunk, Type type = Type::F32)
      : context_(context), max_chunk_(max_chunk) {
    Require(IsKVCacheType(type), "cache type", std::string(TypeName(type)) + " (supported: F32, F16)");
    Require(context > 0, "context", "must be positive");
    Require(context <= static_cast<size_t>(cfg.max_position), "context",
            std::to_string(context) + " tokens requested; the model supports at most " + std::to_string(cfg.max_position));
    Require(max_chunk > 0, "max_chunk", "must be positive");
    const int first_shared = cfg.n_layers - cfg.num_kv_shared_layers;
    layers_.resize(static_cast<size_t>(cfg.n_layers));
    for (int i = 0; i < cfg.n_layers; ++i) {
      const LayerConfig& lc = cfg.layers[static_cast<size_t>(i)];
      LayerKV& l = layers_[static_cast<size_t>(i)];
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
      const uint64_t bytes = CheckedMul(CheckedMul(CheckedMul(l.n_kv_heads, l.capacity, "kv cache"), l.head_dim, "kv cache"),
                                        GetTypeInfo(type).block_bytes, "kv cache");
      l.k = AlignedBuffer(bytes);
      l.v = AlignedBuffer(bytes);
    }
  }

  LayerKV& layer(int i) { return layers_[static_cast<size_t>(layers_[static_cast<size_t>(i)].source_layer)]; }
  const LayerKV& layer(int i) const { return layers_[static_cast<size_t>(layers_[static_cast<size_t>(i)].source_layer)]; }
  bool owns(int i) const { return layers_[static_cast<size_t>(i)].source_layer == i; }
  int n_layers() const { return static_cast<int>(layers_.size()); }
  size_t context() const { return context_; }
  size_t max_chunk() const { return max_chunk_; }

  size_t bytes() const {
    size_t n = 0;
    for (const LayerKV& l : layers_) n += l.k.size() + l.v.size();
    return n;
  }

 private:
  size_t context_, max_chunk_;
  std::vector<LayerKV> layers_;
};

}  // namespace g4
