// The safetensors and GGUF readers on hostile files written here (errors naming the file and the problem, never
// a crash or bad_alloc), and the GGUF writer's round trip of every metadata type.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "g4/io/gguf.hpp"
#include "g4/io/gguf_writer.hpp"
#include "g4/io/safetensors.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"

namespace g4_test_file_formats {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::testing;
namespace fs = std::filesystem;

namespace {

// A safetensors file from a header text and `data_bytes` bytes of data.
std::vector<std::byte> SafetensorsBytes(const std::string& header, size_t data_bytes, uint64_t header_len_field = UINT64_MAX) {
  std::vector<std::byte> out(8);
  const uint64_t n = header_len_field == UINT64_MAX ? header.size() : header_len_field;
  std::memcpy(out.data(), &n, 8);
  const auto h = Bytes(header);
  out.insert(out.end(), h.begin(), h.end());
  out.resize(out.size() + data_bytes, std::byte{0x3f});
  return out;
}

}  // namespace

TEST_CASE("safetensors: hostile headers are errors naming the file and the problem") {
  const std::string dir = TempDir("safetensors");
  struct Case { const char* name; std::vector<std::byte> bytes; const char* problem; };
  const std::vector<Case> cases = {
      {"truncated", Bytes("\x05\x00\x00"), "truncated"},
      {"len_past_eof", SafetensorsBytes("{}", 0, 1000), "beyond the end of the file"},
      {"len_huge", SafetensorsBytes("{}", 0, uint64_t{1} << 62), "exceeds 100 MB"},
      {"bad_json", SafetensorsBytes("{\"a\": ", 0), "invalid JSON"},
      {"not_object", SafetensorsBytes("[1, 2]", 0), "not a JSON object"},
      {"past_eof", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8), "past the end"},
      {"wrong_span", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})", 16), "needs 16"},
      {"reversed", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", 16), "reversed"},
      {"overlap", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                  "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", 24), "overlap"},
      {"overflow", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 16]}})", 16),
       "size overflow"},
      {"bytes_overflow", SafetensorsBytes(R"({"a": {"dtype": "I64", "shape": [4611686018427387904], "data_offsets": [0, 16]}})", 16),
       "size overflow"},
      {"negative_dim", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})", 16), "not a non-negative integer"},
      {"rank5", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1,1,1,1,4], "data_offsets": [0, 16]}})", 16), "above 4"},
      {"dtype", SafetensorsBytes(R"({"weird": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 16), "unknown dtype 'F8_E4M3'"},
      {"dtype_names_tensor", SafetensorsBytes(R"({"weird": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 16), "'weird'"},
      {"duplicate", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                    "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8), "duplicate key 'a'"},
      {"no_offsets", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1]}})", 8), "data_offsets"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir + "/" + c.name + ".safetensors";
    WriteBytes(path, c.bytes);
    ExpectError([&] { SafetensorsFile f(path); }, path, c.problem);
  }
  // A well-formed file for contrast: values read back in place, misaligned F32 data copied to aligned storage.
  const std::string ok = dir + "/ok.safetensors";
  std::vector<std::byte> bytes = SafetensorsBytes(R"({"b": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                                             R"( "a": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}} )", 9);
  const float two[2] = {1.5f, -2.0f};
  std::memcpy(bytes.data() + bytes.size() - 8, two, 8);
  WriteBytes(ok, bytes);
  SafetensorsFile f(ok);
  const TensorView* a = f.Find("a");
  REQUIRE(a != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(a->data) % 4 == 0);
  CHECK(a->as<float>()[0] == 1.5f);
  CHECK(a->as<float>()[1] == -2.0f);
  CHECK(f.Find("b")->type == Type::U8);
}

TEST_CASE("safetensors: a shard index that disagrees with the shards is an error") {
  const std::string dir = TempDir("sharded");
  WriteBytes(dir + "/s1.safetensors", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4));
  WriteBytes(dir + "/s2.safetensors", SafetensorsBytes(R"({"b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4));
  const std::string index = dir + "/model.safetensors.index.json";
  auto write_index = [&](const std::string& text) { WriteBytes(index, Bytes(text)); };
  write_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  {
    const Safetensors st(dir);
    CHECK(st.tensors().size() == 2);
    CHECK(st.FileOf("b") == dir + "/s2.safetensors");
  }
  write_index(R"({"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, index, "mapped to s2.safetensors but stored in");
  write_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s2.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, index, "'c' is mapped to s2.safetensors but not stored there");
  write_index(R"({"weight_map": {"a": "../s1.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, index, "not a file in the folder");
  write_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s3.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, "s3.safetensors", "cannot open");
}

