// Keeps file-backed tensor views safe to read as typed arrays. Safetensors does not align its data section and
// a GGUF may declare a small general.alignment, so a view into the mapping can start at an address that is not a
// multiple of its element size; reading it through a float* would be undefined behaviour. Such a tensor is
// copied once into aligned storage owned here (costs its size in memory; real checkpoints never need it for
// matrices, whose offsets are multiples of their row size).
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/tensor.hpp"

namespace g4 {

// Bytes a value of `type` must be aligned to when read in place (the widest scalar field it holds).
inline size_t NaturalAlignment(Type type) {
  const TypeInfo info = GetTypeInfo(type);
  return info.block_elems == 1 ? info.block_bytes : 2;  // quant blocks hold f16 scales
}

class AlignedViews {
 public:
  // Repoints every misaligned view in `views` at an aligned copy of its bytes.
  void Fix(std::vector<TensorView>& views) {
    for (TensorView& t : views) {
      if (t.nbytes == 0 || reinterpret_cast<uintptr_t>(t.data) % NaturalAlignment(t.type) == 0) continue;
      copies_.emplace_back(t.nbytes);
      std::memcpy(copies_.back().data(), t.data, t.nbytes);
      t.data = copies_.back().data();
    }
  }

 private:
  std::vector<AlignedBuffer> copies_;
};

}  // namespace g4
