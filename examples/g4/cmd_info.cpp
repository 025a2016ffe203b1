// g4 info FILE_OR_DIR [--mmproj F] [--tensors]: what a checkpoint holds (architecture, config, tensor counts and
// bytes per type), after the same checks the runtime does when it loads it. An mmproj GGUF alone (`clip`) is
// described as its vision and audio embedders.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "args.hpp"
#include "command.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/gguf_config.hpp"
#include "g4/io/tensor_names.hpp"
#include "g4/io/weight_binder.hpp"

namespace g4cli::cmd_info {

using namespace g4;

const char* kHelp = R"(usage: g4 info MODEL [options]

MODEL is a folder with config.json and safetensors (single or sharded), a .safetensors file next to a
config.json, or a .gguf. Prints the architecture, the config, the tensor count and bytes per type. An mmproj
.gguf alone (architecture clip) prints its vision and audio embedders: sizes, and each tensor checked against
the shape the runtime binds.

options:
  --mmproj FILE   vision/audio embedders (GGUF mmproj) for a GGUF model
  --tensors       list every tensor (name, type, shape, bytes, file)
)";

std::string Ids(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s.empty() ? "-" : s;
}

void PrintConfig(const Gemma4Config& c) {
  std::printf("architecture      %s\n", c.architecture.c_str());
  std::printf("vocab             %d\n", c.vocab_size);
  std::printf("hidden            %d\n", c.hidden_size);
  std::printf("layers            %d\n", c.n_layers);
  std::printf("heads             %d\n", c.n_heads);
  std::printf("intermediate      %d\n", c.intermediate_size);
  std::printf("sliding window    %d\n", c.sliding_window);
  std::printf("max positions     %d\n", c.max_position);
  std::printf("rms eps           %g\n", static_cast<double>(c.rms_eps));
  std::printf("final softcap     %g\n", static_cast<double>(c.final_softcap));
  std::printf("kv shared layers  %d\n", c.num_kv_shared_layers);
  std::printf("layer  kind     head_dim  kv_heads  rope_theta  rope         k_eq_v\n");
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerConfig& l = c.layers[static_cast<size_t>(i)];
    char rope[32];
    if (l.rope_proportional) {
      std::snprintf(rope, sizeof rope, "prop %.2f", static_cast<double>(l.rope_partial));
    } else {
      std::snprintf(rope, sizeof rope, "default");
    }
    std::printf("%5d  %-7s  %8d  %8d  %10g  %-11s  %s\n", i, l.kind == AttentionKind::kFull ? "full" : "sliding", l.head_dim,
                l.n_kv_heads, static_cast<double>(l.rope_theta), rope, l.k_eq_v ? "yes" : "no");
  }
  const SpecialTokens& t = c.tokens;
  std::printf("tokens            pad %d bos %d eos %d stop [%s] suppress [%s]\n", t.pad, t.bos, t.eos, Ids(t.stop_ids).c_str(),
              Ids(t.suppress).c_str());
  std::printf("media tokens      boi %d eoi %d image %d boa %d eoa %d audio %d video %d\n", t.boi, t.eoi, t.image, t.boa, t.eoa,
              t.audio, t.video);
  if (c.vision)
    std::printf("vision            patch %d px, mm_embed %d, posemb %d, output %d\n", c.vision->patch_px, c.vision->mm_embed_dim,
                c.vision->posemb_size, c.vision->output_dim);
  if (c.audio) std::printf("audio             frame %d samples, output %d\n", c.audio->frame_samples, c.audio->output_dim);
  if (c.assistant)
    std::printf("assistant         backbone hidden %d, ordered embeddings %s, centroids %d, top-k %d\n", c.assistant->backbone_hidden,
                c.assistant->use_ordered_embeddings ? "yes" : "no", c.assistant->num_centroids, c.assistant->centroid_top_k);
}

void PrintTensorTotals(const std::vector<TensorRecord>& records) {
  struct Count { size_t n = 0; uint64_t bytes = 0; };
  std::map<std::string, Count> by_type;
  uint64_t total = 0;
  for (const TensorRecord& r : records) {
    Count& c = by_type[std::string(TypeName(r.type))];
    ++c.n;
    c.bytes += r.bytes;
    total += r.bytes;
  }
  std::printf("tensors           %zu, %.2f MiB\n", records.size(), static_cast<double>(total) / (1 << 20));
  for (const auto& [type, c] : by_type)
    std::printf("  %-6s %6zu tensors  %12.2f MiB\n", type.c_str(), c.n, static_cast<double>(c.bytes) / (1 << 20));
}

