// GGUF v3 writer: metadata of every type (nested arrays included) and tensor data aligned to general.alignment
// (default 32), in the order added. Tensor bytes may be produced lazily, one tensor at a time while writing, so
// `g4 quantize` never holds more than one converted tensor in memory. Tests build hostile files by corrupting
// the bytes of Serialize().
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/tensor.hpp"
#include "g4/io/gguf.hpp"

namespace g4 {

class GgufWriter {
 public:
  void Set(const std::string& key, GgufValue value) {
    for (auto& [k, v] : kv_)
      if (k == key) {
        v = std::move(value);
        return;
      }
    kv_.emplace_back(key, std::move(value));
  }
  void Erase(const std::string& key) {
    std::erase_if(kv_, [&](const auto& kv) { return kv.first == key; });
  }
  const GgufValue* Find(const std::string& key) const {
    for (const auto& [k, v] : kv_)
      if (k == key) return &v;
    return nullptr;
  }

  using Producer = std::function<std::vector<std::byte>()>;

  // Adds a tensor whose bytes `produce` returns when the file is written; `shape` is outermost first (written
  // as reversed ggml ne).
  void AddTensor(const std::string& name, Type type, const Shape& shape, Producer produce) {
    tensors_.push_back({name, type, shape, TensorBytes(type, shape, name), std::move(produce)});
  }
  void AddTensor(const std::string& name, Type type, const Shape& shape, std::vector<std::byte> bytes) {
    auto shared = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
    AddTensor(name, type, shape, [shared] { return *shared; });
  }
  // Copies a view's bytes (the view must stay valid until the file is written).
  void AddTensor(const TensorView& t) {
    AddTensor(t.name, t.type, t.shape, [t] { return std::vector<std::byte>(t.data, t.data + t.nbytes); });
  }

  // The whole file in memory (tests corrupt it before writing).
  std::vector<std::byte> Serialize() const {
    std::vector<std::byte> out;
    Emit([&](const void* p, size_t n) { Put(out, p, n); });
    return out;
  }

  void Write(const std::string& path) const {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    Require(f != nullptr, path, "cannot create file");
    Emit([&](const void* p, size_t n) { Require(n == 0 || std::fwrite(p, 1, n, f.get()) == n, path, "write failed"); });
    Require(std::fflush(f.get()) == 0, path, "write failed");
  }

  static void WriteFileBytes(const std::string& path, const std::vector<std::byte>& bytes) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    Require(f != nullptr, path, "cannot create file");
    Require(bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size(), path, "write failed");
    Require(std::fflush(f.get()) == 0, path, "write failed");
  }

 private:
  struct PendingTensor {
    std::string name;
    Type type;
    Shape shape;
    uint64_t nbytes;
    Producer produce;
  };

  // Writes the file through `sink(pointer, length)`.
  template <typename Sink> void Emit(Sink&& sink) const {
    uint64_t alignment = GgufFile::kDefaultAlignment;
    if (const GgufValue* a = Find("general.alignment")) {
      int64_t v = 0;
      Require(a->type == GgufType::U32 && GgufValue::ToInt(a->type, a->raw.data(), &v) && v > 0 && (v & (v - 1)) == 0,
              "general.alignment", "must be a u32 power of two");
      alignment = static_cast<uint64_t>(v);
    }
    std::vector<std::byte> head;
    Put(head, "GGUF", 4);
    PutPod(head, uint32_t{3});
    PutPod(head, static_cast<uint64_t>(tensors_.size()));
    PutPod(head, static_cast<uint64_t>(kv_.size()));
    for (const auto& [k, v] : kv_) {
      PutString(head, k);
      PutPod(head, static_cast<uint32_t>(v.type));
      PutValue(head, v);
    }
    uint64_t offset = 0;
    for (const PendingTensor& t : tensors_) {
      PutString(head, t.name);
      PutPod(head, static_cast<uint32_t>(t.shape.rank));
      for (int d = t.shape.rank - 1; d >= 0; --d) PutPod(head, static_cast<uint64_t>(t.shape[d]));
      PutPod(head, static_cast<uint32_t>(t.type));
      PutPod(head, offset);
      offset += Padded(t.nbytes, alignment);
    }
    head.resize(Padded(head.size(), alignment));
    sink(head.data(), head.size());
    const std::vector<std::byte> zeros(alignment);
    for (const PendingTensor& t : tensors_) {
      const std::vector<std::byte> bytes = t.produce();
      Require(bytes.size() == t.nbytes, t.name, "produced " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(t.nbytes));
      sink(bytes.data(), bytes.size());
      sink(zeros.data(), Padded(t.nbytes, alignment) - t.nbytes);
    }
  }

  static uint64_t Padded(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }
  static void Put(std::vector<std::byte>& out, const void* p, size_t n) {
    if (n == 0) return;
    const auto* b = static_cast<const std::byte*>(p);
    out.insert(out.end(), b, b + n);
  }
  template <typename T> static void PutPod(std::vector<std::byte>& out, T v) { Put(out, &v, sizeof(T)); }
  static void PutString(std::vector<std::byte>& out, const std::string& s) {
    PutPod(out, static_cast<uint64_t>(s.size()));
    Put(out, s.data(), s.size());
  }
  static void PutValue(std::vector<std::byte>& out, const GgufValue& v) {
    if (v.type == GgufType::STRING) return PutString(out, v.str);
    if (v.type != GgufType::ARRAY) return Put(out, v.raw.data(), v.raw.size());
    PutPod(out, static_cast<uint32_t>(v.elem_type));
    PutPod(out, v.count);
    if (v.elem_type == GgufType::STRING) {
      for (const std::string& s : v.strings) PutString(out, s);
    } else if (v.elem_type == GgufType::ARRAY) {
      for (const GgufValue& a : v.arrays) PutValue(out, a);
    } else {
      Put(out, v.raw.data(), v.raw.size());
    }
  }

  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace g4
