// What runs the server's requests, with no HTTP in it: a g4::Scheduler (every running request in one forward pass
// per step, chunked prefill, prefix reuse across slots, speculative rounds for a request running alone) stepped by
// one thread. The HTTP handler builds its request's prompt on its own thread (decoding video there, and embedding
// media in turns with the scheduler's passes on the model's thread pool), submits it, and then reads its Exchange:
// events one way, cancellation the other.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "g4/serve/openai.hpp"
#include "g4/session/scheduler.hpp"
#include "g4/session/session.hpp"
#if G4_HAVE_VIDEO
#include "g4/session/video_parts.hpp"
#endif

namespace g4::serve {

// One request's events, from the engine to the handler: Deltas (the answer's pieces), then Done or Failed. The
// handler may Cancel at any point; the scheduler ends the request at its next step and frees the slot.
class Exchange {
 public:
  struct Event {
    enum class Kind { kDelta, kDone, kFailed } kind = Kind::kDelta;
    MessageDelta delta;
    std::optional<Reply> reply;
    std::optional<ApiError> error;
  };

  // Engine side.
  bool Delta(const MessageDelta& d) {
    if (!d.empty()) Push({Event::Kind::kDelta, d, {}, {}});
    return !cancelled();
  }
  void Done(Reply reply) { Push({Event::Kind::kDone, {}, std::move(reply), {}}); }
  void Failed(ApiError error) { Push({Event::Kind::kFailed, {}, {}, std::move(error)}); }
  // What Cancel calls besides setting the flag (the engine: Scheduler::Cancel of this request's id).
  void OnCancel(std::function<void()> f) {
    bool now;
    {
      std::lock_guard lock(mu_);
      on_cancel_ = std::move(f);
      now = cancelled_;
    }
    if (now && on_cancel_) on_cancel_();
  }

  // Handler side: the next event, waiting at most `timeout` (nullopt when none came).
  std::optional<Event> Next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
    Event e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  void Cancel() {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return;
      cancelled_ = true;
      hook = on_cancel_;
    }
    if (hook) hook();
  }
  bool cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

 private:
  void Push(Event e) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::function<void()> on_cancel_;
  bool cancelled_ = false;
};

// A request as the engine takes it: how to build its prompt (on the submitting thread; it may embed media and set
// a grammar on the params; an ApiError or g4::Error thrown there is a 400 naming the error's field), and how to
// decode the answer.
struct EngineRequest {
  std::function<Prompt(const LoadedModel&, GenerateParams&)> prompt;
  GenerateParams params;
  bool chat = false;  // a chat answer: parsed (content, reasoning, tool calls), ends at the turn's end
  ToolChoice tools;   // chat: the calls it may make (RequestToolChoice of the request)
};

struct EngineOptions {
  SchedulerOptions scheduler;  // slots, queue, context per slot, prefill budget, cache type
};

class Engine {
 public:
  Engine(const LoadedModel& model, const EngineOptions& opt)
      : model_(model), scheduler_(model, opt.scheduler), worker_([this](std::stop_token st) { scheduler_.Serve(st); }) {}
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() { Stop(std::chrono::milliseconds(0)); }

  // Builds the request's prompt and queues it; its events then come through the returned Exchange. Throws an
  // ApiError: 400 for a prompt that cannot run (bad media, over the context), 503 when the queue is full or the
  // engine is stopping.
  std::shared_ptr<Exchange> Submit(const EngineRequest& r) {
    if (stopping()) throw ApiError(503, "the server is shutting down");
    std::optional<Prompt> prompt;
    GenerateParams params = r.params;
    try {
      prompt.emplace(r.prompt(model_, params));
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      throw ApiError(400, e.what(), e.where().empty() ? "messages" : e.where());
    }
    const size_t context = scheduler_.options().context;
    if (prompt->size() == 0) throw ApiError(400, "the prompt is empty", "messages");
    if (prompt->size() + 1 > context)
      throw ApiError(400, "the prompt's " + std::to_string(prompt->size()) + " tokens do not fit the context of " + std::to_string(context) +
                              " (leave room for at least one token)",
                     "messages", "", "context_length_exceeded");
    auto ex = std::make_shared<Exchange>();
    SchedulerRequest sr(std::move(*prompt), std::move(params));
    sr.chat = r.chat;
    if (r.chat) {
      sr.turn_stops = model_.chat_stop_ids();
      sr.turn_stops.insert(sr.turn_stops.end(), model_.tool_stop_ids().begin(), model_.tool_stop_ids().end());
      sr.tools = r.tools;
    }
    sr.on_delta = [ex](const MessageDelta& d) { return ex->Delta(d); };
    sr.on_done = [this, ex](const Completion& c) { Finished(*ex, c); };
    uint64_t id;
    try {
      id = scheduler_.Submit(std::move(sr));
    } catch (const QueueFull& e) {
      throw ApiError(503, std::string("the server is busy: ") + e.what());
    } catch (const Error& e) {
      throw ApiError(400, e.what());
    }
    ex->OnCancel([this, id] { scheduler_.Cancel(id); });
    return ex;
  }

