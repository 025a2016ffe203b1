// The OpenAI API translation of g4 serve (g4/serve/openai.hpp): every malformed request is a 400 naming its field
// (hostile JSON included, never a crash), media decode from data: URLs and base64 WAV (video parts keep their
// bytes, sampled as vLLM's mm_processor_kwargs say), responses and server-sent events are framed exactly as
// OpenAI's; a video part, embedded as Engine::Submit does on the handler's thread, is its frames then its sound, and
// is checked against the context before it is decoded. The engine behind it: test_serve_engine.cpp; video end to
// end: test_serve.py.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "g4/serve/engine.hpp"
#include "g4/serve/openai.hpp"
#include "support/temp_files.hpp"
#include "support/test_data.hpp"

namespace g4_test_serve_api {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::serve;

namespace {

std::string ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Base64(std::string_view bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s : {18, 12, 6, 0}) out += k[(v >> s) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += k[(v >> 18) & 63], out += k[(v >> 12) & 63], out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += k[(v >> 18) & 63], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += '=';
  }
  return out;
}

Json Chat(const std::string& text = "hi") { return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", text}}}}}; }

// How a request is refused (its status must be 400, its message not empty); an accepted one fails the test.
ApiError Refusal(const Json& body, const Capabilities& caps = {}) {
  try {
    ParseChatRequest(body, caps);
  } catch (const ApiError& e) {
    CHECK(e.status() == 400);
    CHECK(std::string(e.what()).size() > 0);
    return e;
  }
  FAIL("the request was accepted");
  return ApiError(0, "");
}

// The field a request is refused for.
std::string RefusedParam(const Json& body, const Capabilities& caps = {}) {
  const ApiError e = Refusal(body, caps);
  return e.param().empty() ? "<none>" : e.param();
}

std::vector<Json> Events(const std::string& sse) {
  std::vector<Json> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    REQUIRE(sse.compare(pos, 6, "data: ") == 0);
    const size_t end = sse.find("\n\n", pos);
    REQUIRE(end != std::string::npos);
    const std::string payload = sse.substr(pos + 6, end - pos - 6);
    out.push_back(payload == "[DONE]" ? Json("[DONE]") : Json::parse(payload));
    pos = end + 2;
  }
  return out;
}

}  // namespace

