// GGUF reader (versions 2 and 3), zero copy: tensors are TensorViews into the mmapped file. Every length and
// count the file states is checked against the bytes that remain BEFORE anything is allocated, so a string of
// 2^62 bytes or an array of 2^40 elements is an error, never a bad_alloc; header fields are read with memcpy.
//
// Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key, u32 type, value),
// n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding to
// general.alignment (default 32), data. Strings are u64 length + bytes. ne[0] is the fastest dimension: the
// reader reverses it into our outermost-first Shape.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "g4/core/checked.hpp"
#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/core/tensor.hpp"
#include "g4/core/types.hpp"
#include "g4/io/aligned_views.hpp"

namespace g4 {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

inline const char* GgufTypeName(GgufType t) {
  static const char* const kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : "unknown";
}

// Bytes of one scalar of type t (0 for string and array, whose size is variable).
inline size_t GgufScalarBytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

inline bool GgufIsInteger(GgufType t) {
  return t == GgufType::U8 || t == GgufType::I8 || t == GgufType::U16 || t == GgufType::I16 || t == GgufType::U32 ||
         t == GgufType::I32 || t == GgufType::U64 || t == GgufType::I64;
}

// One metadata value. Scalars keep their raw little-endian bytes; numeric arrays keep their element bytes in
// one block (read element i with the accessors); string arrays and arrays of arrays hold their elements.
struct GgufValue {
  GgufType type = GgufType::U8;
  std::vector<std::byte> raw;      // scalar: its bytes; numeric/bool array: count * element bytes
  std::string str;                 // STRING
  GgufType elem_type = GgufType::U8;  // ARRAY
  uint64_t count = 0;                 // ARRAY: number of elements
  std::vector<std::string> strings;   // ARRAY of STRING
  std::vector<GgufValue> arrays;      // ARRAY of ARRAY

  // ---- constructors (used by the writer and tests) ----
  template <typename T> static GgufValue Scalar(GgufType t, T v) {
    static_assert(std::is_arithmetic_v<T>);
    GgufValue g;
    g.type = t;
    g.raw.resize(sizeof(T));
    std::memcpy(g.raw.data(), &v, sizeof(T));
    return g;
  }
  static GgufValue U8(uint8_t v) { return Scalar(GgufType::U8, v); }
  static GgufValue I8(int8_t v) { return Scalar(GgufType::I8, v); }
  static GgufValue U16(uint16_t v) { return Scalar(GgufType::U16, v); }
  static GgufValue I16(int16_t v) { return Scalar(GgufType::I16, v); }
  static GgufValue U32(uint32_t v) { return Scalar(GgufType::U32, v); }
  static GgufValue I32(int32_t v) { return Scalar(GgufType::I32, v); }
  static GgufValue F32(float v) { return Scalar(GgufType::F32, v); }
  static GgufValue Bool(bool v) { return Scalar(GgufType::BOOL, static_cast<uint8_t>(v ? 1 : 0)); }
  static GgufValue U64(uint64_t v) { return Scalar(GgufType::U64, v); }
  static GgufValue I64(int64_t v) { return Scalar(GgufType::I64, v); }
  static GgufValue F64(double v) { return Scalar(GgufType::F64, v); }
  static GgufValue String(std::string s) {
    GgufValue g;
    g.type = GgufType::STRING;
    g.str = std::move(s);
    return g;
  }
  // A numeric or bool array; T's size must match the element type's.
  template <typename T> static GgufValue Array(GgufType elem, const std::vector<T>& v) {
    Require(GgufScalarBytes(elem) == sizeof(T), "gguf", "array element type does not match its C++ type");
    GgufValue g;
    g.type = GgufType::ARRAY;
    g.elem_type = elem;
    g.count = v.size();
    g.raw.resize(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(g.raw.data(), v.data(), g.raw.size());
    return g;
  }
  static GgufValue StringArray(std::vector<std::string> v) {
    GgufValue g;
    g.type = GgufType::ARRAY;
    g.elem_type = GgufType::STRING;
    g.count = v.size();
    g.strings = std::move(v);
    return g;
  }
  static GgufValue ArrayOfArrays(std::vector<GgufValue> v) {
    GgufValue g;
    g.type = GgufType::ARRAY;
    g.elem_type = GgufType::ARRAY;
    g.count = v.size();
    g.arrays = std::move(v);
    return g;
  }

  // ---- reading numbers: any integer type converts to int64 (u64 above INT64_MAX is refused), floats to double ----
  static bool ToInt(GgufType t, const std::byte* p, int64_t* out) {
    switch (t) {
      case GgufType::U8: { uint8_t v; std::memcpy(&v, p, 1); *out = v; return true; }
      case GgufType::I8: { int8_t v; std::memcpy(&v, p, 1); *out = v; return true; }
      case GgufType::U16: { uint16_t v; std::memcpy(&v, p, 2); *out = v; return true; }
      case GgufType::I16: { int16_t v; std::memcpy(&v, p, 2); *out = v; return true; }
      case GgufType::U32: { uint32_t v; std::memcpy(&v, p, 4); *out = v; return true; }
      case GgufType::I32: { int32_t v; std::memcpy(&v, p, 4); *out = v; return true; }
      case GgufType::I64: { int64_t v; std::memcpy(&v, p, 8); *out = v; return true; }
      case GgufType::U64: {
        uint64_t v;
        std::memcpy(&v, p, 8);
        if (v > static_cast<uint64_t>(INT64_MAX)) return false;
        *out = static_cast<int64_t>(v);
        return true;
      }
      case GgufType::BOOL: { uint8_t v; std::memcpy(&v, p, 1); *out = v != 0; return true; }
      default: return false;
    }
  }
  static bool ToDouble(GgufType t, const std::byte* p, double* out) {
    if (t == GgufType::F32) { float v; std::memcpy(&v, p, 4); *out = v; return true; }
    if (t == GgufType::F64) { std::memcpy(out, p, 8); return true; }
    int64_t i;
    if (GgufIsInteger(t) && ToInt(t, p, &i)) { *out = static_cast<double>(i); return true; }
    return false;
  }
};

struct GgufTensorInfo {
  std::string name;
  Type type;
  Shape shape;       // outermost first (ggml ne reversed)
  uint64_t offset;   // relative to the data section
  uint64_t nbytes;
};

class GgufFile {
 public:
  static constexpr uint32_t kDefaultAlignment = 32;
  static constexpr int kMaxArrayDepth = 8;

