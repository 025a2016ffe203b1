// Memory planning (session/memory_plan.hpp): the bytes it counts against what a constructed KVCache holds, the
// buffers a forward pass grows and the safetensors headers' own sizes, and against the 12B's numbers worked out by
// hand from ../shared/spec/gemma4.md (sections 1.1 and 9); the refusal's numbers and suggestions on an injected
// "available" figure; the meminfo / cgroup parsers on sample texts and a fake /proc and /sys/fs/cgroup.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "g4/session/memory_plan.hpp"
#include "support/demo_model.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"
#include "support/test_data.hpp"

namespace g4_test_memory_plan {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

// The 12B by hand (spec 1.1): 8 full layers of 1 KV head x 512, 40 sliding layers of 8 KV heads x 256 with a ring
// of window 1024 + max_chunk 512 - 1 = 1535 slots; K and V each. `row256` / `row512`: bytes of a cached row.
uint64_t Cache12B(uint64_t context, uint64_t row256, uint64_t row512) {
  const uint64_t ring = std::min<uint64_t>(context, 1535);
  return 8 * 2 * 1 * context * row512 + 40 * 2 * 8 * ring * row256;
}

// One slot's buffers for the 12B at 512 rows and one logits row (decoder_layer.hpp's LayerScratch, gemma4.hpp's
// RunRows), in floats: q and attn 512 x 16 heads x 512; k and v 512 x 8 x 256; xn, t 512 x 3840; gate and up
// 512 x 15360; the pass's x and xn 512 x 3840; the head's input row, final hidden row and logits 3840 + 3840 + 262144.
constexpr uint64_t kBuffers12B = 4 * (512 * (2 * 16 * 512 + 2 * 8 * 256 + 2 * 3840 + 2 * 15360) + 2 * 512 * 3840 + (2 * 3840 + 262144));

MemoryFlags CliFlags() { return {"--ctx-size", "--cache-type", "--parallel", "--no-memory-check"}; }

// Bytes of the tensors in a safetensors file, from its JSON header's data_offsets.
uint64_t SafetensorsTensorBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  const nlohmann::json tensors = nlohmann::json::parse(header);
  uint64_t bytes = 0;
  for (const auto& [name, t] : tensors.items())
    if (name != "__metadata__") bytes += t["data_offsets"][1].get<uint64_t>() - t["data_offsets"][0].get<uint64_t>();
  return bytes;
}

// Resident bytes of this process (/proc/self/statm's second field, in pages).
uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

