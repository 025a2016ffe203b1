// Saving a sequence's KV cache to a file and restoring it (llama-server's slot save/restore): the held positions'
// rows of every layer that owns a cache, plus the tokens they came from. Rows are stored by position, not by ring
// slot, so a file restores into any sequence of the same model, cache type and a ring large enough.
//
// Layout (little-endian): "G4KVSEQ2", u64 pos, u32 n_layers, u64 n_keys, then per owning layer u32 layer, u32 key
// type, u32 value type, u32 n_kv_heads, u32 head_dim, i64 begin, i64 end (types: g4::Type's values, so a file of
// another cache type is refused, naming both); then each such layer's K then V rows, per head, positions
// begin..end; then n_keys u64 cache keys (Prompt::keys() of what the cache holds); then a u64 FNV-1a checksum of all
// bytes before it. A file is checked like any other input: truncation, a foreign model's shapes, or corruption give
// a g4::Error naming the file.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/model/sequence.hpp"

namespace g4 {

class SequenceFile {
 public:
  static void Save(const Sequence& seq, std::span<const uint64_t> keys, const std::string& path) {
    Require(keys.size() == static_cast<size_t>(seq.pos()), path,
            std::to_string(keys.size()) + " cache keys for a sequence at position " + std::to_string(seq.pos()));
    Writer w;
    w.Bytes(kMagic, 8);
    w.U64(static_cast<uint64_t>(seq.pos()));
    w.U32(static_cast<uint32_t>(seq.cache.n_layers()));
    w.U64(keys.size());
    ForOwned(seq.cache, [&](int i, const LayerKV& l) {
      for (uint64_t v : {uint64_t(i), uint64_t(l.k_type), uint64_t(l.v_type), uint64_t(l.n_kv_heads), uint64_t(l.head_dim)})
        w.U32(static_cast<uint32_t>(v));
      w.U64(static_cast<uint64_t>(l.held_begin()));
      w.U64(static_cast<uint64_t>(l.held_end()));
    });
    ForOwned(seq.cache, [&](int, const LayerKV& l) {
      for (const AlignedBuffer* b : {&l.k, &l.v})
        for (size_t h = 0; h < l.n_kv_heads; ++h)
          for (int64_t p = l.held_begin(); p < l.held_end(); ++p) w.Bytes(l.RowBytes(*b, h, p), l.row_bytes(*b));
    });
    for (uint64_t k : keys) w.U64(k);
    w.U64(w.hash);
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    Require(f != nullptr, path, "cannot create the cache file");
    Require(std::fwrite(w.out.data(), 1, w.out.size(), f.get()) == w.out.size() && std::fflush(f.get()) == 0, path,
            "cannot write the cache file");
  }

