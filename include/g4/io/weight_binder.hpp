// Hands out a checkpoint's tensors by name while collecting every problem: a missing tensor, a wrong shape, a
// type the role cannot use, and (at the end) every tensor nobody asked for. Finish() throws ONE g4::Error that
// lists them all, so a user fixing a converted file sees the whole damage at once.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/tensor.hpp"
#include "g4/io/tensor_names.hpp"

namespace g4 {

class WeightBinder {
 public:
  explicit WeightBinder(std::string where) : where_(std::move(where)) {}

  // Makes `tensors` (from `file`) available by name.
  void AddSource(const std::vector<TensorView>& tensors, const std::string& file) {
    for (const TensorView& t : tensors) {
      if (entries_.count(t.name)) {
        problems_.push_back("tensor '" + t.name + "' is in both " + entries_[t.name].file + " and " + file);
        continue;
      }
      entries_[t.name] = Entry{&t, file, false};
    }
  }

  bool Has(const std::string& name) const { return entries_.count(name) != 0; }

  // A required tensor of the given shape; an empty view (and a recorded problem) if absent or wrong.
  TensorView Need(const std::string& name, const Shape& shape, TensorKind kind) {
    const auto it = entries_.find(name);
    if (it == entries_.end()) {
      problems_.push_back("missing tensor '" + name + "' " + shape.str());
      return {};
    }
    return Check(it->second, shape, kind);
  }

  // A tensor that may be absent (empty view then); if present it must have the given shape.
  TensorView Optional(const std::string& name, const Shape& shape, TensorKind kind) {
    const auto it = entries_.find(name);
    return it == entries_.end() ? TensorView{} : Check(it->second, shape, kind);
  }

  // A tensor whose contents were read elsewhere (GGUF rope_freqs): not reported as unexpected.
  void Consume(const std::string& name) {
    if (auto it = entries_.find(name); it != entries_.end()) it->second.used = true;
  }

  // Integer-valued tensor (the drafter's token ordering: ids, I32/I64 in safetensors, F32 in llama.cpp's GGUF).
  TensorView NeedIds(const std::string& name, const Shape& shape) {
    const auto it = entries_.find(name);
    if (it == entries_.end()) {
      problems_.push_back("missing tensor '" + name + "' " + shape.str());
      return {};
    }
    it->second.used = true;
    const TensorView& t = *it->second.view;
    const bool ok_type = t.type == Type::I32 || t.type == Type::I64 || t.type == Type::F32;
    if (!(t.shape == shape) || !ok_type) {
      problems_.push_back("tensor '" + name + "' in " + it->second.file + " is " + std::string(TypeName(t.type)) + " " +
                          t.shape.str() + ", expected I32, I64 or F32 " + shape.str());
      return {};
    }
    return t;
  }

  void Problem(std::string what) { problems_.push_back(std::move(what)); }

  // Reports every unused tensor and throws if anything went wrong.
  void Finish() {
    for (const auto& [name, e] : entries_)
      if (!e.used) problems_.push_back("unexpected tensor '" + name + "' in " + e.file);
    if (problems_.empty()) return;
    std::string msg = std::to_string(problems_.size()) + " problem(s) with the checkpoint's tensors:";
    for (const std::string& p : problems_) msg += "\n  " + p;
    Fail(where_, msg);
  }

 private:
  struct Entry {
    const TensorView* view = nullptr;
    std::string file;
    bool used = false;
  };

  TensorView Check(Entry& e, const Shape& shape, TensorKind kind) {
    e.used = true;
    const TensorView& t = *e.view;
    bool ok = t.shape == shape;
    const TypeInfo info = GetTypeInfo(t.type);
    const bool type_ok = kind == TensorKind::kMatrix ? info.is_float_weight
                                                     : (t.type == Type::F32 || t.type == Type::F16 || t.type == Type::BF16);
    if (!ok || !type_ok) {
      problems_.push_back("tensor '" + t.name + "' in " + e.file + " is " + std::string(info.name) + " " + t.shape.str() +
                          ", expected " + (kind == TensorKind::kMatrix ? "a weight type" : "F32/F16/BF16") + " " + shape.str());
      return {};
    }
    return t;
  }

  std::string where_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> problems_;
};

}  // namespace g4
