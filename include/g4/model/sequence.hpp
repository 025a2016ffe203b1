// One sequence being decoded: its KV cache, the position it has reached, and the layers' activation buffers (reused
// by every forward pass over it, and by drafting from it). The position only moves forward through Gemma4::Forward
// and back through Rollback, which refuses what the sliding rings can no longer honour.
#pragma once
#include <cstdint>
#include <string>

#include "g4/model/config.hpp"
#include "g4/model/decoder_layer.hpp"
#include "g4/model/kv_cache.hpp"

namespace g4 {

class Gemma4;

class Sequence {
 public:
  Sequence(const Gemma4Config& cfg, size_t context, size_t max_chunk = 512, KVTypes kv_types = {})
      : cache(cfg, context, max_chunk, kv_types) {}
  Sequence(Sequence&&) = default;
  Sequence& operator=(Sequence&&) = default;

  // A copy that continues exactly like this one (a shared system prompt, a prefix cache); scratch is not copied.
  Sequence Clone() const { return Sequence(cache.Clone(), pos_); }

  int64_t pos() const { return pos_; }
  bool CanRollback(int64_t to) const { return to <= pos_ && cache.CanRollback(to); }
  // Drops the positions >= to, so decoding goes on from `to`; a g4::Error naming both positions and the ring size
  // when the sliding rings no longer hold what that needs (rolling back to 0 is always possible).
  void Rollback(int64_t to) {
    Require(to >= 0 && to <= pos_, "rollback",
            "to position " + std::to_string(to) + ": the sequence is at position " + std::to_string(pos_));
    cache.Rollback(to);
    pos_ = to;
  }
  // Takes the first n positions as written, with whatever the cache holds there: for benchmarks that decode at a
  // depth without computing a prefill. Only from an empty sequence.
  void AssumeWritten(int64_t n) {
    Require(pos_ == 0 && n >= 0 && static_cast<uint64_t>(n) <= cache.context(), "sequence",
            "can only assume [0, " + std::to_string(n) + ") written on an empty sequence of context " + std::to_string(cache.context()));
    for (int i = 0; i < cache.n_layers(); ++i)
      if (cache.owns(i)) cache.layer(i).SetHeld(std::max<int64_t>(0, n - static_cast<int64_t>(cache.layer(i).capacity)), n);
    pos_ = n;
  }

  KVCache cache;
  LayerScratch scratch;

 private:
  friend class Gemma4;
  friend class SequenceFile;
  Sequence(KVCache c, int64_t pos) : cache(std::move(c)), pos_(pos) {}
  int64_t pos_ = 0;
};

}  // namespace g4