  // Restores into `seq` (a sequence of the same model and cache type; its previous contents are replaced) and
  // returns the cache keys of what it now holds.
  static std::vector<uint64_t> Restore(Sequence& seq, const std::string& path) {
    const MappedFile file(path);
    const std::span<const std::byte> bytes = file.bytes();
    Require(bytes.size() >= 16 && std::memcmp(bytes.data(), kMagic, 8) == 0, path, "is not a g4 KV cache file (bad magic)");
    Reader r{bytes.first(bytes.size() - 8), 8, path};  // the payload; the checksum follows it
    uint64_t hash = kFnvBasis, stored;
    for (const std::byte b : r.data) hash = (hash ^ static_cast<uint8_t>(b)) * kFnvPrime;
    std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
    Require(stored == hash, path, "checksum mismatch (truncated or corrupt)");
    const uint64_t pos = r.U64();
    const uint32_t n_layers = r.U32();
    const uint64_t n_keys = r.U64();
    Require(n_layers == static_cast<uint32_t>(seq.cache.n_layers()), path,
            "was saved from a model of " + std::to_string(n_layers) + " layers, this one has " + std::to_string(seq.cache.n_layers()));
    Require(pos <= seq.cache.context() && n_keys == pos, path,
            "position " + std::to_string(pos) + " with " + std::to_string(n_keys) + " keys does not fit a context of " +
                std::to_string(seq.cache.context()));
    struct Held { int64_t begin, end; };
    std::vector<Held> held;
    ForOwned(seq.cache, [&](int i, const LayerKV& l) {
      const uint32_t layer = r.U32(), k_type = r.U32(), v_type = r.U32(), heads = r.U32(), dim = r.U32();
      const std::string where = path + ": layer " + std::to_string(i);
      Require(layer == static_cast<uint32_t>(i) && heads == l.n_kv_heads && dim == l.head_dim, where,
              "was saved as layer " + std::to_string(layer) + " with " + std::to_string(heads) + "x" + std::to_string(dim) +
                  " KV; this sequence has " + std::to_string(l.n_kv_heads) + "x" + std::to_string(l.head_dim) + " (a foreign model)");
      Require(k_type == static_cast<uint32_t>(l.k_type) && v_type == static_cast<uint32_t>(l.v_type), where,
              "was saved with a cache of keys " + TypeNameOf(k_type) + ", values " + TypeNameOf(v_type) + "; this sequence's are " +
                  std::string(TypeName(l.k_type)) + ", " + std::string(TypeName(l.v_type)) + " (restore with the same --cache-type)");
      const int64_t begin = static_cast<int64_t>(r.U64()), end = static_cast<int64_t>(r.U64());
      Require(begin >= 0 && begin <= end && static_cast<uint64_t>(end) == pos && static_cast<uint64_t>(end - begin) <= l.capacity, where,
              "holds positions [" + std::to_string(begin) + ", " + std::to_string(end) + "), which a ring of " +
                  std::to_string(l.capacity) + " slots at position " + std::to_string(pos) + " cannot take");
      held.push_back({begin, end});
    });
    size_t next = 0;
    ForOwned(seq.cache, [&](int, LayerKV& l) {
      const Held h = held[next++];
      for (AlignedBuffer* b : {&l.k, &l.v})
        for (size_t head = 0; head < l.n_kv_heads; ++head)
          for (int64_t p = h.begin; p < h.end; ++p) std::memcpy(l.RowBytes(*b, head, p), r.Take(l.row_bytes(*b)), l.row_bytes(*b));
      l.SetHeld(h.begin, h.end);
    });
    std::vector<uint64_t> keys(n_keys);
    for (uint64_t& k : keys) k = r.U64();
    Require(r.at == r.data.size(), path, "has " + std::to_string(r.data.size() - r.at) + " unexpected bytes before its checksum");
    seq.pos_ = static_cast<int64_t>(pos);
    return keys;
  }

 private:
  static constexpr char kMagic[8] = {'G', '4', 'K', 'V', 'S', 'E', 'Q', '2'};  // 2: keys and values typed apart

  // A type number read from a file, by name where it is one.
  static std::string TypeNameOf(uint32_t t) {
    const std::optional<TypeInfo> info = FindTypeInfo(static_cast<Type>(t));
    return info ? std::string(info->name) : "type " + std::to_string(t);
  }
  static constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull, kFnvPrime = 0x100000001b3ull;

  template <typename Cache, typename F>
  static void ForOwned(Cache& cache, F&& f) {
    for (int i = 0; i < cache.n_layers(); ++i)
      if (cache.owns(i)) f(i, cache.layer(i));
  }

  struct Writer {
    std::vector<std::byte> out;
    uint64_t hash = kFnvBasis;
    void Bytes(const void* p, size_t n) {
      const auto* b = static_cast<const std::byte*>(p);
      for (size_t i = 0; i < n; ++i) hash = (hash ^ static_cast<uint8_t>(b[i])) * kFnvPrime;
      out.insert(out.end(), b, b + n);
    }
    void U32(uint32_t v) { Bytes(&v, 4); }
    void U64(uint64_t v) { Bytes(&v, 8); }
  };
  struct Reader {
    std::span<const std::byte> data;
    size_t at;
    const std::string& path;
    const std::byte* Take(size_t n) {
      Require(n <= data.size() - at, path, "is truncated");
      const std::byte* p = data.data() + at;
      at += n;
      return p;
    }
    uint32_t U32() { uint32_t v; std::memcpy(&v, Take(4), 4); return v; }
    uint64_t U64() { uint64_t v; std::memcpy(&v, Take(8), 8); return v; }
  };
};

}  // namespace g4