TEST_CASE("serve: request bodies that are not JSON objects are 400s") {
  for (const char* body : {"", "{", "nul", "[1,2]", "\"text\"", "42", "{\"a\":}", "{\"a\":1}x", "\xff\xfe"}) {
    CAPTURE(body);
    CHECK_THROWS_AS(ParseBody(body), ApiError);
  }
  CHECK(ParseBody(R"({"a": "[[[[{{{{"})")["a"] == "[[[[{{{{");  // brackets inside strings are not nesting
  CHECK(ParseBody(R"({"a": "\"[[["})")["a"] == "\"[[[");
  // Deep nesting is refused before nlohmann's recursive parser sees it.
  const std::string deep = "{\"a\":" + std::string(1'000'000, '[') + std::string(1'000'000, ']') + "}";
  try {
    ParseBody(deep);
    FAIL("deep nesting accepted");
  } catch (const ApiError& e) {
    CHECK(e.status() == 400);
    CHECK(std::string(e.what()).find("nested deeper") != std::string::npos);
  }
  // Invalid UTF-8 inside a string is not JSON.
  CHECK_THROWS_AS(ParseBody("{\"a\": \"\xc3\x28\"}"), ApiError);
}

TEST_CASE("serve: the error object is OpenAI's") {
  const Json e = ErrorJson(ApiError(400, "n must be 1", "n"));
  CHECK(e["error"]["message"] == "n must be 1");
  CHECK(e["error"]["type"] == "invalid_request_error");
  CHECK(e["error"]["param"] == "n");
  CHECK(e["error"]["code"].is_null());
  CHECK(ErrorJson(ApiError(503, "busy"))["error"]["type"] == "server_error");
  CHECK(ErrorJson(ApiError(400, "x"))["error"]["param"].is_null());
}

TEST_CASE("serve: chat parameters map to the session's, wrong ones are refused by name") {
  Json body = Chat();
  body["max_tokens"] = 7;
  body["temperature"] = 0;
  body["top_p"] = 0.5;
  body["top_k"] = 3;
  body["min_p"] = 0.1;
  body["seed"] = 42;
  body["presence_penalty"] = 0.5;
  body["frequency_penalty"] = -1.5;
  body["stop"] = "END";
  body["n"] = 1;
  body["logprobs"] = false;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const ChatRequest r = ParseChatRequest(body, {});
  CHECK(r.params.max_tokens == 7);
  CHECK(r.params.sampling.temperature == 0.0f);
  CHECK(r.params.sampling.top_p == 0.5f);
  CHECK(r.params.sampling.top_k == 3);
  CHECK(r.params.sampling.min_p == doctest::Approx(0.1));
  CHECK(r.params.sampling.seed == 42);
  CHECK(r.params.sampling.presence_penalty == 0.5f);
  CHECK(r.params.sampling.frequency_penalty == -1.5f);
  CHECK_FALSE(r.params.logprobs);
  CHECK(r.params.stop_strings == std::vector<std::string>{"END"});
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.request["messages"][0]["content"] == "hi");
  CHECK(r.request["enable_thinking"] == false);
  CHECK_FALSE(r.request.contains("tools"));

  body["max_completion_tokens"] = 9;  // the newer name wins
  body["stop"] = {"a", "b"};
  const ChatRequest r2 = ParseChatRequest(body, {});
  CHECK(r2.params.max_tokens == 9);
  CHECK(r2.params.stop_strings == std::vector<std::string>{"a", "b"});
  body["logprobs"] = true;
  body["top_logprobs"] = 20;
  const ChatRequest lp = ParseChatRequest(body, {});
  CHECK(lp.params.logprobs);
  CHECK(lp.params.top_logprobs == 20);
  // Defaults: g4 run's sampling, the rest of the context.
  const ChatRequest d = ParseChatRequest(Chat(), {});
  CHECK(d.params.sampling.temperature == 1.0f);
  CHECK(d.params.sampling.top_k == 64);
  CHECK(d.params.max_tokens == std::numeric_limits<size_t>::max());
  CHECK_FALSE(d.stream);

  const std::vector<std::pair<Json, std::string>> bad = {
      {{{"n", 2}}, "n"},
      {{{"n", "1"}}, "n"},
      {{{"logprobs", 1}}, "logprobs"},  // chat's is a boolean
      {{{"logprobs", "yes"}}, "logprobs"},
      {{{"top_logprobs", 3}}, "top_logprobs"},  // without logprobs: true
      {{{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
      {{{"logprobs", true}, {"top_logprobs", -1}}, "top_logprobs"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"temperature", 3}}, "temperature"},
      {{{"temperature", -1}}, "temperature"},
      {{{"top_p", 0}}, "top_p"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"top_k", -1}}, "top_k"},
      {{{"top_k", 2.5}}, "top_k"},
      {{{"min_p", 2}}, "min_p"},
      {{{"max_tokens", 0}}, "max_tokens"},
      {{{"max_tokens", -5}}, "max_tokens"},
      {{{"max_tokens", "10"}}, "max_tokens"},
      {{{"max_tokens", 1e300}}, "max_tokens"},
      {{{"max_completion_tokens", true}}, "max_completion_tokens"},
      {{{"seed", "x"}}, "seed"},
      {{{"seed", 1.5}}, "seed"},
      {{{"stop", 5}}, "stop"},
      {{{"stop", {"a", 1}}}, "stop"},
      {{{"stop", ""}}, "stop"},
      {{{"frequency_penalty", 2.5}}, "frequency_penalty"},
      {{{"frequency_penalty", "x"}}, "frequency_penalty"},
      {{{"presence_penalty", 9}}, "presence_penalty"},
      {{{"stream", "yes"}}, "stream"},
      {{{"stream_options", {{"include_usage", true}}}}, "stream_options"},  // without stream
      {{{"stream", true}, {"stream_options", 1}}, "stream_options"},
      {{{"model", 5}}, "model"},
      {{{"logit_bias", {{"1", 5}}}}, "logit_bias"},
      {{{"response_format", {{"type", "xml"}}}}, "response_format.type"},
      {{{"response_format", {{"type", "json_schema"}}}}, "response_format.json_schema"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", "x"}}}}}}, "response_format.json_schema"},
      {{{"tool_choice", "required"}}, "tool_choice"},
      {{{"tool_choice", {{"type", "function"}}}}, "tool_choice"},
      {{{"tool_choice", "sometimes"}}, "tool_choice"},
      {{{"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}}}, "tool_choice"},  // no such tool
      {{{"parallel_tool_calls", "no"}}, "parallel_tool_calls"},
      {{{"tools", "x"}}, "tools"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}}}, "tools"},  // no template: refused
      {{{"tools", {{{"type", "web"}}}}}, "tools[0]"},
      {{{"reasoning_effort", "max"}}, "reasoning_effort"},
      {{{"chat_template_kwargs", 1}}, "chat_template_kwargs"},
  };
  for (const auto& [patch, param] : bad) {
    Json b = Chat();
    b.update(patch);
    CAPTURE(b.dump());
    CHECK(RefusedParam(b) == param);
  }
  Json nan = Chat();
  nan["temperature"] = std::numeric_limits<double>::quiet_NaN();  // (only an embedder can pass one)
  CHECK(RefusedParam(nan) == "temperature");
}

TEST_CASE("serve: messages are checked part by part") {
  const std::vector<std::pair<Json, std::string>> bad = {
      {Json::object(), "messages"},
      {{{"messages", "hi"}}, "messages"},
      {{{"messages", Json::array()}}, "messages"},
      {{{"messages", {1}}}, "messages[0]"},
      {{{"messages", {{{"content", "x"}}}}}, "messages[0].role"},
      {{{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}, "messages[0].role"},
      {{{"messages", {{{"role", 7}, {"content", "x"}}}}}, "messages[0].role"},
      {{{"messages", {{{"role", "user"}}}}}, "messages[0].content"},
      {{{"messages", {{{"role", "user"}, {"content", 5}}}}}, "messages[0].content"},
      {{{"messages", {{{"role", "system"}, {"content", "s"}}, {{"role", "user"}, {"content", {5}}}}}}, "messages[1].content[0]"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"text", "x"}}}}}}}}, "messages[0].content[0].type"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}}}}}}}}, "messages[0].content[0].text"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", 1}}}}}}}}, "messages[0].content[0].text"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "video"}}}}}}}}, "messages[0].content[0].type"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}, "messages[0].content[0].image_url"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", 3}}}}}}}}, "messages[0].content[0].image_url"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "input_audio"}, {"input_audio", "x"}}}}}}}},
       "messages[0].content[0].input_audio"},
      {{{"messages", {{{"role", "user"}, {"content", "x"}}, {{"role", "tool"}, {"content", "r"}}}}}, "messages"},  // no template
      {{{"messages", {{{"role", "user"}, {"content", "x"}, {"tool_calls", 1}}}}}, "messages[0].tool_calls"},
      {{{"messages", {{{"role", "assistant"}, {"tool_calls", {1}}}}}}, "messages[0].tool_calls[0]"},
      {{{"messages", {{{"role", "system"}}}}}, "messages[0].content"},
  };
  for (const auto& [body, param] : bad) {
    CAPTURE(body.dump());
    CHECK(RefusedParam(body) == param);
  }
  // Assistant turns may have no content; developer is a system turn.
  const Json ok = {{"messages", {{{"role", "developer"}, {"content", "d"}}, {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "q"}}}}},
                                 {{"role", "assistant"}, {"content", nullptr}}, {{"role", "user"}, {"content", "again"}}}}};
  CHECK(ParseChatRequest(ok, {}).request["messages"].size() == 4);
}