  explicit GgufFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) { Parse(); }

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  // ---- metadata ----
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* Find(const std::string& key) const {
    const auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
  }
  bool Has(const std::string& key) const { return Find(key) != nullptr; }
  const GgufValue& Get(const std::string& key) const {
    const GgufValue* v = Find(key);
    if (!v) Fail(Where(key), "missing metadata key");
    return *v;
  }
  // Any integer type, range-checked into [lo, hi].
  int64_t GetInt(const std::string& key, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX) const {
    const GgufValue& v = Get(key);
    int64_t i = 0;
    Require(GgufIsInteger(v.type) && GgufValue::ToInt(v.type, v.raw.data(), &i), Where(key),
            std::string("expected an integer, found ") + GgufTypeName(v.type));
    Require(i >= lo && i <= hi, Where(key), "value " + std::to_string(i) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return i;
  }
  uint32_t GetU32(const std::string& key) const { return static_cast<uint32_t>(GetInt(key, 0, UINT32_MAX)); }
  int32_t GetI32(const std::string& key) const { return static_cast<int32_t>(GetInt(key, INT32_MIN, INT32_MAX)); }
  uint64_t GetU64(const std::string& key) const { return static_cast<uint64_t>(GetInt(key, 0)); }
  double GetF64(const std::string& key) const {
    const GgufValue& v = Get(key);
    double d = 0;
    Require((v.type == GgufType::F32 || v.type == GgufType::F64) && GgufValue::ToDouble(v.type, v.raw.data(), &d), Where(key),
            std::string("expected a float, found ") + GgufTypeName(v.type));
    return d;
  }
  float GetF32(const std::string& key) const { return static_cast<float>(GetF64(key)); }
  bool GetBool(const std::string& key) const {
    const GgufValue& v = Get(key);
    Require(v.type == GgufType::BOOL, Where(key), std::string("expected a bool, found ") + GgufTypeName(v.type));
    return v.raw[0] != std::byte{0};
  }
  const std::string& GetString(const std::string& key) const {
    const GgufValue& v = Get(key);
    Require(v.type == GgufType::STRING, Where(key), std::string("expected a string, found ") + GgufTypeName(v.type));
    return v.str;
  }
  const GgufValue& GetArray(const std::string& key) const {
    const GgufValue& v = Get(key);
    Require(v.type == GgufType::ARRAY, Where(key), std::string("expected an array, found ") + GgufTypeName(v.type));
    return v;
  }
  // An integer (or bool) array as int64.
  std::vector<int64_t> GetIntArray(const std::string& key) const {
    const GgufValue& a = GetArray(key);
    Require(GgufIsInteger(a.elem_type) || a.elem_type == GgufType::BOOL, Where(key),
            std::string("expected an integer array, found an array of ") + GgufTypeName(a.elem_type));
    const size_t w = GgufScalarBytes(a.elem_type);
    std::vector<int64_t> out(a.count);
    for (uint64_t i = 0; i < a.count; ++i)
      Require(GgufValue::ToInt(a.elem_type, a.raw.data() + i * w, &out[i]), Where(key), "element " + std::to_string(i) + " exceeds int64");
    return out;
  }
  std::vector<float> GetF32Array(const std::string& key) const {
    const GgufValue& a = GetArray(key);
    Require(a.elem_type == GgufType::F32 || a.elem_type == GgufType::F64, Where(key),
            std::string("expected a float array, found an array of ") + GgufTypeName(a.elem_type));
    const size_t w = GgufScalarBytes(a.elem_type);
    std::vector<float> out(a.count);
    for (uint64_t i = 0; i < a.count; ++i) {
      double d = 0;
      GgufValue::ToDouble(a.elem_type, a.raw.data() + i * w, &d);
      out[i] = static_cast<float>(d);
    }
    return out;
  }
  std::vector<bool> GetBoolArray(const std::string& key) const {
    const GgufValue& a = GetArray(key);
    Require(a.elem_type == GgufType::BOOL, Where(key), std::string("expected a bool array, found an array of ") + GgufTypeName(a.elem_type));
    std::vector<bool> out(a.count);
    for (uint64_t i = 0; i < a.count; ++i) out[i] = a.raw[i] != std::byte{0};
    return out;
  }
  const std::vector<std::string>& GetStringArray(const std::string& key) const {
    const GgufValue& a = GetArray(key);
    Require(a.elem_type == GgufType::STRING, Where(key), std::string("expected a string array, found an array of ") + GgufTypeName(a.elem_type));
    return a.strings;
  }

  // ---- tensors ----
  const std::vector<GgufTensorInfo>& tensor_infos() const { return infos_; }
  const std::vector<TensorView>& tensors() const { return views_; }
  const TensorView* FindTensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &views_[it->second];
  }

