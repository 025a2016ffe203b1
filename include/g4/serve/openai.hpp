// The OpenAI API (chat completions, completions) translated to and from the session layer, with no HTTP in it:
// a request body is checked field by field (every malformed one is an ApiError naming the field: an HTTP status
// and OpenAI's {"error": {"message", "type", "param", "code"}}), media arrive decoded (data: URLs of images,
// base64 WAV; a video's bytes, decoded with FFmpeg when embedded), and answers leave as OpenAI's JSON objects or
// as its server-sent events, chunk for chunk.
//
// A checked chat request becomes what Session::RespondTo takes: the request JSON (its media parts reduced to
// {"type": "image"} / {"type": "audio"} / {"type": "video"}) and the decoded media in order; the session renders the model's chat
// template and parses the answer (content, reasoning, tool calls) into the MessageDeltas that stream here.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/image.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/resample.hpp"
#include "g4/media/video.hpp"
#include "g4/media/wav.hpp"
#include "g4/session/session.hpp"
#include "g4/text/tool_calls.hpp"

namespace g4::serve {

using Json = nlohmann::ordered_json;

// A request the server refuses: the HTTP status and OpenAI's error object.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = {}, std::string type = {}, std::string code = {})
      : std::runtime_error(message), status_(status), param_(std::move(param)),
        type_(!type.empty() ? std::move(type) : status >= 500 ? "server_error" : "invalid_request_error"), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, type_, code_;
};

[[noreturn]] inline void Bad(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

inline Json ErrorJson(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type()},
            {"param", e.param().empty() ? Json(nullptr) : Json(e.param())},
            {"code", e.code().empty() ? Json(nullptr) : Json(e.code())}}}};
}

// Every JSON text the server writes: invalid UTF-8 (a model may stop inside a character) becomes U+FFFD.
inline std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// nlohmann's parser recurses once per nesting level: a body nested deeper than this is refused before parsing.
inline constexpr size_t kMaxJsonDepth = 64;

// A request body: a JSON object, or a 400 that says what is wrong.
inline Json ParseBody(std::string_view body) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) Bad("", "request body nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) Bad("", "request body is not valid JSON");
  if (!j.is_object()) Bad("", "request body must be a JSON object");
  return j;
}

// ---- field readers: a wrong type is a 400 naming the field ----

namespace detail {

inline const Json* Find(const Json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

inline std::optional<double> Number(const Json& obj, const char* key, double lo, double hi) {
  const Json* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) Bad(key, std::string(key) + " must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    Bad(key, std::string(key) + " must be in [" + Json(lo).dump() + ", " + Json(hi).dump() + "], got " + v->dump());
  return d;
}

inline std::optional<int64_t> Integer(const Json& obj, const char* key, int64_t lo, int64_t hi) {
  const Json* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!(d == std::floor(d) && d >= static_cast<double>(lo) && d <= static_cast<double>(hi)))
      Bad(key, std::string(key) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return static_cast<int64_t>(d);
  }
  if (!v->is_number_integer()) Bad(key, std::string(key) + " must be an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    Bad(key, std::string(key) + " must be at most " + std::to_string(hi));
  const int64_t i = v->is_number_unsigned() ? static_cast<int64_t>(v->get<uint64_t>()) : v->get<int64_t>();
  if (i < lo || i > hi) Bad(key, std::string(key) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(i));
  return i;
}

inline std::optional<bool> Bool(const Json& obj, const char* key) {
  const Json* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) Bad(key, std::string(key) + " must be a boolean");
  return v->get<bool>();
}

inline std::optional<std::string> String(const Json& obj, const char* key, const std::string& param) {
  const Json* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) Bad(param, param + " must be a string");
  return v->get<std::string>();
}

inline int Base64Value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

}  // namespace detail