TEST_CASE("serve: tools and tool turns pass to the template when the model has one") {
  Capabilities caps;
  caps.chat_template = true;
  const Json tool = {{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}};
  Json body = Chat("weather?");
  body["tools"] = {tool};
  const ChatRequest r = ParseChatRequest(body, caps);
  REQUIRE(r.request.contains("tools"));
  CHECK(r.request["tools"][0]["function"]["name"] == "get_weather");
  body["tool_choice"] = "none";  // no tools offered
  CHECK_FALSE(ParseChatRequest(body, caps).request.contains("tools"));
  body["tool_choice"] = "auto";
  body["messages"].push_back({{"role", "assistant"},
                              {"content", nullptr},
                              {"tool_calls", {{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", "{}"}}}}}}});
  body["messages"].push_back({{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "sunny"}});
  CHECK(ParseChatRequest(body, caps).request["messages"].size() == 3);
  body["chat_template_kwargs"] = {{"enable_thinking", true}};
  const ChatRequest t = ParseChatRequest(body, caps);
  CHECK(t.params.enable_thinking);
  CHECK(t.request["enable_thinking"] == true);
  Json nameless = Chat();
  nameless["tools"] = {{{"type", "function"}, {"function", {{"description", "x"}}}}};
  CHECK(RefusedParam(nameless, caps) == "tools[0].function.name");

  // A named function and parallel_tool_calls travel in the request, where the prompt and the parsing read them.
  Json named = Chat("weather?");
  named["tools"] = {tool};
  named["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  named["parallel_tool_calls"] = false;
  const ChatRequest nr = ParseChatRequest(named, caps);
  const ToolChoice choice = RequestToolChoice(nr.request);
  CHECK(choice.forced == "get_weather");
  CHECK(choice.max_calls == 1);
  CHECK(choice.allowed);
  CHECK(choice.names == std::set<std::string>{"get_weather"});
  named["tool_choice"] = {{"type", "function"}, {"function", {{"name", "rm_rf"}}}};
  CHECK(RefusedParam(named, caps) == "tool_choice");
  named["tool_choice"] = "required";  // a call first: the engine's grammar enforces it (test_serve_engine)
  const ChatRequest nq = ParseChatRequest(named, caps);
  CHECK(RequestToolChoice(nq.request).allowed);
  CHECK(RequestToolChoice(nq.request).forced.empty());
  named["tool_choice"] = "none";
  const ChatRequest nn = ParseChatRequest(named, caps);
  CHECK_FALSE(nn.request.contains("tools"));
  CHECK_FALSE(RequestToolChoice(nn.request).allowed);
}

TEST_CASE("serve: base64") {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    const std::vector<std::byte> d = DecodeBase64(Base64(s), "x");
    CHECK(std::string(reinterpret_cast<const char*>(d.data()), d.size()) == s);
  }
  CHECK(DecodeBase64("YWJj\nZA", "x").size() == 4);  // line breaks and missing padding
  CHECK(DecodeBase64("-_-_", "x").size() == 3);     // URL-safe alphabet
  for (const char* bad : {"a", "ab=c", "abc===", "a*bc", "YQ==YQ=="}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(DecodeBase64(bad, "x"), ApiError);
  }
}

TEST_CASE("serve: images from data: URLs, audio from base64 WAV") {
  const std::string png = ReadBytes(testing::DataDir() + "/media/sample.png");
  const std::string wav = ReadBytes(testing::DataDir() + "/media/sample.wav");
  Capabilities caps;
  caps.vision = caps.audio = true;
  auto image_msg = [](const Json& image_url) {
    return Json{{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "what?"}}, {{"type", "image_url"}, {"image_url", image_url}}}}}}}};
  };
  const ChatRequest r = ParseChatRequest(image_msg({{"url", "data:image/png;base64," + Base64(png)}, {"detail", "low"}}), caps);
  REQUIRE(r.media.size() == 1);
  CHECK(r.media[0].kind == Part::Kind::kImage);
  CHECK(r.media[0].image.width > 0);
  CHECK(r.media[0].image.height > 0);
  CHECK(r.media[0].image_budget == 70);
  CHECK(r.request["messages"][0]["content"][1] == Json{{"type", "image"}});
  CHECK(r.request["messages"][0]["content"][0]["text"] == "what?");
  CHECK(ParseChatRequest(image_msg("data:image/png;base64," + Base64(png)), caps).media[0].image_budget == kDefaultImageBudget);

  CHECK(RefusedParam(image_msg({{"url", "https://example.com/cat.png"}}), caps) == "messages[0].content[1].image_url.url");
  CHECK(RefusedParam(image_msg({{"url", "data:image/png," + png.substr(0, 10)}}), caps) == "messages[0].content[1].image_url.url");
  CHECK(RefusedParam(image_msg({{"url", "data:image/png;base64,!!!!"}}), caps) == "messages[0].content[1].image_url.url");
  CHECK(RefusedParam(image_msg({{"url", "data:image/png;base64," + Base64("not a picture at all")}}), caps) ==
        "messages[0].content[1].image_url.url");
  CHECK(RefusedParam(image_msg({{"url", "data:image/png;base64," + Base64(png.substr(0, png.size() / 2))}}), caps) ==
        "messages[0].content[1].image_url.url");
  CHECK(RefusedParam(image_msg({{"url", "data:image/png;base64,"}}), caps) == "messages[0].content[1].image_url.url");
  CHECK(RefusedParam(image_msg({{"url", "data:image/png;base64," + Base64(png)}, {"detail", "ultra"}}), caps) ==
        "messages[0].content[1].image_url.detail");
  CHECK(RefusedParam(image_msg({{"url", "data:image/png;base64," + Base64(png)}}), {}) == "messages[0].content[1]");  // no vision
  // Only user turns carry media.
  Json sys = image_msg({{"url", "data:image/png;base64," + Base64(png)}});
  sys["messages"][0]["role"] = "system";
  CHECK(RefusedParam(sys, caps) == "messages[0].content[1]");

  auto audio_msg = [](const Json& input_audio) {
    return Json{{"messages", {{{"role", "user"}, {"content", {{{"type", "input_audio"}, {"input_audio", input_audio}}}}}}}};
  };
  const ChatRequest a = ParseChatRequest(audio_msg({{"data", Base64(wav)}, {"format", "wav"}}), caps);
  REQUIRE(a.media.size() == 1);
  CHECK(a.media[0].kind == Part::Kind::kAudio);
  CHECK(a.media[0].audio.size() > 1000);
  CHECK(a.request["messages"][0]["content"][0] == Json{{"type", "audio"}});
  CHECK(RefusedParam(audio_msg({{"data", Base64(wav)}, {"format", "mp3"}}), caps) == "messages[0].content[0].input_audio.format");
  CHECK(RefusedParam(audio_msg({{"data", Base64("RIFF....WAVEjunk")}}), caps) == "messages[0].content[0].input_audio.data");
  CHECK(RefusedParam(audio_msg({{"data", Base64(wav.substr(0, 40))}}), caps) == "messages[0].content[0].input_audio.data");
  CHECK(RefusedParam(audio_msg({{"format", "wav"}}), caps) == "messages[0].content[0].input_audio.data");
  CHECK(RefusedParam(audio_msg({{"data", Base64(wav)}}), {}) == "messages[0].content[0]");  // no audio embedder
}