namespace {

// A small valid GGUF: a few keys and two tensors.
GgufWriter SmallGguf() {
  GgufWriter w;
  w.Set("general.architecture", GgufValue::String("test"));
  w.Set("test.count", GgufValue::U32(7));
  std::vector<std::byte> a(4 * 8), b(2 * 3 * 2);
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::byte(i);
  w.AddTensor("tensor_a", Type::F32, Shape{8}, a);
  w.AddTensor("tensor_b", Type::BF16, Shape{2, 3}, b);
  return w;
}

size_t FindBytes(const std::vector<std::byte>& hay, const std::string& needle) {
  const auto n = Bytes(needle);
  const auto it = std::search(hay.begin(), hay.end(), n.begin(), n.end());
  REQUIRE(it != hay.end());
  return static_cast<size_t>(it - hay.begin());
}

template <typename T> void Poke(std::vector<std::byte>& b, size_t at, T v) { std::memcpy(b.data() + at, &v, sizeof(T)); }

// Byte position of a tensor info's field, found from the tensor's name: name, n_dims, ne..., type, offset.
size_t TensorInfoField(const std::vector<std::byte>& b, const std::string& name, const char* field) {
  const size_t at = FindBytes(b, name) + name.size();
  uint32_t n_dims;
  std::memcpy(&n_dims, b.data() + at, 4);
  if (std::string(field) == "n_dims") return at;
  if (std::string(field) == "ne") return at + 4;
  if (std::string(field) == "type") return at + 4 + 8 * n_dims;
  return at + 4 + 8 * n_dims + 4;  // offset
}

}  // namespace

