// g4 serve: an OpenAI-compatible HTTP server (cpp-httplib) over the batched scheduler. This file is the HTTP face
// only: flags, routes, authentication, streaming and logging; requests are translated by g4/serve/openai.hpp and
// run by g4/serve/engine.hpp.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <httplib.h>

#include "args.hpp"
#include "chat_page.hpp"  // kChatPage: web/chat.html, embedded at build time by web/embed.py
#include "command.hpp"
#include "memory_check.hpp"
#include "peer_gone.hpp"
#include "g4/serve/engine.hpp"
#include "g4/serve/metrics.hpp"
#include "g4/serve/tokenize.hpp"

namespace g4cli::cmd_serve {

using namespace g4;
using namespace g4::serve;

const char* kHelp = R"(usage: g4 serve -m MODEL [options]

An OpenAI-compatible HTTP server: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
GET /metrics (Prometheus), POST /tokenize and /detokenize (llama-server's shapes), and a chat page at GET /.

  -m, --model PATH        Hugging Face folder or GGUF file
  --mmproj FILE           vision/audio embedders of a GGUF model (images, audio and video in chat requests)
  --draft FILE            MTP drafter: speculative decoding
  --host H                address to listen on (default 127.0.0.1)
  --port P                port (default 8080; 0: any free port, printed at start)
  -np, --parallel N       slots: requests decoded together, each keeping its conversation's cache (default 4)
  --queue N               requests that may wait for a slot (default 64; more get 503)
  -c, --ctx-size N        context per slot in tokens (default 4096)
  -b, --batch-size N      prompt tokens per step over all slots (chunked prefill; default 128)
  --cache-type T          KV cache of keys and values: f32 (default), f16, q8_0 or q4_0 (as g4 run's)
  -ctk, --cache-type-k T  the keys' type alone; -ctv, --cache-type-v T the values' (llama.cpp's flags)
  -t, --threads N         threads (default: all)
  --api-key KEY           require "Authorization: Bearer KEY" (also read from G4_API_KEY)
  --alias NAME            the model's name in responses and /v1/models (default: the file's name)
  --chat-template-file F  a Jinja chat template for requests with tools (default: the model's own)
  --max-body-mb N         largest request body in MiB (default 64; larger: 413), and largest file:// media file
  --allowed-local-media-path DIR  image_url and video_url parts may also be file:// URLs of files under DIR
  --no-warmup             do not read the weights into memory before serving
  --shutdown-grace S      on SIGINT/SIGTERM, let running requests finish for S seconds (default 10), then cancel
  --no-memory-check       start even where the weights and every slot's KV cache and buffers need more than the
                          available memory (MemAvailable, a cgroup limit, or G4_AVAILABLE_MEMORY=SIZE)
)";

std::atomic<int> g_signal{0};
extern "C" void OnSignal(int sig) { g_signal = sig; }

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  if (e.status() == 503) res.set_header("Retry-After", "1");
  res.set_content(Dump(ErrorJson(e)), "application/json");
}

// Everything the routes share once the model is loaded.
struct Server {
  Engine& engine;
  const Tokenizer& tokenizer;
  std::string model_name;
  Capabilities caps;
  int64_t created = 0;
};

// The request being handled on this thread (httplib runs a request's routing, handler, streaming and logger on
// one worker thread): when it started and the tokens it generated, for its log line.
thread_local std::chrono::steady_clock::time_point t_request;
thread_local size_t request_tokens = 0;

// Runs an engine request and answers it: one JSON object made by `whole` from the reply, or (streaming)
// server-sent events made by `stream`. The prompt is built and checked before anything is sent, so a prompt over
// the context is still a 400 when streamed. A client that leaves cancels its request within 100 ms: a streamed one
// when a write fails or its socket closes, a whole one when its socket closes (logged as nginx's 499).
template <class Stream, class Whole>
void Answer(Server& s, const EngineRequest& er, std::shared_ptr<Stream> stream, Whole whole, const httplib::Request& req,
            httplib::Response& res) {
  std::shared_ptr<Exchange> ex = s.engine.Submit(er);
  using Kind = Exchange::Event::Kind;
  if (!stream) {  // until the answer is complete, or its client has left
    const PeerGone gone(req);
    for (;;) {
      const std::optional<Exchange::Event> e = ex->Next(std::chrono::milliseconds(100));
      if (e && e->kind == Kind::kFailed) throw *e->error;
      if (e && e->kind == Kind::kDone) {
        request_tokens = e->reply->tokens.size();
        res.set_content(Dump(whole(*e->reply)), "application/json");
        return;
      }
      if (gone()) return ex->Cancel(), void(res.status = 499);  // a recv peek: about a microsecond
    }
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [ex, stream, started = false](size_t, httplib::DataSink& sink) mutable {
        auto send = [&](const std::string& bytes) {
          if (bytes.empty() || sink.write(bytes.data(), bytes.size())) return true;
          ex->Cancel();  // the client is gone: stop generating
          return false;
        };
        if (!started) {
          started = true;
          if (!send(stream->Start())) return false;
        }
        for (;;) {
          if (!sink.is_writable()) return ex->Cancel(), false;
          std::optional<Exchange::Event> e = ex->Next(std::chrono::milliseconds(100));
          if (!e) continue;
          if (e->kind == Kind::kDelta && !send(stream->Delta(e->delta))) return false;
          if (e->kind == Kind::kFailed) {
            send(Sse(ErrorJson(*e->error)) + std::string(kSseDone));
            sink.done();
            return true;
          }
          if (e->kind == Kind::kDone) {
            request_tokens = e->reply->tokens.size();
            if (!send(stream->Finish(e->reply->finish, UsageOf(*e->reply)))) return false;
            sink.done();
            return true;
          }
        }
      },
      [ex](bool) { ex->Cancel(); });
}

void HandleChat(Server& s, const httplib::Request& req, httplib::Response& res) {
  auto r = std::make_shared<const ChatRequest>(ParseChatRequest(ParseBody(req.body), s.caps));
  const ResponseMeta meta = NewMeta("chatcmpl-", s.model_name);
  auto stream = r->stream ? std::make_shared<ChatStream>(meta, r->include_usage) : nullptr;
  Answer(s, ChatEngineRequest(r, s.engine.context()), stream, [&](const Reply& reply) { return ChatCompletionJson(meta, reply); }, req, res);
}

void HandleCompletion(Server& s, const httplib::Request& req, httplib::Response& res) {
  auto r = std::make_shared<const CompletionRequest>(ParseCompletionRequest(ParseBody(req.body)));
  const ResponseMeta meta = NewMeta("cmpl-", s.model_name);
  auto stream = r->stream ? std::make_shared<CompletionStream>(meta, r->include_usage) : nullptr;
  Answer(s, CompletionEngineRequest(r), stream,
         [&](const Reply& reply) { return CompletionJson(meta, reply.text, reply.finish, UsageOf(reply), reply.logprobs); }, req, res);
}

// Wraps a handler: every refusal is an OpenAI error object, and nothing escapes to httplib.
httplib::Server::Handler Guard(const std::atomic<Server*>& ready, void (*handler)(Server&, const httplib::Request&, httplib::Response&)) {
  return [&ready, handler](const httplib::Request& req, httplib::Response& res) {
    try {
      Server* s = ready.load();
      if (!s) throw ApiError(503, "the model is loading");
      handler(*s, req, res);
    } catch (const ApiError& e) {
      SendError(res, e);
    } catch (const std::exception& e) {
      SendError(res, ApiError(500, e.what()));
    }
  };
}

void HandleTokenize(Server& s, const httplib::Request& req, httplib::Response& res) {
  res.set_content(Dump(TokenizeJson(s.tokenizer, ParseBody(req.body))), "application/json");
}

void HandleDetokenize(Server& s, const httplib::Request& req, httplib::Response& res) {
  res.set_content(Dump(DetokenizeJson(s.tokenizer, ParseBody(req.body))), "application/json");
}

int RunServe(std::vector<std::string> argv) {
  const g4cli::Args args(argv,
                         {"--model", "--mmproj", "--draft", "--host", "--port", "--parallel", "--queue", "--ctx-size", "--batch-size",
                          "--cache-type", "--cache-type-k", "--cache-type-v", "--threads", "--api-key", "--alias", "--chat-template-file", "--max-body-mb", "--shutdown-grace",
                          "--allowed-local-media-path"},
                         {"--help", "--no-warmup", g4cli::kNoMemoryCheck},
                         {{"-m", "--model"}, {"-np", "--parallel"}, {"-c", "--ctx-size"}, {"-b", "--batch-size"}, {"-t", "--threads"}, {"-h", "--help"},
                          {"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"}});
  if (args.has("--help")) return std::printf("%s", kHelp), 0;
  Require(args.has("--model"), "serve", "-m MODEL is required (see --help)");
  Require(args.positional().empty(), args.positional().empty() ? "" : args.positional()[0], "unexpected argument (see --help)");
  const std::string host = args.get("--host", "127.0.0.1");
  const int port = static_cast<int>(args.get_int("--port", 8080, 0, 65535));
  EngineOptions eo;
  SchedulerOptions& so = eo.scheduler;
  so.slots = static_cast<size_t>(args.get_int("--parallel", 4, 1, 256));
  so.queue = static_cast<size_t>(args.get_int("--queue", 64, 1, 4096));
  so.context = static_cast<size_t>(args.get_int("--ctx-size", 4096, 16, 1 << 24));
  so.prefill_budget = static_cast<size_t>(args.get_int("--batch-size", 128, 1, 1 << 16));
  so.cache_type = KVCacheTypesFromNames(args.get("--cache-type"), args.get("--cache-type-k"), args.get("--cache-type-v"));
  const auto grace = std::chrono::milliseconds(args.get_int("--shutdown-grace", 10, 0, 3600) * 1000);
  const size_t max_body = static_cast<size_t>(args.get_int("--max-body-mb", 64, 1, 4096)) << 20;
  std::filesystem::path local_media;  // file:// media allowed under this folder (vLLM's flag)
  if (args.has("--allowed-local-media-path")) {
    std::error_code ec;
    local_media = std::filesystem::canonical(args.get("--allowed-local-media-path"), ec);
    Require(!ec && std::filesystem::is_directory(local_media), "--allowed-local-media-path",
            "'" + args.get("--allowed-local-media-path") + "' is not a folder");
  }
  std::string api_key = args.get("--api-key");
  if (api_key.empty())
    if (const char* env = std::getenv("G4_API_KEY")) api_key = env;

  ModelFiles files;
  files.model = args.get("--model");
  files.mmproj = args.get("--mmproj");
  files.draft = args.get("--draft");
  files.chat_template = args.get("--chat-template-file");
  g4cli::CheckMemory(args, {"--ctx-size", "--cache-type", "--parallel", ""},
                     [&](const MemoryFlags& f) { return PlanMemory(files, MemoryShape::For(so), f); });

  // Listen first, so /health answers 503 while the model loads.
  httplib::Server http;
  std::atomic<Server*> ready{nullptr};
  http.new_task_queue = [n = so.slots + so.queue + 8] { return new httplib::ThreadPool(n); };
  http.set_payload_max_length(max_body);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  HttpCounters counters;
  http.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    t_request = std::chrono::steady_clock::now();
    request_tokens = 0;
    // The chat page holds no secret and a browser cannot send a key to load it: it asks for the key itself.
    if (api_key.empty() || req.path == "/health" || (req.path == "/" && req.method == "GET")) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + api_key) return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, ApiError(401, "missing or wrong API key (Authorization: Bearer ...)", "", "authentication_error", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
    counters.Count(res.status);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t_request).count();
    std::fprintf(stderr, "%s %s %d %zu tokens %lld ms\n", req.method.c_str(), req.path.c_str(), res.status, request_tokens,
                 static_cast<long long>(ms));
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string what = res.status == 404 ? "no such route" : res.status == 413 ? "request body too large" : "bad request";
    SendError(res, ApiError(res.status, what));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, ApiError(500, "internal error"));
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    // Only the page's own script runs (by its hash); pictures and sounds come from data: URLs the page makes.
    res.set_header("Content-Security-Policy", "default-src 'self'; script-src " + std::string(kChatPage_script_csp) +
                                                  "; style-src 'unsafe-inline'; img-src data: blob:; media-src data: blob:");
    res.set_content(kChatPage.data(), kChatPage.size(), "text/html; charset=utf-8");
  });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    if (!ready.load()) return SendError(res, ApiError(503, "the model is loading"));
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/v1/models", Guard(ready, [](Server& s, const httplib::Request&, httplib::Response& res) {
             res.set_content(Dump(ModelsJson(s.model_name, s.created)), "application/json");
           }));
  http.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    Server* s = ready.load();
    if (!s) return SendError(res, ApiError(503, "the model is loading"));
    res.set_content(MetricsText(s->engine.stats(), counters.by_status()), "text/plain; version=0.0.4");
  });
  http.Post("/tokenize", Guard(ready, HandleTokenize));
  http.Post("/detokenize", Guard(ready, HandleDetokenize));
  http.Post("/v1/chat/completions", Guard(ready, HandleChat));
  http.Post("/chat/completions", Guard(ready, HandleChat));
  http.Post("/v1/completions", Guard(ready, HandleCompletion));
  http.Post("/completions", Guard(ready, HandleCompletion));

  const int bound = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  Require(bound > 0, host + ":" + std::to_string(port), "cannot listen");
  std::thread listener([&] { http.listen_after_bind(); });
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  std::fprintf(stderr, "g4 serve: listening on http://%s:%d (loading the model)\n", host.c_str(), bound);

  try {
    ThreadPool pool(static_cast<size_t>(args.get_int("--threads", 0, 1, ThreadPool::kMaxThreads)));
    const LoadedModel lm(files, pool);
    if (!lm.chat_note().empty()) std::fprintf(stderr, "note: %s\n", lm.chat_note().c_str());
    if (!args.has("--no-warmup")) lm.Prefault();
    Engine engine(lm, eo);
    std::string name = args.get("--alias");
    if (name.empty()) name = std::filesystem::path(args.get("--model")).filename().string();
    if (name.empty()) name = std::filesystem::path(args.get("--model")).parent_path().filename().string();
    Server s{engine, lm.tokenizer(), name, {}, 0};
    s.caps.vision = lm.checkpoint().vision().has_value();
    s.caps.audio = lm.checkpoint().audio().has_value();
#if G4_HAVE_VIDEO
    s.caps.video = true;  // video_url parts need FFmpeg (the meson feature video)
#endif
    s.caps.chat_template = lm.chat_template() != nullptr;
    s.caps.local_media = local_media;
    s.caps.local_media_max_bytes = max_body;
    s.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    ready = &s;
    std::fprintf(stderr, "g4 serve: ready (%s, %zu slot(s) of %zu tokens)\n", name.c_str(), so.slots, so.context);
    while (g_signal == 0 && http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::fprintf(stderr, "g4 serve: stopping (new requests get 503; running ones have %lld s)\n", static_cast<long long>(grace.count() / 1000));
    engine.Stop(grace);
    http.stop();
    listener.join();
    ready = nullptr;
  } catch (...) {
    http.stop();
    listener.join();
    throw;
  }
  return 0;
}

const g4cli::RegisterCommand kRegister("serve", "an OpenAI-compatible HTTP server (chat, completions, images, audio)", RunServe);

}  // namespace g4cli::cmd_serve