TEST_CASE("serve: file:// media only under --allowed-local-media-path, read as the same bytes as a data: URL") {
  namespace fs = std::filesystem;
  const std::string png = ReadBytes(testing::DataDir() + "/media/sample.png");
  const fs::path root = testing::TempDir("local_media");
  fs::create_directories(root / "allowed");
  fs::create_directories(root / "outside");
  testing::WriteBytes((root / "allowed" / "cat.png").string(), testing::Bytes(png));
  testing::WriteBytes((root / "outside" / "secret.png").string(), testing::Bytes(png));
  testing::WriteBytes((root / "allowed" / "clip.bin").string(), testing::Bytes("some video bytes"));
  fs::create_symlink(root / "outside" / "secret.png", root / "allowed" / "link.png");
  Capabilities caps;
  caps.vision = caps.video = true;
  caps.local_media = fs::canonical(root / "allowed");
  auto image_msg = [](const std::string& url) {
    return Json{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", {{"url", url}}}}}}}}}};
  };
  const std::string field = "messages[0].content[0].image_url.url";
  const RgbImage want = ParseChatRequest(image_msg("data:image/png;base64," + Base64(png)), caps).media[0].image;
  const RgbImage got = ParseChatRequest(image_msg("file://" + (root / "allowed" / "cat.png").string()), caps).media[0].image;
  CHECK((got.width == want.width && got.height == want.height && got.pixels == want.pixels));
  // A video's bytes as they are in the file.
  const Json video = {{"messages", {{{"role", "user"}, {"content", {{{"type", "video_url"}, {"video_url", {{"url", "file://" + (root / "allowed" / "clip.bin").string()}}}}}}}}}};
  const std::vector<std::byte> clip = ParseChatRequest(video, caps).media[0].video;
  CHECK(std::string(reinterpret_cast<const char*>(clip.data()), clip.size()) == "some video bytes");
  // Outside the folder, by "..", by a symbolic link, relative, missing, a folder, too large, or without the flag.
  for (const std::string& path : {(root / "allowed" / ".." / "outside" / "secret.png").string(), (root / "allowed" / "link.png").string(),
                                  std::string("allowed/cat.png"), (root / "allowed" / "none.png").string(), (root / "allowed").string(),
                                  (root / "allowedx" / "cat.png").string()}) {
    CAPTURE(path);
    CHECK(RefusedParam(image_msg("file://" + path), caps) == field);
  }
  Capabilities small = caps;
  small.local_media_max_bytes = png.size() - 1;
  CHECK(RefusedParam(image_msg("file://" + (root / "allowed" / "cat.png").string()), small) == field);
  Capabilities closed = caps;
  closed.local_media.clear();
  CHECK(RefusedParam(image_msg("file://" + (root / "allowed" / "cat.png").string()), closed) == field);
}

TEST_CASE("serve: video parts are vLLM's video_url data: URLs, kept as sent; mm_processor_kwargs samples them") {
  // Any bytes: the container is sniffed by FFmpeg when the request is embedded (test_serve.py), never from the MIME type.
  const std::string clip = std::string("\x1a\x45\xdf\xa3 matroska-ish \0\xff bytes", 26);
  Capabilities caps;
  caps.vision = caps.video = true;
  auto video_msg = [](const Json& video_url, const Json& extra = Json::object()) {
    Json body = {{"messages", {{{"role", "user"}, {"content", {{{"type", "video_url"}, {"video_url", video_url}}, {{"type", "text"}, {"text", "what?"}}}}}}}};
    body.update(extra);
    return body;
  };
  const ChatRequest r = ParseChatRequest(video_msg({{"url", "data:application/octet-stream;base64," + Base64(clip)}}), caps);
  REQUIRE(r.media.size() == 1);
  CHECK(r.media[0].kind == Part::Kind::kVideo);
  CHECK(std::string(reinterpret_cast<const char*>(r.media[0].video.data()), r.media[0].video.size()) == clip);
  CHECK(r.media[0].param == "messages[0].content[0]");
  CHECK(r.request["messages"][0]["content"][0] == Json{{"type", "video"}});
  CHECK(r.request["messages"][0]["content"][1]["text"] == "what?");
  CHECK(!r.video.frames);  // transformers' default (32 frames) unless asked
  CHECK(!r.video.fps);
  CHECK(ParseChatRequest(video_msg("data:video/mp4;base64," + Base64(clip)), caps).media[0].video.size() == clip.size());  // bare string

  // mm_processor_kwargs: the video processor's num_frames or fps, nothing else.
  const std::string url = "data:video/mp4;base64," + Base64(clip);
  CHECK(*ParseChatRequest(video_msg({{"url", url}}, {{"mm_processor_kwargs", {{"num_frames", 4}}}}), caps).video.frames == 4);
  CHECK(*ParseChatRequest(video_msg({{"url", url}}, {{"mm_processor_kwargs", {{"fps", 0.5}}}}), caps).video.fps == 0.5);
  CHECK(RefusedParam(video_msg({{"url", url}}, {{"mm_processor_kwargs", {{"num_frames", 4}, {"fps", 1}}}}), caps) == "mm_processor_kwargs");
  CHECK(RefusedParam(video_msg({{"url", url}}, {{"mm_processor_kwargs", {{"num_frames", 0}}}}), caps) == "mm_processor_kwargs.num_frames");
  CHECK(RefusedParam(video_msg({{"url", url}}, {{"mm_processor_kwargs", {{"num_frames", "8"}}}}), caps) == "mm_processor_kwargs.num_frames");
  CHECK(RefusedParam(video_msg({{"url", url}}, {{"mm_processor_kwargs", {{"fps", -1}}}}), caps) == "mm_processor_kwargs.fps");
  CHECK(RefusedParam(video_msg({{"url", url}}, {{"mm_processor_kwargs", {{"max_pixels", 100}}}}), caps) == "mm_processor_kwargs.max_pixels");
  CHECK(RefusedParam(video_msg({{"url", url}}, {{"mm_processor_kwargs", 3}}), caps) == "mm_processor_kwargs");

  // Refusals name the part or its url.
  for (const char* remote : {"https://example.com/clip.mp4", "/tmp/clip.mp4", "file:///etc/passwd"}) {
    CAPTURE(remote);
    const ApiError e = Refusal(video_msg({{"url", remote}}), caps);
    CHECK(e.param() == "messages[0].content[0].video_url.url");
    const bool file = std::string_view(remote).starts_with("file://");
    CHECK(std::string(e.what()).find(file ? "--allowed-local-media-path" : "g4 never downloads") != std::string::npos);
  }
  CHECK(RefusedParam(video_msg({{"url", "data:video/mp4," + clip.substr(0, 4)}}), caps) == "messages[0].content[0].video_url.url");
  CHECK(RefusedParam(video_msg({{"url", "data:video/mp4;base64,!!!!"}}), caps) == "messages[0].content[0].video_url.url");
  CHECK(RefusedParam(video_msg({{"url", "data:video/mp4;base64,"}}), caps) == "messages[0].content[0].video_url.url");
  CHECK(RefusedParam(video_msg({{"url", 5}}), caps) == "messages[0].content[0].video_url.url");
  CHECK(RefusedParam(video_msg(Json::object()), caps) == "messages[0].content[0].video_url.url");
  CHECK(RefusedParam(Json{{"messages", {{{"role", "user"}, {"content", {{{"type", "video_url"}}}}}}}}, caps) == "messages[0].content[0].video_url");
  Capabilities blind = caps;
  blind.vision = false;
  CHECK(RefusedParam(video_msg({{"url", url}}), blind) == "messages[0].content[0]");
  Capabilities no_ffmpeg = caps;
  no_ffmpeg.video = false;
  const ApiError e = Refusal(video_msg({{"url", url}}), no_ffmpeg);
  CHECK(e.param() == "messages[0].content[0]");
  CHECK(std::string(e.what()) == "this g4 was built without video support (FFmpeg)");
  Json assistant = video_msg({{"url", url}});
  assistant["messages"][0]["role"] = "assistant";
  CHECK(RefusedParam(assistant, caps) == "messages[0].content[0]");
}

#if G4_HAVE_VIDEO
TEST_CASE("serve: a video part embeds as its frames then its sound, after a context check made before decoding") {
  // 2.2 s of 100x70 at 25 fps (55 frames) with a 440 Hz tone, lossless, written by the ffmpeg program.
  const std::string dir = testing::TempDir("serve_video");
  const std::string cmd = "ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i testsrc2=size=100x70:rate=25:duration=2.2 -f lavfi -i "
                          "sine=frequency=440:sample_rate=16000:duration=2.2 -c:v ffv1 -c:a pcm_s16le -shortest " + dir + "/clip.mkv";
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
  ThreadPool pool(2);
  ModelFiles files;
  files.model = testing::DataDir() + "/golden-gguf/multimodal-bf16.gguf";
  files.mmproj = testing::DataDir() + "/golden-gguf/multimodal-mmproj-bf16.gguf";
  const LoadedModel lm(files, pool);
  Capabilities caps;
  caps.vision = caps.audio = caps.video = true;
  auto request = [&](const std::string& clip) {
    const Json body = {{"mm_processor_kwargs", {{"num_frames", 4}}},
                       {"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}},
                                                                     {{"type", "video_url"}, {"video_url", {{"url", "data:video/mp4;base64," + Base64(clip)}}}},
                                                                     {{"type", "text"}, {"text", "b"}}}}}}}};
    return ParseChatRequest(body, caps);
  };
  const ChatRequest r = request(ReadBytes(dir + "/clip.mkv"));
  const EmbeddedChat chat = EmbedChatMedia(lm, r, 4096);
  CHECK(chat.request["messages"][0]["content"] == Json::parse(R"([{"type": "text", "text": "a"}, {"type": "video"}, {"type": "audio"},
                                                                  {"type": "text", "text": "b"}])"));
  REQUIRE(chat.media.size() == 2);
  CHECK(chat.media[0]->kind == MediaEmbedding::Kind::kVideo);
  CHECK(chat.media[0]->n == 4 * 70);  // 100x70 at 70 tokens: 10 x 7 patches
  REQUIRE(chat.media[0]->frames.size() == 4);
  // Frames 0, 13, 27, 41 of 55 (arange(0, 55, 13.75)) at 25 fps: 0, 0.52, 1.08, 1.64 s.
  const char* stamps[] = {"00:00 ", " 00:00 ", " 00:01 ", " 00:01 "};
  for (size_t f = 0; f < 4; ++f) CHECK(lm.tokenizer().Decode(chat.media[0]->frames[f].prefix_ids) == stamps[f]);
  CHECK(chat.media[1]->kind == MediaEmbedding::Kind::kAudio);
  CHECK(chat.media[1]->n == 55);  // 2.2 s of sound at 25 tokens a second

  try {  // 4 frames of ~78 tokens and the sound do not fit 300
    EmbedChatMedia(lm, r, 300);
    FAIL("a video over the context was embedded");
  } catch (const ApiError& e) {
    CHECK(e.status() == 400);
    CHECK(e.param() == "messages[0].content[1]");
    CHECK(e.code() == "context_length_exceeded");
  }
  for (const std::string& bad : {std::string(300, 'x'), ReadBytes(dir + "/clip.mkv").substr(0, 2000)}) {
    try {
      EmbedChatMedia(lm, request(bad), 4096);
      FAIL("an undecodable video was embedded");
    } catch (const Error& e) {
      CHECK(e.where() == "messages[0].content[1].video_url.url");  // Engine::Submit makes it a 400 naming that
    }
  }
}
#endif