TEST_CASE("gguf: hostile files are errors naming the file and the problem, never a crash or bad_alloc") {
  const std::string dir = TempDir("gguf");
  const std::vector<std::byte> good = SmallGguf().Serialize();
  const size_t key_len_at = FindBytes(good, "test.count") - 8;                     // u64 length of the key string
  struct Case { const char* name; std::vector<std::byte> bytes; std::string problem; };
  std::vector<Case> cases;
  auto mutate = [&](const char* name, std::string problem, auto&& f) {
    std::vector<std::byte> b = good;
    f(b);
    cases.push_back({name, std::move(b), std::move(problem)});
  };
  mutate("magic", "bad magic", [](auto& b) { b[0] = std::byte{'X'}; });
  mutate("version1", "unsupported GGUF version 1", [](auto& b) { Poke<uint32_t>(b, 4, 1); });
  mutate("version4", "unsupported GGUF version 4", [](auto& b) { Poke<uint32_t>(b, 4, 4); });
  mutate("truncated_header", "remain in the file", [](auto& b) { b.resize(20); });
  mutate("truncated_infos", "remain in the file", [&](auto& b) { b.resize(FindBytes(good, "tensor_b") + 3); });
  mutate("huge_string", "needs 4611686018427387904 bytes", [&](auto& b) { Poke<uint64_t>(b, key_len_at, uint64_t{1} << 62); });
  mutate("kv_count", "metadata entries", [](auto& b) { Poke<uint64_t>(b, 16, uint64_t{1} << 60); });
  mutate("tensor_count", "tensor infos", [](auto& b) { Poke<uint64_t>(b, 8, uint64_t{1} << 55); });
  mutate("value_type", "unknown value type 99", [&](auto& b) { Poke<uint32_t>(b, FindBytes(good, "test.count") + 10, 99); });
  mutate("ggml_type", "unknown ggml type id 3", [&](auto& b) { Poke<uint32_t>(b, TensorInfoField(good, "tensor_a", "type"), 3); });
  mutate("ggml_type_names_tensor", "tensor 'tensor_a'", [&](auto& b) { Poke<uint32_t>(b, TensorInfoField(good, "tensor_a", "type"), 99); });
  mutate("misaligned", "not a multiple of the alignment 32", [&](auto& b) { Poke<uint64_t>(b, TensorInfoField(good, "tensor_b", "offset"), 4); });
  mutate("past_eof", "past the end", [&](auto& b) { Poke<uint64_t>(b, TensorInfoField(good, "tensor_b", "offset"), 1 << 20); });
  mutate("overlap", "overlap", [&](auto& b) { Poke<uint64_t>(b, TensorInfoField(good, "tensor_b", "offset"), 0); });
  mutate("rank5", "5 dimensions", [&](auto& b) { Poke<uint32_t>(b, TensorInfoField(good, "tensor_a", "n_dims"), 5); });
  mutate("dim_overflow", "size overflow", [&](auto& b) {
    const size_t ne = TensorInfoField(good, "tensor_b", "ne");
    Poke<uint64_t>(b, ne, uint64_t{1} << 40);
    Poke<uint64_t>(b, ne + 8, uint64_t{1} << 40);
  });
  mutate("duplicate_tensor", "duplicate tensor name", [&](auto& b) { b[FindBytes(good, "tensor_b") + 7] = std::byte{'a'}; });
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir + "/" + c.name + ".gguf";
    WriteBytes(path, c.bytes);
    ExpectError([&] { GgufFile f(path); }, path, c.problem);
  }

  // Values the writer encodes faithfully even when they lie: arrays claiming 2^40 elements, nesting too deep,
  // a duplicate key, a non-power-of-two alignment.
  auto expect_writer = [&](const char* name, const std::string& problem, auto&& build) {
    CAPTURE(name);
    GgufWriter w;
    build(w);
    const std::string path = dir + "/" + name + ".gguf";
    WriteBytes(path, w.Serialize());
    ExpectError([&] { GgufFile f(path); }, path, problem);
  };
  expect_writer("array_2_40", "1099511627776 elements", [](GgufWriter& w) {
    GgufValue v = GgufValue::Array<uint8_t>(GgufType::U8, {});
    v.count = uint64_t{1} << 40;  // no element bytes follow
    w.Set("big", v);
  });
  expect_writer("string_array_2_40", "1099511627776 elements", [](GgufWriter& w) {
    GgufValue v = GgufValue::StringArray({});
    v.count = uint64_t{1} << 40;
    w.Set("big", v);
  });
  expect_writer("nested_too_deep", "nested deeper than 8", [](GgufWriter& w) {
    GgufValue v = GgufValue::Array<int32_t>(GgufType::I32, {1});
    for (int i = 0; i < 10; ++i) v = GgufValue::ArrayOfArrays({v});
    w.Set("deep", v);
  });
  {
    // Duplicate keys: the writer replaces on Set, so splice a second copy of an entry into the bytes.
    GgufWriter w;
    w.Set("dup.key", GgufValue::U32(1));
    std::vector<std::byte> b = w.Serialize();
    const size_t entry = 24, entry_len = 8 + 7 + 4 + 4;
    b.insert(b.begin() + static_cast<std::ptrdiff_t>(entry + entry_len), b.begin() + entry, b.begin() + static_cast<std::ptrdiff_t>(entry + entry_len));
    Poke<uint64_t>(b, 16, 2);
    const std::string path = dir + "/duplicate_key.gguf";
    WriteBytes(path, b);
    ExpectError([&] { GgufFile f(path); }, path, "duplicate metadata key 'dup.key'");
  }
  {
    GgufWriter w;
    w.Set("general.alignment", GgufValue::U32(32));
    std::vector<std::byte> b = w.Serialize();
    Poke<uint32_t>(b, FindBytes(b, "general.alignment") + 17 + 4, 48);
    const std::string path = dir + "/alignment.gguf";
    WriteBytes(path, b);
    ExpectError([&] { GgufFile f(path); }, path, "48 is not a power of two");
  }
  // Typed accessors name the key.
  const std::string okp = dir + "/ok.gguf";
  WriteBytes(okp, good);
  const GgufFile f(okp);
  CHECK(f.GetU32("test.count") == 7);
  ExpectError([&] { f.GetString("test.count"); }, okp, "key 'test.count': expected a string, found u32");
  ExpectError([&] { f.GetU32("no.such.key"); }, okp, "key 'no.such.key': missing");
  ExpectError([&] { f.GetInt("test.count", 0, 5); }, okp, "outside [0, 5]");
}

