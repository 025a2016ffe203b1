// Safetensors reader: one file, or a sharded folder described by model.safetensors.index.json. Zero copy: a
// lookup returns a TensorView into the mmapped file. Everything the header says is checked before use: header
// length, JSON, dtype, shape (overflow-safe), data offsets (inside the data section, exactly dtype * shape bytes,
// no two tensors overlapping) and duplicate names, each error naming the file and the tensor.
//
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {...}}, then the data section; offsets are relative to its start (8 + N).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "g4/core/checked.hpp"
#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/types.hpp"
#include "g4/io/aligned_views.hpp"
#include "g4/io/json.hpp"

namespace g4 {

// Safetensors dtype string -> Type. BOOL is stored as one byte per value, like U8.
inline std::optional<Type> TypeFromSafetensorsDtype(std::string_view dtype) {
  if (dtype == "F32") return Type::F32;
  if (dtype == "F16") return Type::F16;
  if (dtype == "BF16") return Type::BF16;
  if (dtype == "F64") return Type::F64;
  if (dtype == "I8") return Type::I8;
  if (dtype == "I16") return Type::I16;
  if (dtype == "I32") return Type::I32;
  if (dtype == "I64") return Type::I64;
  if (dtype == "U8" || dtype == "BOOL") return Type::U8;
  return std::nullopt;
}

// One .safetensors file, mapped.
class SafetensorsFile {
 public:
  // Safetensors' own reader caps the header at 100 MB; a larger one is corrupt or hostile.
  static constexpr uint64_t kMaxHeaderBytes = 100u << 20;

  explicit SafetensorsFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
    const std::string& where = file_->path();
    const auto bytes = file_->bytes();
    Require(bytes.size() >= 8, where, "truncated: " + std::to_string(bytes.size()) + " bytes, no 8-byte header length");
    uint64_t header_len;
    std::memcpy(&header_len, bytes.data(), 8);
    Require(header_len <= kMaxHeaderBytes, where, "header length " + std::to_string(header_len) + " exceeds 100 MB");
    Require(header_len <= bytes.size() - 8, where,
            "header length " + std::to_string(header_len) + " lies beyond the end of the file (" +
                std::to_string(bytes.size()) + " bytes)");
    const char* text = reinterpret_cast<const char*>(bytes.data()) + 8;
    const nlohmann::json header = ParseJsonText(std::string_view(text, header_len), where + " (header)");
    Require(header.is_object(), where, "header is not a JSON object");

    const std::byte* data = bytes.data() + 8 + header_len;
    const uint64_t data_size = bytes.size() - 8 - header_len;
    struct Span { uint64_t begin, end; size_t index; };
    std::vector<Span> spans;
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") continue;
      const std::string at = where + ": tensor '" + name + "'";
      Require(entry.is_object(), at, "entry is not an object");
      Require(entry.contains("dtype") && entry["dtype"].is_string(), at, "missing string 'dtype'");
      Require(entry.contains("shape") && entry["shape"].is_array(), at, "missing array 'shape'");
      Require(entry.contains("data_offsets") && entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2,
              at, "missing 'data_offsets' [begin, end]");
      const std::string dtype = entry["dtype"].get<std::string>();
      const auto type = TypeFromSafetensorsDtype(dtype);
      Require(type.has_value(), at, "unknown dtype '" + dtype + "'");
      std::vector<int64_t> dims;
      for (const auto& d : entry["shape"]) {
        Require(d.is_number_unsigned() && d.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), at,
                "shape entry " + d.dump() + " is not a non-negative integer");
        dims.push_back(d.get<int64_t>());
      }
      const Shape shape = Shape::FromSpan(dims, at);
      const uint64_t nbytes = TensorBytes(*type, shape, at);
      for (const auto& o : entry["data_offsets"])
        Require(o.is_number_unsigned(), at, "data offset " + o.dump() + " is not a non-negative integer");
      const uint64_t begin = entry["data_offsets"][0].get<uint64_t>(), end = entry["data_offsets"][1].get<uint64_t>();
      Require(begin <= end, at, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
      Require(end - begin == nbytes, at,
              "data_offsets span " + std::to_string(end - begin) + " bytes but " + dtype + " " + shape.str() + " needs " +
                  std::to_string(nbytes));
      CheckRange(begin, nbytes, data_size, at);
      spans.push_back({begin, end, tensors_.size()});
      index_[name] = tensors_.size();
      tensors_.push_back(TensorView{name, *type, shape, data + begin, static_cast<size_t>(nbytes)});
    }
    // No two tensors may share bytes (empty tensors occupy none).
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < spans.size(); ++i) {
      if (spans[i].begin < spans[i - 1].end && spans[i].begin != spans[i].end)
        Fail(where, "tensors '" + tensors_[spans[i - 1].index].name + "' and '" + tensors_[spans[i].index].name +
                        "' overlap in the data section");
    }
    aligned_.Fix(tensors_);
  }

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }

 private:
  std::unique_ptr<MappedFile> file_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  AlignedViews aligned_;  // copies of misaligned tensors
};