TEST_CASE("serve: completions take logprobs as a count") {
  const CompletionRequest r = ParseCompletionRequest(Json{{"prompt", "x"}, {"logprobs", 3}, {"frequency_penalty", 0.5}});
  CHECK(r.params.logprobs);
  CHECK(r.params.top_logprobs == 3);
  CHECK(r.params.sampling.frequency_penalty == 0.5f);
  CHECK_FALSE(ParseCompletionRequest(Json{{"prompt", "x"}}).params.logprobs);
  for (const Json& bad : {Json(true), Json(21), Json(-1), Json("2")}) {
    try {
      ParseCompletionRequest(Json{{"prompt", "x"}, {"logprobs", bad}});
      FAIL("accepted logprobs " << bad.dump());
    } catch (const ApiError& e) {
      CHECK(e.param() == "logprobs");
    }
  }
}

TEST_CASE("serve: completions requests") {
  const CompletionRequest r = ParseCompletionRequest({{"prompt", "Returns the"}, {"max_tokens", 4}, {"temperature", 0}});
  CHECK(r.prompt == "Returns the");
  CHECK(r.params.max_tokens == 4);
  CHECK(ParseCompletionRequest({{"prompt", {"one"}}}).prompt == "one");
  for (const Json& bad : {Json::object(), Json{{"prompt", 5}}, Json{{"prompt", {"a", "b"}}}, Json{{"prompt", {1, 2, 3}}},
                          Json{{"prompt", "x"}, {"echo", true}}, Json{{"prompt", "x"}, {"n", 3}}, Json{{"prompt", "x"}, {"best_of", 2}},
                          Json{{"prompt", "x"}, {"suffix", "y"}}}) {
    CAPTURE(bad.dump());
    CHECK_THROWS_AS(ParseCompletionRequest(bad), ApiError);
  }
}

