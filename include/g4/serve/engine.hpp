// What runs the server's requests, with no HTTP in it: a fixed number of slots (each a Session: one cached
// conversation), a bounded queue, and one worker thread that runs the requests one at a time (the model's forward
// pass is not thread-safe). Each request goes to the slot whose cache shares the longest prefix with its prompt
// (else the least recently used), so a chat's next turn recomputes only what is new.
//
// A request talks to its HTTP handler through an Exchange (events one way, cancellation the other), and the
// handler only calls Engine::Submit: a batched scheduler (many sequences per forward pass) can take the worker's
// place behind the same two types.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "g4/serve/openai.hpp"
#include "g4/session/session.hpp"

namespace g4::serve {

// One request's events, from the engine to the handler: Started once the prompt is built and fits (or Failed),
// then Deltas (the answer's pieces), then Done (or Failed). The handler may Cancel at any point; generation stops at the next piece.
class Exchange {
 public:
  struct Event {
    enum class Kind { kStarted, kDelta, kDone, kFailed } kind = Kind::kDelta;
    MessageDelta delta;
    std::optional<Reply> reply;
    std::optional<ApiError> error;
  };

  // Engine side.
  void Started() { Push({Event::Kind::kStarted, {}, {}, {}}); }
  bool Delta(const MessageDelta& d) {
    if (!d.empty()) Push({Event::Kind::kDelta, d, {}, {}});
    return !cancelled();
  }
  void Done(Reply reply) { Push({Event::Kind::kDone, {}, std::move(reply), {}}); }
  void Failed(ApiError error) { Push({Event::Kind::kFailed, {}, {}, std::move(error)}); }

  // Handler side: the next event, waiting at most `timeout` (nullopt when none came).
  std::optional<Event> Next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
    Event e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  void Cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
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
  bool cancelled_ = false;
};

// A request as the engine runs it, both steps on the engine's thread: `prompt` builds the prompt (it may embed
// media, which uses the model's thread pool; an ApiError or g4::Error thrown there fails the request with a 400)
// to pick the slot, and `run` answers on that slot's session, streaming through the callback.
struct EngineRequest {
  std::function<Prompt(const LoadedModel&)> prompt;
  std::function<Reply(Session&, const DeltaCallback&)> run;
  std::shared_ptr<Exchange> exchange;
};

struct EngineOptions {
  size_t slots = 1;
  size_t max_queue = 16;  // requests waiting beyond the one running; more are refused (503)
  SessionOptions session;
};

class Engine {
 public:
  Engine(const LoadedModel& model, const EngineOptions& opt) : model_(model), opt_(opt) {
    Require(opt.slots >= 1, "engine", "needs at least one slot");
    for (size_t i = 0; i < opt.slots; ++i) slots_.push_back({std::make_unique<Session>(model, opt.session), 0, false});
    worker_ = std::thread([this] { Work(); });
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() { Stop(); }

  // Queues a request; false when the queue is full (or the engine stopped).
  bool Submit(EngineRequest r) {
    {
      std::lock_guard lock(mu_);
      if (stopping_ || queue_.size() >= opt_.max_queue) return false;
      queue_.push_back(std::move(r));
    }
    cv_.notify_all();
    return true;
  }

  // Cancels what is queued and running, and joins the worker.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (EngineRequest& r : queue_) r.exchange->Failed(ApiError(503, "the server is shutting down"));
      queue_.clear();
      if (running_) running_->Cancel();
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  struct Stats {
    size_t queued = 0, busy = 0, slots = 0, requests = 0, prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
    double generation_seconds = 0;
  };
  Stats stats() const {
    std::lock_guard lock(mu_);
    Stats s = stats_;
    s.queued = queue_.size();
    s.busy = running_ ? 1 : 0;
    s.slots = slots_.size();
    return s;
  }
  size_t context() const { return opt_.session.context; }

 private:
  struct Slot {
    std::unique_ptr<Session> session;
    uint64_t last_used = 0;
    bool broken = false;
  };

  // The slot whose cache the prompt continues best: the longest shared prefix, except that an empty slot is taken
  // before a weak match (under a quarter of what that slot holds: a shared chat header alone does not evict another
  // conversation); with nothing shared, the least recently used slot.
  size_t PickSlot(const Prompt& prompt) const {
    size_t best = slots_.size(), best_len = 0, empty = slots_.size(), lru = 0;
    for (size_t i = 0; i < slots_.size(); ++i) {
      const std::vector<uint64_t>& cached = slots_[i].session->cached_keys();
      if (cached.empty() && empty == slots_.size()) empty = i;
      if (slots_[i].last_used < slots_[lru].last_used) lru = i;
      const size_t len = prompt.CommonPrefix(cached);
      if (len > best_len) best = i, best_len = len;
    }
    if (best < slots_.size() && (empty == slots_.size() || 4 * best_len >= slots_[best].session->cached_keys().size())) return best;
    return empty < slots_.size() ? empty : lru;
  }

  void Work() {
    for (uint64_t tick = 1;; ++tick) {
      EngineRequest r;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        r = std::move(queue_.front());
        queue_.pop_front();
        running_ = r.exchange;
      }
      Run(r, tick);
      std::lock_guard lock(mu_);
      running_.reset();
    }
  }