  // Stops taking requests; lets those running finish for up to `grace`, cancels what is left, and stops the
  // stepping thread.
  void Stop(std::chrono::milliseconds grace) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (Busy() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    scheduler_.CancelAll();
    while (Busy()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    worker_.request_stop();
    if (worker_.joinable()) worker_.join();
  }

  struct Stats {
    size_t queued = 0, busy = 0, slots = 0, requests = 0, failed = 0, prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
    size_t cache_tokens = 0;  // positions the slots' caches hold
    double generation_seconds = 0;
  };
  Stats stats() const {
    Stats s;
    {
      std::lock_guard lock(mu_);
      s = stats_;
    }
    s.queued = scheduler_.queued();
    s.busy = scheduler_.running();
    const std::vector<Scheduler::SlotState> slots = scheduler_.slot_states();
    s.slots = slots.size();
    for (const Scheduler::SlotState& st : slots) s.cache_tokens += static_cast<size_t>(st.pos);
    return s;
  }
  size_t context() const { return scheduler_.options().context; }
  const Scheduler& scheduler() const { return scheduler_; }

 private:
  bool stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
  }
  bool Busy() const { return scheduler_.queued() + scheduler_.running() > 0; }

  // On the stepping thread, once a request ends.
  void Finished(Exchange& ex, const Completion& c) {
    {
      std::lock_guard lock(mu_);
      ++stats_.requests;
      if (!c.error.empty()) ++stats_.failed;
      stats_.prompt_tokens += c.reply.prompt_tokens;
      stats_.cached_tokens += c.reply.cached_tokens;
      stats_.generated_tokens += c.reply.tokens.size();
      stats_.generation_seconds += c.reply.generation_seconds;
    }
    if (!c.error.empty()) return ex.Failed(ApiError(500, "generation failed: " + c.error));
    ex.Done(c.reply);
  }

  const LoadedModel& model_;
  Scheduler scheduler_;
  mutable std::mutex mu_;
  bool stopping_ = false;
  Stats stats_;
  std::jthread worker_;  // last: it steps scheduler_ until stopped
};

// A chat request's media embedded, in order, with the request they go with: each video's sound (when the model
// has an audio embedder) follows it as audio items in 30 s pieces, as g4 run --video puts it, so the request gets
// a {"type": "audio"} part after the video's for each. A video whose frames would not fit `context` is refused
// (naming its part) before a frame is decoded.
struct EmbeddedChat {
  Json request;
  std::vector<Media> media;
};

inline EmbeddedChat EmbedChatMedia(const LoadedModel& lm, const ChatRequest& r, [[maybe_unused]] size_t context) {
  EmbeddedChat out{r.request, {}};
  size_t next = 0;  // r.media[next]: the next media part's
  for (Json& msg : out.request["messages"]) {
    if (!msg.contains("content") || !msg["content"].is_array()) continue;
    Json parts = Json::array();
    for (Json& part : msg["content"]) {
      const std::string type = part.value("type", "");
      if (type != "image" && type != "audio" && type != "video") {
        parts.push_back(std::move(part));
        continue;
      }
      const InputMedia& m = r.media.at(next++);
      parts.push_back(std::move(part));
      if (m.kind == Part::Kind::kImage) {
        out.media.push_back(lm.EmbedImage(m.image, m.image_budget));
      } else if (m.kind == Part::Kind::kAudio) {
        std::vector<Media> clips = lm.EmbedAudio(m.audio);
        Require(clips.size() == 1, "input_audio", "one clip of at most 30 s per part");
        out.media.push_back(std::move(clips[0]));
      } else {
#if G4_HAVE_VIDEO
        VideoOptions opt = r.video;
        opt.audio = lm.checkpoint().audio().has_value();
        const std::string where = m.param + ".video_url.url";
        const size_t tokens = VideoTokenEstimate(ProbeVideo(m.video, where, opt), opt, kDefaultVideoFrameBudget, where);
        if (tokens >= context)
          throw ApiError(400, m.param + ": the video takes about " + std::to_string(tokens) + " tokens, over the context of " +
                                  std::to_string(context) + ": sample fewer frames (mm_processor_kwargs num_frames or fps) or send a shorter clip",
                         m.param, "", "context_length_exceeded");
        for (Part& p : VideoParts(lm, m.video, where, opt)) {
          if (p.kind == Part::Kind::kAudio) parts.push_back({{"type", "audio"}});
          out.media.push_back(std::move(p.media));
        }
#else
        throw ApiError(400, "this g4 was built without video support (FFmpeg)", m.param);
#endif
      }
    }
    msg["content"] = std::move(parts);
  }
  return out;
}

// An engine request for a chat completion: the prompt and parsing Session::RespondTo uses. `context`: a slot's,
// for the check of each video before it is decoded (the engine checks the whole prompt against it in any case).
inline EngineRequest ChatEngineRequest(std::shared_ptr<const ChatRequest> r, size_t context = std::numeric_limits<size_t>::max()) {
  EngineRequest er;
  er.prompt = [r, context](const LoadedModel& lm, GenerateParams& params) {
    const EmbeddedChat chat = EmbedChatMedia(lm, *r, context);
    params = ConstrainedChatParams(lm, chat.request, std::move(params));  // as Session::RespondTo
    return Session::ChatPrompt(lm, chat.request, chat.media, r->params.enable_thinking);
  };
  er.params = r->params;
  er.chat = true;
  er.tools = RequestToolChoice(r->request);
  return er;
}

// An engine request for a (raw) text completion.
inline EngineRequest CompletionEngineRequest(std::shared_ptr<const CompletionRequest> r) {
  EngineRequest er;
  er.prompt = [r](const LoadedModel& lm, GenerateParams&) { return Session::RawPrompt(lm, r->prompt, {}); };
  er.params = r->params;
  return er;
}

}  // namespace g4::serve