TEST_CASE("serve: hostile requests are 400s, never anything else") {
  // Mutations of a valid request: every value replaced by values of every type, keys dropped, random bytes.
  const Json base = {{"model", "m"},
                     {"messages", {{{"role", "system"}, {"content", "s"}},
                                   {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "q"}}, {{"type", "image_url"}, {"image_url", {{"url", "data:,"}}}},
                                                                  {{"type", "video_url"}, {"video_url", {{"url", "data:video/mp4;base64,AAAA"}}}}}}}}},
                     {"max_tokens", 5},
                     {"mm_processor_kwargs", {{"num_frames", 4}}},
                     {"stop", {"x"}},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}},
                     {"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}}};
  const std::vector<Json> values = {nullptr, true, 0, -1, 1.5, 1e308, -1e308, "", "x", Json::array(), Json::object(), {1, 2}, {{"a", 1}},
                                    std::numeric_limits<uint64_t>::max(), std::numeric_limits<int64_t>::min()};
  Capabilities caps;
  caps.vision = caps.audio = caps.video = caps.chat_template = true;
  size_t refused = 0, accepted = 0;
  auto run = [&](const Json& body) {
    try {
      ParseChatRequest(body, caps);
      ++accepted;
    } catch (const ApiError& e) {
      CHECK(e.status() == 400);
      ++refused;
    }
    try {
      ParseCompletionRequest(body);
      ++accepted;
    } catch (const ApiError& e) {
      CHECK(e.status() == 400);
      ++refused;
    }
  };
  // Every value of the request (each path of its flattened form, and each object or array above one) set to
  // values of every type, or removed.
  std::set<std::string> paths;
  const Json flat = base.flatten();
  for (auto it = flat.begin(); it != flat.end(); ++it)
    for (Json::json_pointer p(it.key()); !p.empty(); p = p.parent_pointer()) paths.insert(p.to_string());
  for (const std::string& path : paths) {
    const Json::json_pointer p(path);
    for (const Json& v : values) {
      Json b = base;
      b[p] = v;
      run(b);
    }
    Json b = base;
    Json& parent = b[p.parent_pointer()];
    if (parent.is_object()) parent.erase(p.back());
    else parent.erase(static_cast<size_t>(std::stoul(p.back())));
    run(b);
  }
  // Random bytes and random edits of the text.
  std::mt19937 rng(7);
  const std::string text = base.dump();
  for (int i = 0; i < 3000; ++i) {
    std::string t = text;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) t[rng() % t.size()] = static_cast<char>(rng() % 256);
    try {
      run(ParseBody(t));
    } catch (const ApiError& e) {
      CHECK(e.status() == 400);
      ++refused;
    }
  }
  MESSAGE("hostile requests: " << refused << " refused, " << accepted << " accepted");
  CHECK(refused > 1000);
}