// A whole safetensors checkpoint: one file, or the shards named by model.safetensors.index.json in a folder.
class Safetensors {
 public:
  static constexpr const char* kIndexName = "model.safetensors.index.json";

  // `path`: a .safetensors file, or a folder with model.safetensors or the index.
  explicit Safetensors(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;  // non-throwing checks: an unreadable path reads as absent, and the open names it
    if (!fs::is_directory(path, ec)) {
      AddFile(path);
      return;
    }
    const fs::path dir(path);
    if (fs::exists(dir / kIndexName, ec)) {
      LoadIndex((dir / kIndexName).string());
    } else {
      Require(fs::exists(dir / "model.safetensors", ec), path, "folder has neither model.safetensors nor " + std::string(kIndexName));
      AddFile((dir / "model.safetensors").string());
    }
  }

  const std::vector<TensorView>& tensors() const { return all_; }
  const TensorView* Find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &all_[it->second];
  }
  // The file that holds `name` (for messages).
  const std::string& FileOf(const std::string& name) const { return files_[file_of_.at(name)]->path(); }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  void AddFile(const std::string& path) {
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    for (const TensorView& t : files_.back()->tensors()) {
      Require(index_.find(t.name) == index_.end(), path,
              "tensor '" + t.name + "' is also in " + files_[file_of_[t.name]]->path());
      index_[t.name] = all_.size();
      file_of_[t.name] = files_.size() - 1;
      all_.push_back(t);
    }
  }

  // The index maps every tensor name to its shard; each shard must hold exactly the tensors mapped to it.
  void LoadIndex(const std::string& index_path) {
    const nlohmann::json j = ReadJsonFile(index_path);
    Require(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index_path, "missing object 'weight_map'");
    std::map<std::string, std::string> expected;  // tensor -> shard file name
    std::vector<std::string> shards;
    for (const auto& [name, shard] : j["weight_map"].items()) {
      Require(shard.is_string(), index_path, "weight_map entry '" + name + "' is not a file name");
      const std::string s = shard.get<std::string>();
      Require(!s.empty() && s.find('/') == std::string::npos && s != "." && s != "..", index_path,
              "weight_map entry '" + name + "' names '" + s + "', not a file in the folder");
      expected[name] = s;
      if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
    const std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
    for (const std::string& s : shards) AddFile((dir / s).string());
    for (const auto& [name, shard] : expected) {
      const auto it = file_of_.find(name);
      Require(it != file_of_.end(), index_path, "tensor '" + name + "' is mapped to " + shard + " but not stored there");
      Require(std::filesystem::path(files_[it->second]->path()).filename() == shard, index_path,
              "tensor '" + name + "' is mapped to " + shard + " but stored in " + files_[it->second]->path());
    }
    for (const TensorView& t : all_)
      Require(expected.count(t.name) == 1, FileOf(t.name), "tensor '" + t.name + "' is not listed in " + index_path);
  }

  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<TensorView> all_;
  std::map<std::string, size_t> index_;
  std::map<std::string, size_t> file_of_;
};

}  // namespace g4