// Standard or URL-safe base64, padded or not; whitespace (line breaks of MIME encoders) is skipped.
inline std::vector<std::byte> DecodeBase64(std::string_view s, const std::string& param) {
  std::vector<std::byte> out;
  out.reserve(s.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    const int v = detail::Base64Value(c);
    if (v < 0 || pad > 0) Bad(param, param + " is not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::byte>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2 || bits >= 6) Bad(param, param + " is not valid base64");
  return out;
}

// ---- requests ----

// What the loaded model can take, for checks made before a request is queued.
struct Capabilities {
  bool vision = false, audio = false;
  bool video = false;          // this g4 was built with FFmpeg (G4_HAVE_VIDEO)
  bool chat_template = false;  // tools and tool turns need the model's (or a given) Jinja chat template
  std::filesystem::path local_media;  // file:// media under this canonical folder (empty: none)
  size_t local_media_max_bytes = 64u << 20;
};

// A decoded image or audio clip of a chat request, or a video's bytes, embedded later on the handler's thread
// (Engine::Submit); a video is decoded only then, so that the context check before it knows the model's budget.
struct InputMedia {
  Part::Kind kind = Part::Kind::kImage;
  RgbImage image;
  int image_budget = kDefaultImageBudget;
  std::vector<float> audio;        // 16 kHz mono
  std::vector<std::byte> video;    // the file as sent (any container FFmpeg opens)
  std::string param;               // the part, "messages[i].content[j]", for errors found when it is embedded
};

struct ChatRequest {
  Json request;                    // for Session::RespondTo: messages, tools, enable_thinking
  std::vector<InputMedia> media;   // in the order of the request's media parts
  VideoOptions video;              // how its videos are sampled: mm_processor_kwargs num_frames or fps (vLLM's field)
  GenerateParams params;
  bool stream = false, include_usage = false;
};

struct CompletionRequest {
  std::string prompt;
  GenerateParams params;
  bool stream = false, include_usage = false;
};

namespace detail {

// The parameters chat and completions share (OpenAI's names; top_k and min_p as llama-server takes them).
inline void ParseCommon(const Json& body, GenerateParams& p, bool& stream, bool& include_usage) {
  if (const Json* m = Find(body, "model"); m && !m->is_string()) Bad("model", "model must be a string");
  // g4 run's defaults where the request says nothing (Gemma's recommended sampling).
  p.sampling.temperature = static_cast<float>(Number(body, "temperature", 0, 2).value_or(1.0));
  p.sampling.top_p = static_cast<float>(Number(body, "top_p", 0, 1).value_or(0.95));
  if (p.sampling.top_p <= 0) Bad("top_p", "top_p must be greater than 0");
  p.sampling.top_k = static_cast<int32_t>(Integer(body, "top_k", 0, 1 << 30).value_or(64));
  p.sampling.min_p = static_cast<float>(Number(body, "min_p", 0, 1).value_or(0.0));
  p.sampling.presence_penalty = static_cast<float>(Number(body, "presence_penalty", -2, 2).value_or(0.0));
  p.sampling.frequency_penalty = static_cast<float>(Number(body, "frequency_penalty", -2, 2).value_or(0.0));
  if (const auto seed = Integer(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    p.sampling.seed = static_cast<uint64_t>(*seed);
  else
    p.sampling.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  const auto max_tokens = Integer(body, "max_tokens", 1, std::numeric_limits<int32_t>::max());
  const auto max_completion = Integer(body, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
  p.max_tokens = max_completion   ? static_cast<size_t>(*max_completion)
                 : max_tokens     ? static_cast<size_t>(*max_tokens)
                                  : std::numeric_limits<size_t>::max();  // the rest of the context
  if (Integer(body, "n", 1, std::numeric_limits<int32_t>::max()).value_or(1) != 1) Bad("n", "n must be 1: one choice per request");
  if (const Json* s = Find(body, "stop")) {
    std::vector<std::string> stops;
    if (s->is_string()) {
      stops.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > 16) Bad("stop", "stop takes at most 16 strings");
      for (const Json& x : *s) {
        if (!x.is_string()) Bad("stop", "stop must be a string or a list of strings");
        stops.push_back(x.get<std::string>());
      }
    } else {
      Bad("stop", "stop must be a string or a list of strings");
    }
    for (const std::string& x : stops)
      if (x.empty()) Bad("stop", "stop strings must not be empty");
    p.stop_strings = std::move(stops);
  }
  stream = Bool(body, "stream").value_or(false);
  if (const Json* so = Find(body, "stream_options")) {
    if (!so->is_object()) Bad("stream_options", "stream_options must be an object");
    if (!stream) Bad("stream_options", "stream_options is only allowed when stream is true");
    include_usage = Bool(*so, "include_usage").value_or(false);
  }
  if (const Json* lb = Find(body, "logit_bias"); lb && !(lb->is_object() && lb->empty()))
    Bad("logit_bias", "logit_bias is not supported yet");
}

// The bytes a media URL names: a base64 data: URL, or, where the server was started with vLLM's
// --allowed-local-media-path, a file:// URL of a file under that folder (the path's symbolic links and ".." are
// resolved before it is compared, and a path outside the folder is refused before anything is opened, so a request
// cannot learn which files exist elsewhere). Nothing is ever downloaded.
inline std::vector<std::byte> MediaUrlBytes(const std::string& url, const std::string& where, const Capabilities& caps,
                                            std::string_view example) {
  if (url.starts_with("file://")) {
    if (caps.local_media.empty()) Bad(where, where + ": file:// URLs need the server's --allowed-local-media-path");
    const std::string path = url.substr(7);
    std::error_code ec;
    const std::filesystem::path file = path.starts_with('/') ? std::filesystem::weakly_canonical(path, ec) : std::filesystem::path();
    const auto [folder_end, file_at] = std::mismatch(caps.local_media.begin(), caps.local_media.end(), file.begin(), file.end());
    if (ec || file.empty() || folder_end != caps.local_media.end())
      Bad(where, where + ": " + path + " is not an absolute path under --allowed-local-media-path");
    try {
      const MappedFile f(file.string());
      if (f.size() > caps.local_media_max_bytes) Bad(where, where + ": " + path + " is larger than --max-body-mb");
      return {f.bytes().begin(), f.bytes().end()};
    } catch (const Error& e) {
      Bad(where, e.what());
    }
  }
  if (!url.starts_with("data:"))
    Bad(where, where + ": only data: URLs" + std::string(caps.local_media.empty() ? "" : " and file:// URLs") +
                   " are supported; g4 never downloads");
  const size_t comma = url.find(',');
  if (comma == std::string::npos || url.substr(0, comma).find(";base64") == std::string::npos)
    Bad(where, where + " must be a base64 data: URL (" + std::string(example) + ")");
  return DecodeBase64(std::string_view(url).substr(comma + 1), where);
}

inline int BudgetForDetail(const Json& image_url, const std::string& param) {
  const auto detail = String(image_url, "detail", param + ".detail").value_or("auto");
  if (detail == "auto") return kDefaultImageBudget;
  if (detail == "low") return 70;
  if (detail == "high") return 560;
  Bad(param + ".detail", param + ".detail must be \"auto\", \"low\" or \"high\"");
}

inline InputMedia ImagePart(const Json& part, const std::string& param, const Capabilities& caps) {
  const Json* iu = Find(part, "image_url");
  if (!iu) Bad(param + ".image_url", param + ".image_url is missing");
  InputMedia out;
  out.kind = Part::Kind::kImage;
  std::string url;
  if (iu->is_string()) {
    url = iu->get<std::string>();
  } else if (iu->is_object()) {
    const auto u = String(*iu, "url", param + ".image_url.url");
    if (!u) Bad(param + ".image_url.url", param + ".image_url.url is missing");
    url = *u;
    out.image_budget = BudgetForDetail(*iu, param + ".image_url");
  } else {
    Bad(param + ".image_url", param + ".image_url must be an object with a url");
  }
  if (!caps.vision) Bad(param, "this model has no vision embedder (start the server with --mmproj)");
  const std::string where = param + ".image_url.url";
  const std::vector<std::byte> bytes = MediaUrlBytes(url, where, caps, "data:image/png;base64,...");
  try {
    out.image = DecodeImage(bytes, where);
  } catch (const Error& e) {
    Bad(where, e.what());
  }
  return out;
}

inline InputMedia AudioPart(const Json& part, const std::string& param, const Capabilities& caps) {
  const Json* ia = Find(part, "input_audio");
  if (!ia || !ia->is_object()) Bad(param + ".input_audio", param + ".input_audio must be an object with data and format");
  const auto data = String(*ia, "data", param + ".input_audio.data");
  if (!data) Bad(param + ".input_audio.data", param + ".input_audio.data is missing");
  const std::string format = String(*ia, "format", param + ".input_audio.format").value_or("wav");
  if (format != "wav") Bad(param + ".input_audio.format", "only \"wav\" audio is supported, got \"" + format + "\"");
  if (!caps.audio) Bad(param, "this model has no audio embedder (start the server with --mmproj)");
  const std::string where = param + ".input_audio.data";
  const std::vector<std::byte> bytes = DecodeBase64(*data, where);
  InputMedia out;
  out.kind = Part::Kind::kAudio;
  try {
    const MonoAudio a = DecodeWav(bytes, where);
    out.audio = Resample(a.samples, a.sample_rate, kAudioSampleRate);
  } catch (const Error& e) {
    Bad(where, e.what());
  }
  if (out.audio.empty()) Bad(where, where + " holds no samples");
  if (out.audio.size() > kMaxAudioSamples) Bad(where, where + " is longer than 30 s");
  return out;
}

// vLLM's video part, {"video_url": {"url": "data:video/mp4;base64,..."}}: the bytes are kept as sent (the
// container is sniffed by FFmpeg, not taken from the MIME type) and decoded when the request is embedded.
inline InputMedia VideoPart(const Json& part, const std::string& param, const Capabilities& caps) {
  const Json* vu = Find(part, "video_url");
  if (!vu) Bad(param + ".video_url", param + ".video_url is missing");
  const Json* url = vu->is_object() ? Find(*vu, "url") : vu;
  if (!url || !url->is_string()) Bad(param + ".video_url.url", param + ".video_url.url must be a string (a data: URL)");
  if (!caps.video) Bad(param, "this g4 was built without video support (FFmpeg)");
  if (!caps.vision) Bad(param, "this model has no vision embedder (start the server with --mmproj)");
  const std::string where = param + ".video_url.url";
  InputMedia out;
  out.kind = Part::Kind::kVideo;
  out.video = MediaUrlBytes(url->get_ref<const std::string&>(), where, caps, "data:video/mp4;base64,...");
  if (out.video.empty()) Bad(where, where + " holds no bytes");
  out.param = param;
  return out;
}

// mm_processor_kwargs (vLLM's pass-through to the Hugging Face processor): the video processor's num_frames or
// fps; any other key is refused rather than ignored.
inline VideoOptions VideoSampling(const Json& body) {
  VideoOptions opt;
  const Json* kw = Find(body, "mm_processor_kwargs");
  if (!kw) return opt;
  if (!kw->is_object()) Bad("mm_processor_kwargs", "mm_processor_kwargs must be an object");
  for (const auto& [key, value] : kw->items())
    if (key != "num_frames" && key != "fps")
      Bad("mm_processor_kwargs." + key, "mm_processor_kwargs." + key + " is not supported (num_frames or fps of video sampling)");
  const Json* nf = Find(*kw, "num_frames");
  const Json* fps = Find(*kw, "fps");
  if (nf && fps) Bad("mm_processor_kwargs", "mm_processor_kwargs: give num_frames or fps, not both");
  try {
    if (nf) opt.frames = static_cast<int>(*Integer(*kw, "num_frames", 1, 1 << 20));
    if (fps) opt.fps = *Number(*kw, "fps", 1e-6, 1000);
  } catch (const ApiError& e) {
    Bad("mm_processor_kwargs." + e.param(), std::string("mm_processor_kwargs.") + e.what());
  }
  return opt;
}

// A message's content checked, its media decoded into `media` and replaced by {"type": "image" / "audio" / "video"}.
inline void Content(Json& msg, const std::string& param, const Capabilities& caps, bool user, std::vector<InputMedia>& media) {
  const auto c = msg.find("content");
  if (c == msg.end() || c->is_null()) {
    if (user) Bad(param + ".content", param + ".content is missing");
    return;
  }
  if (c->is_string()) return;
  if (!c->is_array()) Bad(param + ".content", param + ".content must be a string or a list of parts");
  for (size_t j = 0; j < c->size(); ++j) {
    Json& part = (*c)[j];
    const std::string pp = param + ".content[" + std::to_string(j) + "]";
    if (!part.is_object()) Bad(pp, pp + " must be an object");
    const auto type = String(part, "type", pp + ".type");
    if (!type) Bad(pp + ".type", pp + ".type is missing");
    if (*type == "text") {
      if (!String(part, "text", pp + ".text")) Bad(pp + ".text", pp + ".text is missing");
      continue;
    }
    if (*type != "image_url" && *type != "input_audio" && *type != "video_url")
      Bad(pp + ".type", pp + ".type \"" + *type + "\" is not supported (text, image_url, input_audio, video_url)");
    if (!user) Bad(pp, pp + ": only user messages may carry images, audio or video");
    media.push_back(*type == "image_url" ? ImagePart(part, pp, caps) : *type == "input_audio" ? AudioPart(part, pp, caps) : VideoPart(part, pp, caps));
    part = Json{{"type", *type == "image_url" ? "image" : *type == "input_audio" ? "audio" : "video"}};
  }
}

}  // namespace detail

inline ChatRequest ParseChatRequest(const Json& body, const Capabilities& caps) {
  using namespace detail;
  if (!body.is_object()) Bad("", "request body must be a JSON object");
  ChatRequest r;
  ParseCommon(body, r.params, r.stream, r.include_usage);
  // logprobs: true, with top_logprobs alternatives per token (OpenAI's chat form).
  r.params.logprobs = Bool(body, "logprobs").value_or(false);
  if (const auto top = Integer(body, "top_logprobs", 0, session_detail::Output::kMaxTopLogprobs)) {
    if (!r.params.logprobs) Bad("top_logprobs", "top_logprobs needs logprobs: true");
    r.params.top_logprobs = static_cast<size_t>(*top);
  }
  r.video = VideoSampling(body);
  const Json* msgs = Find(body, "messages");
  if (!msgs) Bad("messages", "messages is missing");
  if (!msgs->is_array()) Bad("messages", "messages must be a list");
  if (msgs->empty()) Bad("messages", "messages must not be empty");

  bool tool_turns = false;
  Json messages = Json::array();
  for (size_t i = 0; i < msgs->size(); ++i) {
    Json m = (*msgs)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) Bad(param, param + " must be an object");
    const auto role = String(m, "role", param + ".role");
    if (!role) Bad(param + ".role", param + ".role is missing");
    static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
    if (!kRoles.count(*role)) Bad(param + ".role", param + ".role \"" + *role + "\" is not one of system, developer, user, assistant, tool");
    if (const Json* calls = Find(m, "tool_calls")) {
      if (*role != "assistant") Bad(param + ".tool_calls", param + ": only assistant messages carry tool_calls");
      if (!calls->is_array()) Bad(param + ".tool_calls", param + ".tool_calls must be a list");
      for (size_t k = 0; k < calls->size(); ++k) {
        const Json& call = (*calls)[k];
        const std::string cp = param + ".tool_calls[" + std::to_string(k) + "]";
        const Json* f = call.is_object() ? Find(call, "function") : nullptr;
        if (!f || !f->is_object() || !String(*f, "name", cp + ".function.name"))
          Bad(cp, cp + " must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
        if (const Json* a = Find(*f, "arguments"); a && !a->is_string() && !a->is_object())
          Bad(cp + ".function.arguments", cp + ".function.arguments must be a JSON string or an object");
      }
      if (!calls->empty()) tool_turns = true;
    }
    if (*role == "tool") {
      tool_turns = true;
      if (const Json* id = Find(m, "tool_call_id"); id && !id->is_string()) Bad(param + ".tool_call_id", param + ".tool_call_id must be a string");
    }
    if (const Json* rc = Find(m, "reasoning_content"); rc && !rc->is_string())
      Bad(param + ".reasoning_content", param + ".reasoning_content must be a string");
    Content(m, param, caps, *role == "user", r.media);
    if (*role != "user" && *role != "assistant" && *role != "tool" && !Find(m, "content")) Bad(param + ".content", param + ".content is missing");
    messages.push_back(std::move(m));
  }
  r.request = {{"messages", std::move(messages)}};

  // Thinking: chat_template_kwargs.enable_thinking (llama-server's way), or reasoning_effort other than "none".
  if (const Json* kw = Find(body, "chat_template_kwargs")) {
    if (!kw->is_object()) Bad("chat_template_kwargs", "chat_template_kwargs must be an object");
    r.params.enable_thinking = Bool(*kw, "enable_thinking").value_or(false);
  }
  if (const auto effort = String(body, "reasoning_effort", "reasoning_effort")) {
    static const std::set<std::string> kEfforts = {"none", "minimal", "low", "medium", "high"};
    if (!kEfforts.count(*effort)) Bad("reasoning_effort", "reasoning_effort must be one of none, minimal, low, medium, high");
    r.params.enable_thinking = *effort != "none" && *effort != "minimal";
  }
  r.request["enable_thinking"] = r.params.enable_thinking;

  // Tools.
  const Json* tools = Find(body, "tools");
  if (tools && !tools->is_array()) Bad("tools", "tools must be a list");
  const Json* tc = Find(body, "tool_choice");
  const bool none = tc && tc->is_string() && tc->get<std::string>() == "none";
  if (const Json* ptc = Find(body, "parallel_tool_calls"); ptc && !ptc->is_boolean())
    Bad("parallel_tool_calls", "parallel_tool_calls must be a boolean");
  if (tools)
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      const std::string param = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || String(t, "type", param + ".type").value_or("") != "function")
        Bad(param, param + " must be {\"type\": \"function\", \"function\": {...}}");
      const Json* f = Find(t, "function");
      if (!f || !f->is_object()) Bad(param + ".function", param + ".function must be an object");
      const auto name = String(*f, "name", param + ".function.name");
      if (!name || name->empty()) Bad(param + ".function.name", param + ".function.name is missing");
    }
  // response_format travels in the request: the engine compiles it into the answer's grammar with the model's
  // vocabulary (session/chat_constraint.hpp); its shape is checked here, the same way.
  if (const Json* rf = Find(body, "response_format")) {
    r.request["response_format"] = *rf;
    try {
      ResponseFormatSchema(r.request);
    } catch (const Error& e) {
      Bad(e.where(), e.what());
    }
  }
  const bool with_tools = tools && !tools->empty() && !none;
  if ((with_tools || tool_turns) && !caps.chat_template)
    Bad(with_tools ? "tools" : "messages",
        "tools and tool turns need a chat template that renders them: this model carries none (start the server with --chat-template-file)");
  if (with_tools) r.request["tools"] = *tools;
  // tool_choice and parallel_tool_calls travel in the request: its prompt (a forced call) and the parsing of its
  // answer both follow them (RequestToolChoice), checked here for a 400 naming the field.
  for (const char* key : {"tool_choice", "parallel_tool_calls"})
    if (const Json* v = Find(body, key)) r.request[key] = *v;
  try {
    RequestToolChoice(r.request);
  } catch (const Error& e) {
    Bad(e.where(), e.what());
  }
  return r;
}

inline CompletionRequest ParseCompletionRequest(const Json& body) {
  using namespace detail;
  if (!body.is_object()) Bad("", "request body must be a JSON object");
  CompletionRequest r;
  ParseCommon(body, r.params, r.stream, r.include_usage);
  // logprobs: N, the sampled token's logprob and the N most likely (the legacy completions form).
  if (const auto n = Integer(body, "logprobs", 0, session_detail::Output::kMaxTopLogprobs)) {
    r.params.logprobs = true;
    r.params.top_logprobs = static_cast<size_t>(*n);
  }
  const Json* p = Find(body, "prompt");
  if (!p) Bad("prompt", "prompt is missing");
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r.prompt = (*p)[0].get<std::string>();
  } else if (p->is_array() && p->size() > 1 && (*p)[0].is_string()) {
    Bad("prompt", "one prompt per request (a list of several is not supported)");
  } else {
    Bad("prompt", "prompt must be a string (token-id prompts are not supported)");
  }
  if (Bool(body, "echo").value_or(false)) Bad("echo", "echo is not supported yet");
  if (const auto suffix = String(body, "suffix", "suffix"); suffix && !suffix->empty()) Bad("suffix", "suffix is not supported");
  if (Integer(body, "best_of", 1, std::numeric_limits<int32_t>::max()).value_or(1) != 1) Bad("best_of", "best_of must be 1");
  return r;
}

// ---- responses ----

struct Usage {
  size_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

inline Usage UsageOf(const Reply& r) { return {r.prompt_tokens, r.tokens.size(), r.cached_tokens}; }

inline Json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
};

inline ResponseMeta NewMeta(std::string_view prefix, std::string model) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(salt ^ (++counter * 0x9e3779b97f4a7c15ull)));
  return {std::string(prefix) + hex, std::move(model),
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()};
}