  void Run(EngineRequest& r, uint64_t tick) {
    Exchange& ex = *r.exchange;
    if (ex.cancelled()) return ex.Failed(ApiError(499, "cancelled while queued"));
    std::optional<Prompt> prompt;
    try {
      prompt.emplace(r.prompt(model_));
    } catch (const ApiError& e) {
      return ex.Failed(e);
    } catch (const Error& e) {
      return ex.Failed(ApiError(400, e.what(), "messages"));
    } catch (const std::exception& e) {
      return ex.Failed(ApiError(500, std::string("building the prompt: ") + e.what()));
    }
    if (prompt->size() == 0) return ex.Failed(ApiError(400, "the prompt is empty", "messages"));
    if (prompt->size() + 1 > opt_.session.context)
      return ex.Failed(ApiError(400, "the prompt's " + std::to_string(prompt->size()) + " tokens do not fit the context of " +
                                         std::to_string(opt_.session.context) + " (leave room for at least one token)",
                                "messages", "", "context_length_exceeded"));
    const size_t i = PickSlot(*prompt);
    Slot& slot = slots_[i];
    slot.last_used = tick;
    ex.Started();
    try {
      Reply reply = r.run(*slot.session, [&](const MessageDelta& d) { return ex.Delta(d); });
      {
        std::lock_guard lock(mu_);
        ++stats_.requests;
        stats_.prompt_tokens += reply.prompt_tokens;
        stats_.cached_tokens += reply.cached_tokens;
        stats_.generated_tokens += reply.tokens.size();
        stats_.generation_seconds += reply.prompt_seconds + reply.generation_seconds;
      }
      ex.Done(std::move(reply));
    } catch (const std::exception& e) {
      // The slot's cache may be anywhere now: start it afresh.
      slot.session = std::make_unique<Session>(model_, opt_.session);
      ex.Failed(ApiError(500, std::string("generation failed: ") + e.what()));
    }
  }

  const LoadedModel& model_;
  EngineOptions opt_;
  std::vector<Slot> slots_;  // the worker's alone
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EngineRequest> queue_;
  std::shared_ptr<Exchange> running_;
  bool stopping_ = false;
  Stats stats_;
  std::thread worker_;
};

// A chat request's media embedded, in order (on the engine's thread: embedding runs the model's thread pool).
inline std::vector<Media> EmbedRequestMedia(const LoadedModel& lm, const ChatRequest& r) {
  std::vector<Media> out;
  for (const InputMedia& m : r.media) {
    if (m.kind == Part::Kind::kImage) {
      out.push_back(lm.EmbedImage(m.image, m.image_budget));
      continue;
    }
    std::vector<Media> clips = lm.EmbedAudio(m.audio);
    Require(clips.size() == 1, "input_audio", "one clip of at most 30 s per part");
    out.push_back(std::move(clips[0]));
  }
  return out;
}

// An engine request for a chat completion.
inline EngineRequest ChatEngineRequest(std::shared_ptr<const ChatRequest> r) {
  auto media = std::make_shared<std::vector<Media>>();
  EngineRequest er;
  er.prompt = [r, media](const LoadedModel& lm) {
    *media = EmbedRequestMedia(lm, *r);
    return Session::ChatPrompt(lm, r->request, *media, r->params.enable_thinking);  // what RespondTo runs
  };
  er.run = [r, media](Session& s, const DeltaCallback& on_delta) { return s.RespondTo(r->request, *media, r->params, {}, on_delta); };
  return er;
}

// An engine request for a (raw) text completion.
inline EngineRequest CompletionEngineRequest(std::shared_ptr<const CompletionRequest> r) {
  EngineRequest er;
  er.prompt = [r](const LoadedModel& lm) { return Session::RawPrompt(lm, r->prompt, {}); };
  er.run = [r](Session& s, const DeltaCallback& on_delta) {
    return s.Complete(r->prompt, {}, r->params, [&](std::string_view piece) {
      MessageDelta d;
      d.content = piece;
      return on_delta(d);
    });
  };
  return er;
}

}  // namespace g4::serve