void PrintTensor(const TensorView& t) {
  std::printf("    %-32s %-5s %s\n", t.name.c_str(), std::string(TypeName(t.type)).c_str(), t.shape.str().c_str());
}

// An mmproj file alone: its embedders from the clip.* keys, every tensor bound with the shape and kind the
// runtime's Checkpoint asks for (so a file this prints is one `--mmproj` loads, given a text model of its width).
int DescribeMmproj(const GgufFile& f, bool list_tensors) {
  const MmprojConfig m = ReadGgufMmproj(f);
  WeightBinder b(f.path());
  b.AddSource(f.tensors(), f.path());
  std::vector<TensorView> vision, audio;
  if (m.vision)
    for (const VisionTensorName& n : kVisionTensorNames) vision.push_back(b.Need(n.gguf, VisionTensorShape(n.member, *m.vision, true), n.kind));
  if (m.audio) audio.push_back(b.Need(kAudioProjectionName.gguf, Shape{m.audio->output_dim, m.audio->frame_samples}, TensorKind::kMatrix));
  b.Finish();  // every problem at once: missing, mis-shaped and unexpected tensors

  std::printf("model             %s (GGUF mmproj, architecture clip)\n", f.path().c_str());
  std::printf("gguf version      %u, alignment %u\n", f.version(), f.alignment());
  if (m.vision) {
    const VisionConfig& v = *m.vision;
    std::printf("vision embedder   projector %s\n", f.GetString("clip.vision.projector_type").c_str());
    std::printf("  patch           %d x %d px (%d px patches merged %dx%d), %d values\n", v.patch_px, v.patch_px,
                v.patch_px / kGemma4VisionMerge, kGemma4VisionMerge, kGemma4VisionMerge, v.patch_dim());
    std::printf("  embedding       %d\n", v.mm_embed_dim);
    std::printf("  positions       %d per axis\n", v.posemb_size);
    std::printf("  output          %d\n", v.output_dim);
    std::printf("  tensors         %zu\n", vision.size());
    for (const TensorView& t : vision) PrintTensor(t);
  } else {
    std::printf("vision embedder   none\n");
  }
  if (m.audio) {
    std::printf("audio embedder    projector %s\n", f.GetString("clip.audio.projector_type").c_str());
    std::printf("  frame           %d samples\n", m.audio->frame_samples);
    std::printf("  output          %d\n", m.audio->output_dim);
    std::printf("  tensors         %zu\n", audio.size());
    for (const TensorView& t : audio) PrintTensor(t);
  } else {
    std::printf("audio embedder    none\n");
  }
  std::vector<TensorRecord> records;
  for (const TensorView& t : f.tensors()) records.push_back({t.name, t.type, t.shape, t.nbytes, f.path()});
  PrintTensorTotals(records);
  if (list_tensors)
    for (const TensorView& t : f.tensors()) PrintTensor(t);
  return 0;
}

int RunInfo(std::vector<std::string> argv) {
  for (const std::string& a : argv)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    }
  const g4cli::Args args(argv, {"--mmproj"}, {"--tensors"});
  if (args.positional().size() != 1) {
    std::fputs(kHelp, stderr);
    return 2;
  }
  const std::string path = args.positional()[0];
  if (path.ends_with(".gguf") && !args.has("--mmproj")) {
    const GgufFile f(path);
    if (f.Has("general.architecture") && f.GetString("general.architecture") == "clip")
      return DescribeMmproj(f, args.has("--tensors"));
  }
  const Checkpoint ck(path, args.get("--mmproj"));
  std::printf("model             %s (%s)\n", ck.path().c_str(), ck.is_gguf() ? "GGUF" : "safetensors");
  if (ck.gguf()) std::printf("gguf version      %u, alignment %u\n", ck.gguf()->version(), ck.gguf()->alignment());
  PrintConfig(ck.config());
  PrintTensorTotals(ck.tensors());
  if (args.has("--tensors"))
    for (const TensorRecord& r : ck.tensors())
      std::printf("  %-56s %-5s %-22s %12llu  %s\n", r.name.c_str(), std::string(TypeName(r.type)).c_str(), r.shape.str().c_str(),
                  static_cast<unsigned long long>(r.bytes), r.file.c_str());
  return 0;
}

const g4cli::RegisterCommand reg("info", "describe a checkpoint (safetensors or GGUF): config, tensors, types", RunInfo);

}  // namespace g4cli::cmd_info