inline std::string FinishName(FinishReason f, bool tool_calls) {
  if (f == FinishReason::kLength) return "length";
  return tool_calls ? "tool_calls" : "stop";
}

// One server-sent event as OpenAI frames it.
inline std::string Sse(const Json& j) { return "data: " + Dump(j) + "\n\n"; }
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// A stream's end: the chunk with the finish_reason, a usage chunk (no choices) when asked, then [DONE].
inline std::string EndStream(const Json& final_chunk, Json head, bool include_usage, const Usage& usage) {
  std::string out = Sse(final_chunk);
  if (include_usage) {
    head["choices"] = Json::array();
    head["usage"] = UsageJson(usage);
    out += Sse(head);
  }
  out += kSseDone;
  return out;
}

// Logprobs (GenerateParams::logprobs) as OpenAI writes them. A token's `token` is its text, `bytes` its bytes (a
// byte-fallback token may hold part of a character: the text is then written with U+FFFD, the bytes exact).
inline Json TokenBytes(std::string_view text) {
  Json out = Json::array();
  for (const char c : text) out.push_back(static_cast<int>(static_cast<unsigned char>(c)));
  return out;
}

// Chat: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
inline Json ChatLogprobs(std::span<const TokenLogprob> tokens) {
  Json content = Json::array();
  for (const TokenLogprob& t : tokens) {
    Json top = Json::array();
    for (const TokenLogprob::Alternative& a : t.top) top.push_back({{"token", a.text}, {"logprob", a.logprob}, {"bytes", TokenBytes(a.text)}});
    content.push_back({{"token", t.text}, {"logprob", t.logprob}, {"bytes", TokenBytes(t.text)}, {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

// Completions (legacy): tokens, token_logprobs, top_logprobs (per token the N most likely and the sampled one, as
// OpenAI's "up to logprobs + 1"), text_offset (each token's byte offset in the completion; `offset` carries it
// from chunk to chunk of a stream).
inline Json CompletionLogprobs(std::span<const TokenLogprob> tokens, size_t& offset) {
  Json out = {{"tokens", Json::array()}, {"token_logprobs", Json::array()}, {"top_logprobs", Json::array()}, {"text_offset", Json::array()}};
  for (const TokenLogprob& t : tokens) {
    Json top = Json::object();
    for (const TokenLogprob::Alternative& a : t.top) top[a.text] = a.logprob;
    top[t.text] = t.logprob;
    out["tokens"].push_back(t.text);
    out["token_logprobs"].push_back(t.logprob);
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(offset);
    offset += t.text.size();
  }
  return out;
}

// A non-streamed chat.completion from the session's reply (content, reasoning, tool calls parsed).
inline Json ChatCompletionJson(const ResponseMeta& meta, const Reply& reply) {
  const bool calls = reply.tool_calls.is_array() && !reply.tool_calls.empty();
  Json message = {{"role", "assistant"}};
  message["content"] = reply.text.empty() && calls ? Json(nullptr) : Json(reply.text);
  if (!reply.reasoning_content.empty()) message["reasoning_content"] = reply.reasoning_content;
  if (calls) message["tool_calls"] = reply.tool_calls;
  return {{"id", meta.id},
          {"object", "chat.completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", Json::array({{{"index", 0}, {"message", std::move(message)},
                                    {"logprobs", reply.logprobs ? ChatLogprobs(*reply.logprobs) : Json(nullptr)},
                                    {"finish_reason", FinishName(reply.finish, calls)}}})},
          {"usage", UsageJson(UsageOf(reply))}};
}

// A non-streamed text_completion (logprobs: the reply's, when the request asked).
inline Json CompletionJson(const ResponseMeta& meta, const std::string& text, FinishReason finish, const Usage& usage,
                           const std::optional<std::vector<TokenLogprob>>& logprobs = std::nullopt) {
  size_t offset = 0;
  return {{"id", meta.id},
          {"object", "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", Json::array({{{"index", 0}, {"text", text}, {"logprobs", logprobs ? CompletionLogprobs(*logprobs, offset) : Json(nullptr)},
                                    {"finish_reason", FinishName(finish, false)}}})},
          {"usage", UsageJson(usage)}};
}

// A streamed chat completion: Start (the role), Delta per piece of the parsed answer, Finish (the final chunk
// with finish_reason, the usage chunk when asked for, [DONE]). Each returns the SSE bytes to send (maybe none).
// Logprobs ride on the next chunk sent after their tokens (the final one at the latest). A withdrawn call (it
// turned out malformed; its text follows as content) sends nothing: a stream cannot take back what it sent.
class ChatStream {
 public:
  ChatStream(ResponseMeta meta, bool include_usage) : meta_(std::move(meta)), include_usage_(include_usage) {}

  std::string Start() { return Sse(Chunk({{"role", "assistant"}, {"content", ""}}, nullptr)); }
  std::string Delta(const MessageDelta& d) {
    logprobs_.insert(logprobs_.end(), d.logprobs.begin(), d.logprobs.end());
    std::string out;
    if (!d.reasoning_content.empty()) out += Sse(Chunk({{"reasoning_content", d.reasoning_content}}, nullptr));
    if (!d.content.empty()) out += Sse(Chunk({{"content", d.content}}, nullptr));
    for (const ToolCallDelta& t : d.tool_calls) {
      if (t.withdrawn) {
        calls_.erase(t.index);
        continue;
      }
      Json call = {{"index", t.index}};
      if (!t.id.empty()) {
        call["id"] = t.id;
        call["type"] = "function";
        call["function"] = {{"name", t.name}, {"arguments", t.arguments}};
        calls_.insert(t.index);
      } else {
        call["function"] = {{"arguments", t.arguments}};
      }
      out += Sse(Chunk({{"tool_calls", Json::array({std::move(call)})}}, nullptr));
    }
    return out;
  }
  std::string Finish(FinishReason finish, const Usage& usage) {
    return EndStream(Chunk(Json::object(), FinishName(finish, !calls_.empty())), Head(), include_usage_, usage);
  }

 private:
  Json Head() const {
    return {{"id", meta_.id}, {"object", "chat.completion.chunk"}, {"created", meta_.created}, {"model", meta_.model}};
  }
  Json Chunk(Json delta, Json finish) {
    Json j = Head();
    Json logprobs = logprobs_.empty() ? Json(nullptr) : ChatLogprobs(logprobs_);
    logprobs_.clear();
    j["choices"] = Json::array({{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish)}}});
    if (include_usage_) j["usage"] = nullptr;
    return j;
  }

  ResponseMeta meta_;
  bool include_usage_;
  std::set<int> calls_;                // indices of the calls sent and not withdrawn
  std::vector<TokenLogprob> logprobs_;  // not yet sent
};

// A streamed text completion: Delta per piece (its content, with its tokens' logprobs), then Finish.
class CompletionStream {
 public:
  CompletionStream(ResponseMeta meta, bool include_usage) : meta_(std::move(meta)), include_usage_(include_usage) {}
  std::string Start() { return {}; }
  std::string Delta(const MessageDelta& d) {
    logprobs_.insert(logprobs_.end(), d.logprobs.begin(), d.logprobs.end());
    return d.content.empty() ? std::string() : Sse(Chunk(d.content, nullptr));
  }
  std::string Finish(FinishReason finish, const Usage& usage) {
    return EndStream(Chunk("", FinishName(finish, false)), Head(), include_usage_, usage);
  }

 private:
  Json Head() const { return {{"id", meta_.id}, {"object", "text_completion"}, {"created", meta_.created}, {"model", meta_.model}}; }
  Json Chunk(std::string text, Json finish) {
    Json j = Head();
    Json logprobs = logprobs_.empty() ? Json(nullptr) : CompletionLogprobs(logprobs_, offset_);
    logprobs_.clear();
    j["choices"] = Json::array({{{"index", 0}, {"text", std::move(text)}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish)}}});
    if (include_usage_) j["usage"] = nullptr;
    return j;
  }
  ResponseMeta meta_;
  bool include_usage_;
  std::vector<TokenLogprob> logprobs_;  // not yet sent
  size_t offset_ = 0;                   // text_offset of the next token
};

inline Json ModelsJson(const std::string& model, int64_t created) {
  return {{"object", "list"}, {"data", Json::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "g4rt"}}})}};
}

}  // namespace g4::serve