TEST_CASE("serve: non-streamed responses and usage") {
  const ResponseMeta meta{"chatcmpl-1", "demo", 1700000000};
  Reply reply;
  reply.text = "Hello";
  reply.tokens = {5, 6, 7};
  reply.prompt_tokens = 20;
  reply.cached_tokens = 12;
  reply.finish = FinishReason::kStop;
  const Json j = ChatCompletionJson(meta, reply);
  CHECK(j["object"] == "chat.completion");
  CHECK(j["id"] == "chatcmpl-1");
  CHECK(j["model"] == "demo");
  CHECK(j["choices"][0]["message"] == Json{{"role", "assistant"}, {"content", "Hello"}});
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  CHECK(j["usage"] == Json{{"prompt_tokens", 20}, {"completion_tokens", 3}, {"total_tokens", 23}, {"prompt_tokens_details", {{"cached_tokens", 12}}}});
  reply.finish = FinishReason::kLength;
  CHECK(ChatCompletionJson(meta, reply)["choices"][0]["finish_reason"] == "length");
  // Tool calls and reasoning.
  reply.text = "";
  reply.reasoning_content = "think";
  reply.tool_calls = Json::array({{{"id", "call_0"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{\"a\":1}"}}}}});
  reply.finish = FinishReason::kStop;
  const Json t = ChatCompletionJson(meta, reply);
  CHECK(t["choices"][0]["message"]["content"].is_null());
  CHECK(t["choices"][0]["message"]["reasoning_content"] == "think");
  CHECK(t["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "f");
  CHECK(t["choices"][0]["finish_reason"] == "tool_calls");
  const Json c = CompletionJson({"cmpl-1", "demo", 1}, " documents", FinishReason::kLength, {4, 2, 0});
  CHECK(c["object"] == "text_completion");
  CHECK(c["choices"][0]["text"] == " documents");
  CHECK(c["choices"][0]["finish_reason"] == "length");
  CHECK(c["usage"]["total_tokens"] == 6);
  // Invalid UTF-8 from a model that stopped mid-character is replaced, never a throw.
  reply.tool_calls = Json::array();
  reply.text = "ab\xe6\x97";
  CHECK(Dump(ChatCompletionJson(meta, reply)).find("ab\xef\xbf\xbd") != std::string::npos);
  const Json models = ModelsJson("demo", 5);
  CHECK(models["object"] == "list");
  CHECK(models["data"][0]["id"] == "demo");
}

TEST_CASE("serve: streamed chat chunks are framed as OpenAI's") {
  ChatStream s({"chatcmpl-2", "demo", 7}, /*include_usage=*/true);
  std::string sse = s.Start();
  MessageDelta d;
  d.content = "Hel";
  sse += s.Delta(d);
  d.content = "lo";
  sse += s.Delta(d);
  sse += s.Delta(MessageDelta{});  // nothing to send
  sse += s.Finish(FinishReason::kStop, {10, 3, 4});
  const std::vector<Json> ev = Events(sse);
  REQUIRE(ev.size() == 6);
  CHECK(ev[0]["object"] == "chat.completion.chunk");
  CHECK(ev[0]["choices"][0]["delta"] == Json{{"role", "assistant"}, {"content", ""}});
  CHECK(ev[0]["choices"][0]["finish_reason"].is_null());
  CHECK(ev[0]["usage"].is_null());
  std::string joined;
  for (size_t i = 1; i < 3; ++i) joined += ev[i]["choices"][0]["delta"]["content"].get<std::string>();
  CHECK(joined == "Hello");
  CHECK(ev[3]["choices"][0]["delta"] == Json::object());
  CHECK(ev[3]["choices"][0]["finish_reason"] == "stop");
  CHECK(ev[4]["choices"] == Json::array());
  CHECK(ev[4]["usage"]["prompt_tokens"] == 10);
  CHECK(ev[4]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4);
  CHECK(ev[5] == "[DONE]");
  for (size_t i = 0; i < 5; ++i) CHECK(ev[i]["id"] == "chatcmpl-2");

  // Without include_usage: no usage key, no usage chunk.
  ChatStream plain({"c", "demo", 7}, false);
  const std::vector<Json> ev2 = Events(plain.Start() + plain.Finish(FinishReason::kLength, {}));
  REQUIRE(ev2.size() == 3);
  CHECK_FALSE(ev2[0].contains("usage"));
  CHECK(ev2[1]["choices"][0]["finish_reason"] == "length");

  // Tool calls as the parser streams them: id and name first, then the arguments; finish_reason tool_calls.
  ChatStream tools({"c", "demo", 7}, false);
  ToolCallParser parser({"get_weather"});
  std::string out = tools.Start();
  for (const std::string_view piece : {"<|channel>thought\nhm<channel|>", "<|tool_call>call:get_weather{city:",
                                       "<|\"|>Paris<|\"|>}<tool_call|>"})
    out += tools.Delta(parser.Feed(piece));
  out += tools.Delta(parser.Finish());
  out += tools.Finish(FinishReason::kStop, {});
  const std::vector<Json> ev3 = Events(out);
  std::string reasoning, name, args;
  for (const Json& e : ev3) {
    if (e == "[DONE]" || e["choices"].empty()) continue;
    const Json& delta = e["choices"][0]["delta"];
    if (delta.contains("reasoning_content")) reasoning += delta["reasoning_content"].get<std::string>();
    if (delta.contains("tool_calls")) {
      const Json& call = delta["tool_calls"][0];
      CHECK(call["index"] == 0);
      if (call.contains("id")) name = call["function"]["name"];
      args += call["function"]["arguments"].get<std::string>();
    }
  }
  CHECK(reasoning == "hm");
  CHECK(name == "get_weather");
  CHECK(Json::parse(args) == Json{{"city", "Paris"}});
  CHECK(ev3[ev3.size() - 2]["choices"][0]["finish_reason"] == "tool_calls");

  CompletionStream cs({"cmpl-3", "demo", 7}, true);
  MessageDelta piece;
  piece.content = " doc";
  const std::vector<Json> ev4 = Events(cs.Start() + cs.Delta(piece) + cs.Finish(FinishReason::kLength, {3, 1, 0}));
  REQUIRE(ev4.size() == 4);
  CHECK(ev4[0]["object"] == "text_completion");
  CHECK(ev4[0]["choices"][0]["text"] == " doc");
  CHECK(ev4[1]["choices"][0]["finish_reason"] == "length");
  CHECK(ev4[2]["usage"]["completion_tokens"] == 1);
}

TEST_CASE("serve: logprobs in OpenAI's chat shape and the legacy completions shape, whole and streamed") {
  TokenLogprob a{7, "Hel", -0.25f, {{7, "Hel", -0.25f}, {9, "\xe6", -2.0f}}};
  TokenLogprob b{8, "lo", -1.5f, {{3, "la", -0.5f}, {8, "lo", -1.5f}}};
  Reply reply;
  reply.text = "Hello";
  reply.tokens = {7, 8};
  reply.finish = FinishReason::kStop;
  reply.logprobs = std::vector<TokenLogprob>{a, b};
  const Json j = ChatCompletionJson({"c", "demo", 1}, reply);
  const Json& content = j["choices"][0]["logprobs"]["content"];
  REQUIRE(content.size() == 2);
  CHECK(content[0]["token"] == "Hel");
  CHECK(content[0]["logprob"] == -0.25);
  CHECK(content[0]["bytes"] == Json{72, 101, 108});
  CHECK(content[0]["top_logprobs"][1]["bytes"] == Json{0xe6});  // part of a character: the bytes are exact
  CHECK(Dump(j).find("\"token\":\"\xef\xbf\xbd\"") != std::string::npos);  // the text has U+FFFD
  CHECK(content[1]["top_logprobs"][0] == Json{{"token", "la"}, {"logprob", -0.5}, {"bytes", {108, 97}}});
  reply.logprobs.reset();
  CHECK(ChatCompletionJson({"c", "demo", 1}, reply)["choices"][0]["logprobs"].is_null());

  const Json c = CompletionJson({"c", "demo", 1}, "Hello", FinishReason::kStop, {1, 2, 0}, std::vector<TokenLogprob>{a, b});
  const Json& l = c["choices"][0]["logprobs"];
  CHECK(l["tokens"] == Json{"Hel", "lo"});
  CHECK(l["token_logprobs"] == Json{-0.25, -1.5});
  CHECK(l["text_offset"] == Json{0, 3});
  CHECK(l["top_logprobs"][1] == Json{{"la", -0.5}, {"lo", -1.5}});  // the top ones and the sampled one

  // Streamed: each chunk carries the logprobs of the tokens delivered with it; a token with no text yet (held
  // back) rides on the next chunk.
  ChatStream s({"c", "demo", 1}, false);
  MessageDelta held;
  held.logprobs = {a};
  MessageDelta d;
  d.content = "Hello";
  d.logprobs = {b};
  std::string sse = s.Start();  // (one statement each: the order of a + b's calls is unspecified)
  sse += s.Delta(held);
  sse += s.Delta(d);
  sse += s.Finish(FinishReason::kStop, {});
  const std::vector<Json> ev = Events(sse);
  REQUIRE(ev.size() == 4);
  CHECK(ev[0]["choices"][0]["logprobs"].is_null());
  CHECK(ev[1]["choices"][0]["delta"]["content"] == "Hello");
  REQUIRE(ev[1]["choices"][0]["logprobs"]["content"].size() == 2);
  CHECK(ev[1]["choices"][0]["logprobs"]["content"][1]["token"] == "lo");
  CHECK(ev[2]["choices"][0]["logprobs"].is_null());
  CompletionStream cs({"c", "demo", 1}, false);
  MessageDelta p1, p2;
  p1.content = "Hel";
  p1.logprobs = {a};
  p2.content = "lo";
  p2.logprobs = {b};
  std::string sse2 = cs.Start();
  sse2 += cs.Delta(p1);
  sse2 += cs.Delta(p2);
  sse2 += cs.Finish(FinishReason::kStop, {});
  const std::vector<Json> ev2 = Events(sse2);
  REQUIRE(ev2.size() == 4);
  CHECK(ev2[0]["choices"][0]["logprobs"]["text_offset"] == Json{0});
  CHECK(ev2[1]["choices"][0]["logprobs"]["text_offset"] == Json{3});  // continues from the first chunk
  CHECK(ev2[1]["choices"][0]["logprobs"]["tokens"] == Json{"lo"});
}

TEST_CASE("serve: a streamed call withdrawn as malformed is not sent again and does not make finish_reason tool_calls") {
  ChatStream s({"c", "demo", 1}, false);
  ToolCallParser parser({"f"});
  std::string out = s.Start();
  for (const std::string_view piece : {"<|tool_call>call:f{a:", "<|\"|>x<|\"|>,}<tool_call|>", "sorry"}) out += s.Delta(parser.Feed(piece));
  out += s.Delta(parser.Finish());
  out += s.Finish(FinishReason::kStop, {});
  const std::vector<Json> ev = Events(out);
  std::string content;
  size_t call_chunks = 0;
  for (const Json& e : ev) {
    if (e == "[DONE]") continue;
    const Json& delta = e["choices"][0]["delta"];
    if (delta.contains("content")) content += delta["content"].get<std::string>();
    if (delta.contains("tool_calls")) ++call_chunks;
  }
  CHECK(call_chunks >= 2);  // its id and name, and the fragments before the error
  CHECK(content == "<|tool_call>call:f{a:<|\"|>x<|\"|>,}<tool_call|>sorry");
  CHECK(ev[ev.size() - 2]["choices"][0]["finish_reason"] == "stop");
}

}  // namespace g4_test_serve_api