TEST_CASE("gguf writer: every metadata type and a few tensors read back unchanged") {
  const std::string dir = TempDir("roundtrip");
  GgufWriter w;
  w.Set("general.alignment", GgufValue::U32(64));
  w.Set("k.u8", GgufValue::U8(250));
  w.Set("k.i8", GgufValue::I8(-120));
  w.Set("k.u16", GgufValue::U16(65000));
  w.Set("k.i16", GgufValue::I16(-32000));
  w.Set("k.u32", GgufValue::U32(4000000000u));
  w.Set("k.i32", GgufValue::I32(-2000000000));
  w.Set("k.f32", GgufValue::F32(0.15625f));
  w.Set("k.bool", GgufValue::Bool(true));
  w.Set("k.string", GgufValue::String("h\xC3\xA9llo\n"));
  w.Set("k.u64", GgufValue::U64(uint64_t{1} << 60));
  w.Set("k.i64", GgufValue::I64(-(int64_t{1} << 60)));
  w.Set("k.f64", GgufValue::F64(1e300));
  w.Set("k.arr.i32", GgufValue::Array(GgufType::I32, std::vector<int32_t>{3, -1, 7}));
  w.Set("k.arr.f32", GgufValue::Array(GgufType::F32, std::vector<float>{0.5f, -2.0f}));
  w.Set("k.arr.bool", GgufValue::Array(GgufType::BOOL, std::vector<uint8_t>{1, 0, 1}));
  w.Set("k.arr.str", GgufValue::StringArray({"a", "", "\xE2\x96\x81 \xE2\x96\x81"}));
  w.Set("k.arr.empty", GgufValue::Array(GgufType::U64, std::vector<uint64_t>{}));
  w.Set("k.arr.nested", GgufValue::ArrayOfArrays({GgufValue::Array(GgufType::I16, std::vector<int16_t>{1, 2}),
                                                  GgufValue::StringArray({"x"})}));
  std::vector<std::byte> f32(4 * 6), bf(2 * 64 * 2), q8(34 * 2), empty;
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = std::byte(i * 7);
  for (size_t i = 0; i < bf.size(); ++i) bf[i] = std::byte(i * 3);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = std::byte(i);
  q8[0] = q8[34] = std::byte{0};  // finite f16 scales
  w.AddTensor("t.f32", Type::F32, Shape{2, 3}, f32);
  w.AddTensor("t.bf16", Type::BF16, Shape{2, 1, 64}, bf);
  w.AddTensor("t.q8", Type::Q8_0, Shape{2, 32}, q8);
  w.AddTensor("t.empty", Type::F32, Shape{0}, empty);
  const std::string path = dir + "/all.gguf";
  w.Write(path);

  const GgufFile f(path);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
  CHECK(f.GetInt("k.u8") == 250);
  CHECK(f.GetInt("k.i8") == -120);
  CHECK(f.GetInt("k.u16") == 65000);
  CHECK(f.GetInt("k.i16") == -32000);
  CHECK(f.GetU32("k.u32") == 4000000000u);
  CHECK(f.GetI32("k.i32") == -2000000000);
  CHECK(f.GetF32("k.f32") == 0.15625f);
  CHECK(f.GetBool("k.bool"));
  CHECK(f.GetString("k.string") == "h\xC3\xA9llo\n");
  CHECK(f.GetU64("k.u64") == uint64_t{1} << 60);
  CHECK(f.GetInt("k.i64") == -(int64_t{1} << 60));
  CHECK(f.GetF64("k.f64") == 1e300);
  CHECK(f.Get("k.u8").type == GgufType::U8);
  CHECK(f.Get("k.f64").type == GgufType::F64);
  CHECK(f.GetIntArray("k.arr.i32") == std::vector<int64_t>{3, -1, 7});
  CHECK(f.GetF32Array("k.arr.f32") == std::vector<float>{0.5f, -2.0f});
  CHECK(f.GetBoolArray("k.arr.bool") == std::vector<bool>{true, false, true});
  CHECK(f.GetStringArray("k.arr.str") == std::vector<std::string>{"a", "", "\xE2\x96\x81 \xE2\x96\x81"});
  CHECK(f.GetArray("k.arr.empty").count == 0);
  CHECK(f.GetArray("k.arr.empty").elem_type == GgufType::U64);
  const GgufValue& nested = f.GetArray("k.arr.nested");
  REQUIRE(nested.arrays.size() == 2);
  CHECK(nested.arrays[0].elem_type == GgufType::I16);
  CHECK(nested.arrays[0].count == 2);
  CHECK(nested.arrays[1].strings == std::vector<std::string>{"x"});
  CHECK(f.metadata().size() == 19);
  REQUIRE(f.tensors().size() == 4);
  const TensorView* t = f.FindTensor("t.f32");
  REQUIRE(t != nullptr);
  CHECK(t->shape == Shape{2, 3});
  CHECK(std::memcmp(t->data, f32.data(), f32.size()) == 0);
  t = f.FindTensor("t.bf16");
  CHECK(t->shape == Shape{2, 1, 64});
  CHECK(t->type == Type::BF16);
  CHECK(std::memcmp(t->data, bf.data(), bf.size()) == 0);
  t = f.FindTensor("t.q8");
  CHECK(t->type == Type::Q8_0);
  CHECK(std::memcmp(t->data, q8.data(), q8.size()) == 0);
  CHECK(f.FindTensor("t.empty")->nbytes == 0);
  for (const GgufTensorInfo& i : f.tensor_infos()) CHECK(i.offset % 64 == 0);
  // ggml order on disk: the writer reverses the shape, as llama.cpp's reader expects (ne[0] = 3 for [2, 3]).
  const std::vector<std::byte> raw = w.Serialize();
  uint64_t ne0;
  std::memcpy(&ne0, raw.data() + TensorInfoField(raw, "t.f32", "ne"), 8);
  CHECK(ne0 == 3);
}

}  // namespace g4_test_file_formats