 private:
  std::string Where(const std::string& key) const { return path() + ": key '" + key + "'"; }

  // A cursor over the header bytes; every read checks the remaining length first.
  struct Reader {
    const std::byte* p;
    uint64_t left;
    const std::string& where;
    void Need(uint64_t n, const std::string& what) {
      if (n > left) Fail(where, what + " needs " + std::to_string(n) + " bytes but only " + std::to_string(left) + " remain in the file");
    }
    template <typename T> T Read(const std::string& what) {
      Need(sizeof(T), what);
      T v;
      std::memcpy(&v, p, sizeof(T));
      p += sizeof(T);
      left -= sizeof(T);
      return v;
    }
    std::vector<std::byte> Bytes(uint64_t n, const std::string& what) {
      Need(n, what);
      std::vector<std::byte> v(p, p + n);
      p += n;
      left -= n;
      return v;
    }
    std::string String(const std::string& what) {
      const uint64_t n = Read<uint64_t>(what + " length");
      Need(n, what + " of " + std::to_string(n) + " bytes");
      std::string s(reinterpret_cast<const char*>(p), n);
      p += n;
      left -= n;
      return s;
    }
  };

  GgufValue ReadValue(Reader& r, GgufType type, const std::string& key, int depth) {
    const std::string what = "value of key '" + key + "'";
    GgufValue v;
    v.type = type;
    if (const size_t w = GgufScalarBytes(type)) {
      v.raw = r.Bytes(w, what);
      return v;
    }
    if (type == GgufType::STRING) {
      v.str = r.String(what);
      return v;
    }
    Require(type == GgufType::ARRAY, path(), "key '" + key + "' has unknown value type " + std::to_string(static_cast<uint32_t>(type)));
    Require(depth < kMaxArrayDepth, path(), "key '" + key + "': arrays nested deeper than " + std::to_string(kMaxArrayDepth));
    v.elem_type = static_cast<GgufType>(r.Read<uint32_t>(what + " element type"));
    v.count = r.Read<uint64_t>(what + " element count");
    const uint64_t elem_bytes = GgufScalarBytes(v.elem_type);
    // Smallest encoding of one element: a scalar's size, an empty string's length, an empty array's header.
    const uint64_t min_bytes = elem_bytes ? elem_bytes : v.elem_type == GgufType::STRING ? 8 : v.elem_type == GgufType::ARRAY ? 12 : 0;
    Require(min_bytes > 0, path(), "key '" + key + "': array of unknown element type " + std::to_string(static_cast<uint32_t>(v.elem_type)));
    r.Need(CheckedMul(v.count, min_bytes, path() + ": key '" + key + "'"), what + " (" + std::to_string(v.count) + " elements)");
    if (elem_bytes) {
      v.raw = r.Bytes(v.count * elem_bytes, what);
    } else if (v.elem_type == GgufType::STRING) {
      v.strings.reserve(v.count);
      for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(r.String(what + " element " + std::to_string(i)));
    } else {
      v.arrays.reserve(v.count);
      for (uint64_t i = 0; i < v.count; ++i) v.arrays.push_back(ReadValue(r, GgufType::ARRAY, key, depth + 1));
    }
    return v;
  }