void Write(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("the 12B's KV cache at 256K tokens is the spec's sizes worked out by hand, for every cache type") {
  const Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  CHECK(KVCacheBytes(cfg, 262144, 512, Type::F32) == Cache12B(262144, 256 * 4, 512 * 4));
  CHECK(KVCacheBytes(cfg, 262144, 512, Type::F32) == 9595912192);  // full layers 8 GiB + rings 0.94 GiB
  CHECK(KVCacheBytes(cfg, 262144, 512, Type::F16) == Cache12B(262144, 256 * 2, 512 * 2));
  CHECK(KVCacheBytes(cfg, 1000, 512, Type::F32) == Cache12B(1000, 256 * 4, 512 * 4));  // rings shorter than 1535
  CHECK(KVCacheBytes(cfg, 262144, 512, KVTypes(Type::F16, Type::F32)) == Cache12B(262144, 256 * 3, 512 * 3));
  // ggml blocks of 32 values: Q8_0 34 bytes, Q4_0 18, where kv_cache.hpp takes them.
  if (IsKVCacheType(Type::Q8_0)) CHECK(KVCacheBytes(cfg, 262144, 512, Type::Q8_0) == Cache12B(262144, 8 * 34, 16 * 34));
  if (IsKVCacheType(Type::Q4_0)) CHECK(KVCacheBytes(cfg, 262144, 512, Type::Q4_0) == Cache12B(262144, 8 * 18, 16 * 18));
}

TEST_CASE("the planned KV bytes are the buffers a constructed KVCache holds, shared layers owning nothing") {
  Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  for (KVTypes types : {KVTypes(Type::F32), KVTypes(Type::F16), KVTypes(Type::F16, Type::F32)})
    for (size_t context : {1, 100, 1535, 1536, 40000})
      for (size_t chunk : {1, 64, 512}) {
        CAPTURE(context);
        CAPTURE(chunk);
        const KVCache cache(cfg, context, chunk, types);
        uint64_t held = 0;
        for (int i = 0; i < cache.n_layers(); ++i)
          if (cache.owns(i)) held += cache.layer(i).k.size() + cache.layer(i).v.size();
        CHECK(KVCacheBytes(cfg, context, chunk, types) == held);
      }
  cfg.num_kv_shared_layers = 18;  // the last 18 layers read layers 29 (full) and 28 (sliding)
  const KVCache shared(cfg, 4096, 512, Type::F32);
  uint64_t held = 0;
  for (int i = 0; i < shared.n_layers(); ++i)
    if (shared.owns(i)) held += shared.layer(i).k.size() + shared.layer(i).v.size();
  CHECK(held == 5 * 2 * 4096 * 512 * 4 + 25 * 2 * 8 * 1535 * 256 * 4);  // 5 full and 25 sliding layers own caches
  CHECK(KVCacheBytes(cfg, 4096, 512, Type::F32) == held);
}

TEST_CASE("caches stay lazily committed: a 256K-token F32 cache of the 12B (8.9 GiB) takes almost no resident memory") {
  const uint64_t before = ResidentBytes();
  const KVCache cache(Gemma4Config::Gemma4_12B(), 262144, 512, Type::F32);
  CHECK(cache.bytes() == 9595912192);
  CHECK(ResidentBytes() - std::min(ResidentBytes(), before) < 64 * (uint64_t{1} << 20));
}

TEST_CASE("the planned buffers are what a forward pass of the demo grows its LayerScratch to") {
  testing::DemoModel demo;
  const Gemma4& model = demo.lm.model();
  const Gemma4Config& cfg = model.config();
  for (bool all_logits : {false, true}) {
    CAPTURE(all_logits);
    Sequence seq = model.NewSequence(200, 64);
    std::vector<int32_t> tokens(150);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(2 + i * 37 % 8000);
    ForwardOutput out;
    out.all_logits = all_logits;
    model.Forward(seq, {tokens}, out);  // chunks of 64, 64, 22
    const LayerScratch& s = seq.scratch;
    const uint64_t floats = s.q.size() + s.attn.size() + s.k.size() + s.v.size() + s.t.size() + s.xn.size() + s.gate.size() + s.up.size();
    CHECK(floats == LayerScratchFloats(cfg, 64, all_logits ? 64 : 1));
  }
  // The 12B's by hand (kBuffers12B).
  CHECK(BufferBytes(Gemma4Config::Gemma4_12B(), 512, 1) == kBuffers12B);
}

TEST_CASE("the weights are every tensor's bytes, as the safetensors headers give them") {
  const std::string dir = testing::DataDir() + "/demo";
  uint64_t expected = 0;
  for (const char* shard : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"})
    expected += SafetensorsTensorBytes(dir + "/" + shard);
  CHECK(expected > 20'000'000);  // 28.2 MB: the headers were read
  CHECK(WeightBytes(Checkpoint(dir)) == expected);
  const MemoryPlan plan = PlanMemory(testing::DemoFiles(), MemoryShape{});
  CHECK(plan.weights == expected);
  CHECK(plan.cache == KVCacheBytes(plan.config, 4096, 512, Type::F32));
  CHECK(plan.total() == plan.weights + plan.weight_copies + plan.cache + plan.buffers);
}

TEST_CASE("a context that does not fit is refused with the numbers, the largest --ctx-size and a cheaper --cache-type") {
  const Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  const uint64_t weights = 6'000'000'000, available = 11 * kGiB;
  const MemoryPlan plan = PlanMemory(cfg, weights, 0, {262144, 512, Type::F32, 1, 512, 1});
  CHECK(plan.buffers == kBuffers12B);
  CHECK(plan.total() == weights + 9595912192 + kBuffers12B);  // 15.73e9 bytes = 14.65 GiB
  // The largest context: the rings are full (1535 slots), each more token takes 8 x 2 x 512 x 4 bytes.
  const uint64_t rings = 40 * 2 * 8 * 1535 * 256 * 4;
  const uint64_t largest = (available - weights - kBuffers12B - rings) / (8 * 2 * 512 * 4) / 256 * 256;
  CHECK(largest == 142336);
  CHECK(LargestFittingContext(plan, Type::F32, available) == largest);

  const std::string what = testing::ErrorOf([&] { RequireMemoryFits(plan, {available, "test"}, CliFlags()); });
  CAPTURE(what);
  for (const char* part : {"--ctx-size: 262144 tokens need 14.65 GiB of memory", "weights 5.59 GiB", "KV cache 8.94 GiB (f32)",
                           "buffers 131.0 MiB", "11.00 GiB is available (test)",
                           "With --cache-type f32 the largest --ctx-size that fits is 142336.",
                           "--cache-type f16 fits 262144 tokens.",  // 6e9 + 4.80e9 + buffers = 10.19 GiB
                           "(--no-memory-check skips this check.)"})
    CHECK_MESSAGE(what.find(part) != std::string::npos, part);
  try {
    RequireMemoryFits(plan, {available, "test"}, CliFlags());
  } catch (const Error& e) {
    CHECK(e.where() == "--ctx-size");
  }
  CHECK_FALSE(MemoryShortfall(plan, {plan.total(), "test"}).has_value());
  CHECK(MemoryShortfall(plan, {plan.total() - 1, "test"}).has_value());

  // Weights alone over the figure: no context fits, and no cache type either.
  const std::string none = *MemoryShortfall(plan, {5 * kGiB, "test"}, CliFlags());
  CHECK(none.find("No --ctx-size fits with --cache-type f32.") != std::string::npos);
  CHECK(none.find("fits 262144") == std::string::npos);
}

TEST_CASE("several slots: the cache and buffers count per slot, and fewer --parallel slots are suggested") {
  const Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  SchedulerOptions so;
  so.slots = 4;
  so.context = 32768;
  const MemoryShape shape = MemoryShape::For(so);
  CHECK(shape.pass_rows == 4 + 128 + 512);  // decode rows + the prefill budget + an image block of up to max_chunk
  const MemoryPlan plan = PlanMemory(cfg, 6'000'000'000, 0, shape);
  CHECK(plan.cache == Cache12B(32768, 256 * 4, 512 * 4));
  CHECK(plan.total() == 6'000'000'000 + 4 * (plan.cache + plan.buffers));
  // Room for two slots and a half: two fit.
  const uint64_t available = 6'000'000'000 + 2 * (plan.cache + plan.buffers) + (plan.cache + plan.buffers) / 2;
  const std::string what = *MemoryShortfall(plan, {available, "test"}, CliFlags());
  CAPTURE(what);
  CHECK(what.find("32768 tokens in each of 4 slots need") != std::string::npos);
  CHECK(what.find(" x 4 slots") != std::string::npos);
  CHECK(what.find("--parallel 2 fits 32768 tokens each.") != std::string::npos);
}

TEST_CASE("a context over the model's positions is refused naming the flag, before any plan") {
  testing::ExpectError([] { PlanMemory(Gemma4Config::Gemma4_12B(), 0, 0, {300000, 512, Type::F32, 1, 512, 1}, CliFlags()); },
                       "--ctx-size", "300000 tokens requested; the model supports at most 262144");
}

TEST_CASE("MemAvailable, byte counts, memory.stat and the cgroup v2 path parse from sample texts") {
  const std::string meminfo = "MemTotal:       24683784 kB\nMemFree:          512000 kB\nMemAvailable:   24106228 kB\nBuffers: 1 kB\n";
  CHECK(ParseMemAvailable(meminfo) == uint64_t{24106228} * 1024);
  CHECK(ParseMemAvailable("MemAvailable: 7 kB") == 7 * 1024);
  for (const char* bad : {"", "MemTotal: 5 kB\n", "MemAvailable:\n", "MemAvailable: 12 MB\n", "MemAvailable: x kB",
                          "MemAvailable: 99999999999999999999 kB", "MemAvailable: 18014398509481984 kB"})
    CHECK_MESSAGE(!ParseMemAvailable(bad).has_value(), bad);

  CHECK(ParseByteCount("max\n") == std::nullopt);
  CHECK(ParseByteCount("1073741824\n") == kGiB);
  CHECK(ParseByteCount("16G") == 16 * kGiB);
  CHECK(ParseByteCount(" 16GiB ") == 16 * kGiB);
  CHECK(ParseByteCount("512m") == 512u << 20);
  CHECK(ParseByteCount("2KB") == 2048);
  for (const char* bad : {"", "G", "1.5G", "-1", "16X", "16GB!", "18446744073709551616", "16777216T"})
    CHECK_MESSAGE(!ParseByteCount(bad).has_value(), bad);
  CHECK(ParseByteCount("18446744073709551615") == UINT64_MAX);

  CHECK(ParseMemoryStat("anon 100\nfile 300\ninactive_file 200\nactive_file 100\n", "inactive_file") == 200);
  CHECK(ParseMemoryStat("anon 100\n", "inactive_file") == 0);

  CHECK(ParseCgroupV2Path("0::/user.slice/session-1.scope\n") == "/user.slice/session-1.scope");
  CHECK(ParseCgroupV2Path("12:memory:/docker/abc\n0::/\n") == "/");
  CHECK(ParseCgroupV2Path("4:memory:/process_api/x\n1:cpu:/\n") == std::nullopt);  // cgroup v1 only
}

TEST_CASE("the machine's available memory: MemAvailable, lowered by the tightest cgroup v2 limit above the process") {
  const std::filesystem::path root = testing::TempDir("memory_plan");
  const std::filesystem::path proc = root / "proc", cg = root / "cgroup";
  Write(proc / "meminfo", "MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n");  // 8 GiB
  CHECK(MachineAvailableMemory(proc, cg, nullptr).bytes == 8 * kGiB);
  CHECK(MachineAvailableMemory(proc, cg, nullptr).source.find("MemAvailable") != std::string::npos);

  Write(proc / "self" / "cgroup", "0::/a/b\n");
  Write(cg / "a" / "b" / "memory.max", "max\n");  // no limit here
  Write(cg / "a" / "b" / "memory.current", "1073741824\n");
  Write(cg / "a" / "memory.max", "4294967296\n");  // 4 GiB, using 3 GiB of which 1 GiB is inactive file pages
  Write(cg / "a" / "memory.current", "3221225472\n");
  Write(cg / "a" / "memory.stat", "anon 2147483648\ninactive_file 1073741824\n");
  AvailableMemory a = MachineAvailableMemory(proc, cg, nullptr);
  CHECK(a.bytes == 2 * kGiB);
  CHECK(a.source.find((cg / "a" / "memory.max").string()) != std::string::npos);

  Write(proc / "meminfo", "MemAvailable: 1048576 kB\n");  // 1 GiB: the machine is now the tighter
  CHECK(MachineAvailableMemory(proc, cg, nullptr).bytes == kGiB);

  Write(cg / "a" / "memory.current", "5368709120\n");  // over its limit: nothing left, never a wrap-around
  Write(proc / "meminfo", "MemAvailable: 8388608 kB\n");
  CHECK(MachineAvailableMemory(proc, cg, nullptr).bytes == 0);

  CHECK(MachineAvailableMemory(proc, cg, "16G").bytes == 16 * kGiB);
  CHECK(MachineAvailableMemory(proc, cg, "16G").source == "G4_AVAILABLE_MEMORY");
  testing::ExpectError([&] { MachineAvailableMemory(proc, cg, "lots"); }, "G4_AVAILABLE_MEMORY", "'lots' is not a byte count");

  // This machine's own figure is a real one.
  const AvailableMemory here = MachineAvailableMemory("/proc", "/sys/fs/cgroup", nullptr);
  CHECK(here.bytes > 0);
  CHECK(here.bytes < UINT64_MAX);
}

TEST_CASE("the cache types offered are KVCache's, most bytes per value first") {
  const std::vector<Type> types = KVCacheTypes();
  REQUIRE(types.size() >= 2);
  CHECK(types[0] == Type::F32);
  CHECK(types[1] == Type::F16);
  for (Type t : types) CHECK(IsKVCacheType(t));
  const Gemma4Config cfg = Gemma4Config::Gemma4_12B();
  for (size_t i = 1; i < types.size(); ++i) CHECK(KVCacheBytes(cfg, 4096, 512, types[i]) < KVCacheBytes(cfg, 4096, 512, types[i - 1]));
}

}  // namespace g4_test_memory_plan