  void Parse() {
    const std::string& where = path();
    const auto bytes = file_->bytes();
    Reader r{bytes.data(), bytes.size(), where};
    r.Need(4, "magic");
    Require(std::memcmp(r.p, "GGUF", 4) == 0, where, "bad magic: not a GGUF file");
    r.p += 4;
    r.left -= 4;
    version_ = r.Read<uint32_t>("version");
    Require(version_ == 2 || version_ == 3, where, "unsupported GGUF version " + std::to_string(version_) + " (2 and 3 are read)");
    const uint64_t n_tensors = r.Read<uint64_t>("tensor count");
    const uint64_t n_kv = r.Read<uint64_t>("metadata count");
    r.Need(CheckedMul(n_kv, 8 + 4 + 1, where), std::to_string(n_kv) + " metadata entries");
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key = r.String("metadata key " + std::to_string(i));
      const auto type = static_cast<GgufType>(r.Read<uint32_t>("type of key '" + key + "'"));
      GgufValue v = ReadValue(r, type, key, 0);
      Require(kv_index_.find(key) == kv_index_.end(), where, "duplicate metadata key '" + key + "'");
      kv_index_[key] = kv_.size();
      kv_.emplace_back(std::move(key), std::move(v));
    }
    if (Has("general.alignment")) {
      const int64_t a = GetInt("general.alignment", 1, 1 << 30);
      Require((a & (a - 1)) == 0, Where("general.alignment"), std::to_string(a) + " is not a power of two");
      alignment_ = static_cast<uint32_t>(a);
    }

    r.Need(CheckedMul(n_tensors, 8 + 4 + 4 + 8, where), std::to_string(n_tensors) + " tensor infos");
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      t.name = r.String("name of tensor " + std::to_string(i));
      const std::string at = where + ": tensor '" + t.name + "'";
      const uint32_t n_dims = r.Read<uint32_t>("dimension count of tensor '" + t.name + "'");
      Require(n_dims <= static_cast<uint32_t>(kMaxDims), at, std::to_string(n_dims) + " dimensions; at most 4");
      std::vector<int64_t> dims(n_dims);
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t ne = r.Read<uint64_t>("dimension of tensor '" + t.name + "'");
        Require(ne <= static_cast<uint64_t>(INT64_MAX), at, "dimension " + std::to_string(ne) + " too large");
        dims[n_dims - 1 - d] = static_cast<int64_t>(ne);  // ggml ne[0] is fastest: it becomes our last dim
      }
      t.shape = Shape::FromSpan(dims, at);
      const uint32_t type_id = r.Read<uint32_t>("type of tensor '" + t.name + "'");
      const auto type = TypeFromGgmlId(type_id);
      Require(type.has_value(), at, "unknown ggml type id " + std::to_string(type_id));
      t.type = *type;
      t.nbytes = TensorBytes(t.type, t.shape, at);
      t.offset = r.Read<uint64_t>("offset of tensor '" + t.name + "'");
      Require(t.offset % alignment_ == 0, at,
              "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(alignment_));
      Require(tensor_index_.find(t.name) == tensor_index_.end(), at, "duplicate tensor name");
      tensor_index_[t.name] = infos_.size();
      infos_.push_back(std::move(t));
    }
    const uint64_t header_end = bytes.size() - r.left;
    data_offset_ = CheckedAdd(header_end, (alignment_ - header_end % alignment_) % alignment_, where);
    const uint64_t data_size = data_offset_ <= bytes.size() ? bytes.size() - data_offset_ : 0;
    // Tensors must lie inside the data section and not overlap each other.
    std::vector<size_t> order(infos_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return infos_[a].offset < infos_[b].offset; });
    for (size_t k = 0; k < order.size(); ++k) {
      const GgufTensorInfo& t = infos_[order[k]];
      CheckRange(t.offset, t.nbytes, data_size, where + ": tensor '" + t.name + "'");
      if (k > 0) {
        const GgufTensorInfo& prev = infos_[order[k - 1]];
        if (t.nbytes > 0 && t.offset < prev.offset + prev.nbytes)
          Fail(where, "tensors '" + prev.name + "' and '" + t.name + "' overlap in the data section");
      }
    }
    for (const GgufTensorInfo& t : infos_)
      views_.push_back(TensorView{t.name, t.type, t.shape, bytes.data() + data_offset_ + t.offset, static_cast<size_t>(t.nbytes)});
    aligned_.Fix(views_);
  }

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> infos_;
  std::map<std::string, size_t> tensor_index_;
  std::vector<TensorView> views_;
  AlignedViews aligned_;  // copies of tensors misaligned by a small general.alignment
};

}  // namespace g4
