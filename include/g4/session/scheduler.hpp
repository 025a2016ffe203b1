// Many requests on one model (an engine that a server or an embedder drives): a fixed number of slots, each a
// Sequence plus the cache keys (Prompt::keys) of what it holds; a bounded queue of requests; and steps that put
// every decoding request (one token each) and a budget of prompt tokens (chunked prefill: a long prompt advances at
// most prefill_budget tokens a step, and beside decoding requests only as many as keep the step within prefill_stall
// times a step without prefill, as PrefillBudget learns from the steps' times) into ONE Gemma4::ForwardBatch.
//
// Per request: a Prompt (as Session::ChatPrompt / RawPrompt build it), GenerateParams (sampling, max tokens, stop
// ids, stop strings, speculative: see below), a streaming text callback
// (UTF-8-safe, cut at stop strings; returning false cancels), cancellation from any thread at any point (the slot is
// free at the next step), and a Completion (the Reply: tokens, text, finish reason, prompt / cached token counts).
// Each request's tokens are those it would get alone (Session::Run, same params and seed): its sampler is its own.
//
// Speculative decoding: with a drafter and ONE request running (decoding, params.speculative), a step is a
// speculative round (model/generate.hpp's SpeculativeRound: k drafts verified in one pass) instead of a batch of
// one; with more requests the batch already shares each pass over the weights, so they decode plainly. Tokens are
// those of plain decoding either way (greedy: identical; sampling: the same distribution).
//
// Prefix reuse: a request goes to the idle slot whose cache shares the longest prefix with its prompt (rolled back
// to it, Sequence::Rollback, where the sliding rings allow), unless that is under a quarter of what the slot holds
// and an empty slot is idle; else to the least recently used idle slot.
//
// Memory: every slot's cache is allocated when the scheduler is built (slots x context), so a step never allocates a
// cache; a prompt that does not fit the context is refused at Submit. Whether slots x context fits the machine is
// checked before the model loads (session/memory_plan.hpp).
//
// Threads: Submit, Cancel, Take and Wait may be called from any thread while one thread steps (Step, RunUntilIdle,
// Serve); steps from several threads take turns. Callbacks (on_text, on_done) run on the stepping thread, with no
// lock of the scheduler held (they may Submit or Cancel).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "g4/model/drafter.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/generate.hpp"
#include "g4/model/prompt.hpp"
#include "g4/session/loaded_model.hpp"
#include "g4/session/prefill_budget.hpp"
#include "g4/session/request_decoding.hpp"

namespace g4 {

struct SchedulerOptions {
  size_t slots = 4;             // sequences decoded at once
  size_t queue = 64;            // most requests waiting for a slot (Submit refuses more)
  size_t context = 4096;        // each slot's positions (prompt + answer)
  size_t max_chunk = 512;       // each slot's Sequence max_chunk (most tokens of one entry in a pass)
  size_t prefill_budget = 128;  // most prompt tokens per step, over all prefilling requests (an image block that
                                // starts a chunk goes whole, even past it)
  double prefill_stall = 2.5;   // beside decoding requests, a step takes at most this many times a step without
                                // prefill (PrefillBudget); <= 0: always prefill_budget
  KVTypes cache_type = {};  // of keys and values (default F32)
};

// Submit's refusal when the queue is full (a server answers 503 and the client retries), apart from requests that
// can never run (a plain g4::Error).
class QueueFull : public Error {
 public:
  using Error::Error;
};

struct Completion {
  uint64_t id = 0;
  Reply reply;        // finish kCancelled for Cancel, a callback that said stop, or an error
  std::string error;  // what went wrong (a forward pass or a callback threw), else empty
};

struct SchedulerRequest {
  SchedulerRequest(Prompt p, GenerateParams g = {}, TextCallback text = {}, std::function<void(const Completion&)> done = {},
                   std::vector<int32_t> stops = {})
      : prompt(std::move(p)), params(std::move(g)), on_text(std::move(text)), on_done(std::move(done)), turn_stops(std::move(stops)) {}

  Prompt prompt;
  GenerateParams params;
  TextCallback on_text;  // streamed text; false cancels
  // Called once the request ends (on the stepping thread). Without it the Completion waits for Take / Wait.
  std::function<void(const Completion&)> on_done;
  std::vector<int32_t> turn_stops;  // besides the model's stop ids and params.stop_ids (a chat's <turn|>)
  // A chat answer (a prompt from Session::ChatPrompt; turn_stops then LoadedModel::chat_stop_ids and tool_stop_ids),
  // parsed as Session::RespondTo parses it: content to on_text, thoughts and the calls `tools` allows to on_delta
  // (tools: RequestToolChoice of the request). Without chat, on_delta gets the text too (with logprobs, if asked).
  bool chat = false;
  ToolChoice tools;
  DeltaCallback on_delta;
};

class Scheduler {
 public:
  Scheduler(const LoadedModel& m, const SchedulerOptions& opt = {})
      : Scheduler(m.model(), &m.tokenizer(), m.suppressed(), opt, m.drafter()) {}
  // tokenizer may be null: no text is streamed and stop strings are not looked for. drafter may be null.
  Scheduler(const Gemma4& model, const Tokenizer* tokenizer, std::vector<int32_t> suppressed, const SchedulerOptions& opt,
            const Drafter* drafter = nullptr)
      : model_(model), tok_(tokenizer), drafter_(drafter), suppressed_(std::move(suppressed)), opt_(opt),
        budget_(std::max<size_t>(opt.prefill_budget, 1), opt.prefill_stall) {
    Require(opt.slots >= 1, "scheduler", "needs at least one slot");
    Require(opt.prefill_budget >= 1, "scheduler", "prefill_budget must be >= 1");
    Require(opt.max_chunk >= 1, "scheduler", "max_chunk must be >= 1");
    for (size_t i = 0; i < opt.slots; ++i)
      slots_.push_back({model.NewSequence(opt.context, opt.max_chunk, opt.cache_type), {}, nullptr, 0});
  }
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request; returns its id. A g4::Error when the queue is full, or the request cannot run (its prompt
  // does not fit the context, an image block exceeds max_chunk, invalid sampling parameters).
  uint64_t Submit(SchedulerRequest r) {
    const ForwardInput in = r.prompt.input(0);  // an empty prompt is an error here
    for (size_t i = 0; i < in.block_id.size();) {
      size_t j = i + 1;
      if (in.block_id[i] >= 0)
        while (j < in.block_id.size() && in.block_id[j] == in.block_id[i]) ++j;
      Require(j - i <= opt_.max_chunk, "scheduler",
              "an image block of " + std::to_string(j - i) + " tokens exceeds max_chunk " + std::to_string(opt_.max_chunk));
      i = j;
    }
    auto job = std::make_shared<Job>(std::move(r));
    job->dec = std::make_unique<RequestDecoding>(model_.config(), tok_, suppressed_, job->req.prompt, job->req.turn_stops,
                                                 job->req.params, job->req.on_text, opt_.context, job->req.chat,
                                                 job->req.tools, job->req.on_delta);
    std::lock_guard lk(mu_);
    if (queue_.size() >= opt_.queue)
      throw QueueFull("scheduler", "the request queue is full (" + std::to_string(opt_.queue) + " requests waiting); try again later");
    job->id = ++last_id_;
    queue_.push_back(job);
    live_[job->id] = job;
    cv_.notify_all();
    return job->id;
  }

  // Cancels a queued or running request (from any thread); it ends, kCancelled, at the next step, which frees its
  // slot. False when the id is not running or queued (unknown, or already ended).
  bool Cancel(uint64_t id) {
    std::lock_guard lk(mu_);
    const auto it = live_.find(id);
    if (it == live_.end()) return false;
    it->second->cancel = true;
    cv_.notify_all();
    return true;
  }

  // Cancels every queued and running request (a server shutting down).
  void CancelAll() {
    std::lock_guard lk(mu_);
    for (auto& [id, job] : live_) job->cancel = true;
    cv_.notify_all();
  }

  // One step: ends cancelled requests, admits queued ones to idle slots, then one forward pass over every decoding
  // request and up to prefill_budget prompt tokens (fewer beside decoding requests: prefill_stall). Returns whether
  // work remains (running or queued requests).
  bool Step() {
    std::lock_guard step(step_mu_);
    std::vector<Completion> ended;
    std::vector<std::function<void(const Completion&)>> notify;
    {
      std::lock_guard lk(mu_);
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->cancel) {
          (*it)->dec->Finish(true);
          ended.push_back(Complete(**it, {}));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Slot& s : slots_)
      if (s.job && s.job->cancel) End(s, true, {}, ended);
    Admit(ended);
    Run(ended);
    return Report(ended);
  }

  // Steps until no request is running or queued.
  void RunUntilIdle() {
    while (Step()) {
    }
  }

  // Steps while there is work and waits for requests otherwise, until stop is requested (requests still running
  // then stay where they are; a later Step or Serve goes on with them).
  void Serve(std::stop_token stop) {
    while (!stop.stop_requested()) {
      if (Step()) continue;
      std::unique_lock lk(mu_);
      cv_.wait(lk, stop, [&] { return !queue_.empty() || !live_.empty(); });
    }
  }

  // The Completion of an ended request without on_done, once (nullopt while it runs, or when it was taken).
  std::optional<Completion> Take(uint64_t id) {
    std::lock_guard lk(mu_);
    const auto it = done_.find(id);
    if (it == done_.end()) return std::nullopt;
    Completion c = std::move(it->second);
    done_.erase(it);
    return c;
  }

  // Blocks until the request ends (another thread steps), then takes its Completion.
  Completion Wait(uint64_t id) {
    std::unique_lock lk(mu_);
    const auto live = live_.find(id);
    Require(done_.count(id) || (live != live_.end() && !live->second->req.on_done), "scheduler",
            "request " + std::to_string(id) + " is unknown, was taken, or reports through on_done");
    cv_.wait(lk, [&] { return done_.count(id) > 0; });
    Completion c = std::move(done_.at(id));
    done_.erase(id);
    return c;
  }

  size_t queued() const {
    std::lock_guard lk(mu_);
    return queue_.size();
  }
  size_t running() const {
    std::lock_guard lk(mu_);
    return live_.size() - queue_.size();
  }

  // What each slot holds (for tests and monitoring; call between steps, or from the stepping thread).
  struct SlotState {
    bool busy = false;
    int64_t pos = 0;                 // positions its cache holds
    std::vector<uint64_t> keys;      // their keys
  };
  std::vector<SlotState> slot_states() const {
    std::lock_guard step(step_mu_);
    std::vector<SlotState> v;
    for (const Slot& s : slots_) v.push_back({s.job != nullptr, s.seq.pos(), s.keys});
    return v;
  }
  const SchedulerOptions& options() const { return opt_; }

 private:
  using Clock = std::chrono::steady_clock;

  struct Job {
    explicit Job(SchedulerRequest r) : req(std::move(r)) {}
    SchedulerRequest req;
    uint64_t id = 0;
    std::atomic<bool> cancel{false};
    std::unique_ptr<RequestDecoding> dec;
    size_t prefilled = 0;  // prompt positions in the slot's cache
    int32_t next = -1;     // emitted, not yet fed (decoding) when >= 0; out.final_hidden then predicted it
    int draft_k = 0;       // drafts of its next speculative round (0: not started)
    uint64_t admitted = 0;
    ForwardOutput out;
    Clock::time_point t_admit, t_first;
  };

  struct Slot {
    Sequence seq;
    std::vector<uint64_t> keys;  // Prompt::keys of what seq holds, one per position
    std::shared_ptr<Job> job;    // null: idle
    uint64_t last_used = 0;
  };

  // Queued requests to idle slots, oldest first: the longest reusable prefix, else the least recently used slot.
  void Admit(std::vector<Completion>& ended) {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::lock_guard lk(mu_);
        const bool idle = std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.job; });
        if (queue_.empty() || !idle) return;
        job = queue_.front();
        queue_.pop_front();
      }
      job->t_admit = Clock::now();
      if (job->dec->max_tokens() == 0) {  // nothing to generate: no slot, no pass
        job->dec->Finish(false);
        ended.push_back(Complete(*job, {}));
        continue;
      }
      Slot *best = nullptr, *empty = nullptr, *lru = nullptr;
      size_t best_keep = 0;
      for (Slot& s : slots_) {
        if (s.job) continue;
        size_t keep = job->req.prompt.CommonPrefix(s.keys);
        if (!s.seq.CanRollback(static_cast<int64_t>(keep))) keep = 0;
        if (keep > 0 && (!best || keep > best_keep || (keep == best_keep && s.last_used < best->last_used))) {
          best = &s;
          best_keep = keep;
        }
        if (s.keys.empty() && !empty) empty = &s;
        if (!lru || s.last_used < lru->last_used) lru = &s;
      }
      // An empty slot before a weak match (under a quarter of what that slot holds: a shared chat header alone
      // does not evict another conversation); with nothing shared, the least recently used slot.
      if (!best || (empty && 4 * best_keep < best->keys.size())) {
        best = empty ? empty : lru;
        best_keep = 0;
      }
      best->seq.Rollback(static_cast<int64_t>(best_keep));
      best->keys.resize(best_keep);
      best->job = job;
      best->last_used = ++clock_;
      job->prefilled = best_keep;
      job->admitted = clock_;
      job->dec->reply().cached_tokens = best_keep;
    }
  }

  // One pass: every decoding request's token, then prompt chunks (oldest admission first) within the budget; or
  // a speculative round when one request runs alone.
  void Run(std::vector<Completion>& ended) {
    Slot* alone = nullptr;
    size_t active = 0;
    for (Slot& s : slots_)
      if (s.job) ++active, alone = &s;
    if (active == 1 && drafter_ && alone->job->next >= 0 && alone->job->req.params.speculative &&
        static_cast<size_t>(alone->job->req.params.draft.k_max) + 2 <= opt_.max_chunk)
      return RunSpeculative(*alone, ended);
    std::vector<Gemma4::BatchEntry> batch;
    std::vector<Slot*> owners;
    std::vector<size_t> chunk;  // prompt tokens of each entry (0: a decode token)
    for (Slot& s : slots_) {
      if (!s.job || s.job->next < 0) continue;
      s.job->out.no_logits = false;
      batch.push_back({&s.seq, {std::span(&s.job->next, 1)}, &s.job->out});
      owners.push_back(&s);
      chunk.push_back(0);
    }
    std::vector<Slot*> prefilling;
    for (Slot& s : slots_)
      if (s.job && s.job->next < 0) prefilling.push_back(&s);
    std::sort(prefilling.begin(), prefilling.end(), [](const Slot* a, const Slot* b) { return a->job->admitted < b->job->admitted; });
    const size_t decoding = batch.size();
    size_t budget = budget_.Next(decoding), prefilled = 0;
    for (Slot* s : prefilling) {
      if (budget == 0) break;
      Job& j = *s->job;
      const ForwardInput in = j.req.prompt.input(j.prefilled);
      const size_t left = in.tokens.size();
      size_t n = std::min({left, budget, opt_.max_chunk});
      if (n < left && in.block_id[n] >= 0 && in.block_id[n] == in.block_id[n - 1]) {  // never split an image block
        size_t b = n;
        while (b > 0 && in.block_id[b - 1] == in.block_id[n]) --b;
        if (b > 0) {
          n = b;
        } else {  // the block starts here: it goes whole (Submit checked it fits max_chunk)
          while (n < left && in.block_id[n] == in.block_id[0]) ++n;
        }
      }
      budget -= std::min(budget, n);
      prefilled += n;
      j.out.no_logits = n < left;  // only the prompt's last chunk needs the head
      batch.push_back({&s->seq, {in.tokens.first(n), in.soft_embeddings, in.soft_index.first(n), in.block_id.first(n)}, &j.out});
      owners.push_back(s);
      chunk.push_back(n);
    }
    if (batch.empty()) return;

    try {
      const auto t0 = Clock::now();
      model_.ForwardBatch(batch);
      budget_.Record(decoding, prefilled, std::chrono::duration<double>(Clock::now() - t0).count());
    } catch (const std::exception& e) {
      for (Slot* s : owners) {  // what the pass wrote is not trusted: the slot starts over
        s->seq.Rollback(0);
        s->keys.clear();
        End(*s, true, e.what(), ended);
      }
      return;
    }

    const auto& keys = [](const Job& j) -> const std::vector<uint64_t>& { return j.req.prompt.keys(); };
    for (size_t e = 0; e < owners.size(); ++e) {
      Slot& s = *owners[e];
      Job& j = *s.job;
      if (chunk[e] > 0) {
        s.keys.insert(s.keys.end(), keys(j).begin() + static_cast<std::ptrdiff_t>(j.prefilled),
                      keys(j).begin() + static_cast<std::ptrdiff_t>(j.prefilled + chunk[e]));
        j.prefilled += chunk[e];
        if (j.prefilled < j.req.prompt.size()) continue;
      } else {
        s.keys.push_back(static_cast<uint32_t>(j.next));
      }
      try {
        const int32_t t = j.dec->Pick(j.out.logits);
        if (j.dec->reply().tokens.empty()) j.t_first = Clock::now();
        const bool go = j.dec->Emit(t);
        if (!go || j.cancel) {
          End(s, j.cancel && go, {}, ended);
          continue;
        }
        j.next = t;
      } catch (const std::exception& ex) {
        End(s, true, ex.what(), ended);
      }
    }
  }

  // One speculative round for the request of slot s (running alone; see the class comment).
  void RunSpeculative(Slot& s, std::vector<Completion>& ended) {
    Job& j = *s.job;
    const SpeculativeOptions& opt = j.req.params.draft;
    if (j.draft_k == 0) j.draft_k = opt.k;
    Reply& reply = j.dec->reply();
    const size_t before = reply.tokens.size();
    const int kr = static_cast<int>(std::min<size_t>(static_cast<size_t>(j.draft_k), j.dec->max_tokens() - before));
    const int64_t P = s.seq.pos();
    bool cancelled = false;
    RoundResult r;
    try {
      r = SpeculativeRound(model_, drafter_, s.seq, j.next, j.out.final_hidden, kr, j.dec->verify_rule(),
                           [&](int32_t t) {
                             const bool go = j.dec->Emit(t);
                             cancelled = go && j.cancel;
                             return go && !cancelled;
                           },
                           spec_scratch_);
    } catch (const std::exception& e) {
      s.seq.Rollback(0);  // what the pass wrote is not trusted: the slot starts over
      s.keys.clear();
      return End(s, true, e.what(), ended);
    }
    reply.draft_stats.rounds++;
    reply.draft_stats.drafted += static_cast<size_t>(kr);
    reply.draft_stats.accepted += static_cast<size_t>(r.accepted);
    // The cache gained j.next and the accepted drafts it kept (the tokens emitted first in this round).
    s.keys.push_back(static_cast<uint32_t>(j.next));
    for (int64_t p = P + 1; p < s.seq.pos(); ++p) s.keys.push_back(static_cast<uint32_t>(reply.tokens[before + static_cast<size_t>(p - P - 1)]));
    if (r.stopped) return End(s, cancelled, {}, ended);
    j.next = r.next;
    if (opt.adaptive) j.draft_k = r.accepted == kr ? std::min(opt.k_max, j.draft_k + 2) : std::max(1, j.draft_k - 1);
  }

  // The request of slot s ends; the slot keeps what its cache holds (the prompt as far as it was run, and every
  // emitted token but a last one not fed back).
  void End(Slot& s, bool cancelled, std::string error, std::vector<Completion>& ended) {
    Job& j = *s.job;
    try {
      j.dec->Finish(cancelled);
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
      j.dec->reply().finish = FinishReason::kCancelled;
    }
    Require(s.keys.size() == static_cast<size_t>(s.seq.pos()), "scheduler",
            "internal: " + std::to_string(s.keys.size()) + " cache keys for a sequence at position " + std::to_string(s.seq.pos()));
    ended.push_back(Complete(j, std::move(error)));
    s.job.reset();
    s.last_used = ++clock_;
  }

  Completion Complete(Job& j, std::string error) {
    Reply& r = j.dec->reply();
    if (!error.empty()) r.finish = FinishReason::kCancelled;
    const auto now = Clock::now();
    if (!r.tokens.empty()) {
      r.prompt_seconds = std::chrono::duration<double>(j.t_first - j.t_admit).count();
      r.generation_seconds = std::chrono::duration<double>(now - j.t_first).count();
    }
    Completion c{j.id, std::move(r), std::move(error)};
    return c;
  }

  // Hands the step's completions out (stored, or to on_done outside the lock); whether work remains.
  bool Report(std::vector<Completion>& ended) {
    std::vector<std::pair<std::function<void(const Completion&)>, Completion*>> calls;
    bool more;
    {
      std::lock_guard lk(mu_);
      for (Completion& c : ended) {
        const auto it = live_.find(c.id);
        std::function<void(const Completion&)> done = std::move(it->second->req.on_done);
        live_.erase(it);
        if (done) calls.emplace_back(std::move(done), &c);
        else done_[c.id] = std::move(c);
      }
      more = !live_.empty();
      if (!ended.empty()) cv_.notify_all();
    }
    for (auto& [f, c] : calls) f(*c);
    return more;
  }

  const Gemma4& model_;
  const Tokenizer* tok_;
  const Drafter* drafter_;
  std::vector<int32_t> suppressed_;
  SchedulerOptions opt_;
  PrefillBudget budget_;     // the stepping thread's
  std::vector<Slot> slots_;  // the stepping thread's (under step_mu_)
  uint64_t clock_ = 0;       // admission / use order (stepping thread)
  RoundScratch spec_scratch_;  // a speculative round's buffers (stepping thread)

  mutable std::mutex step_mu_;  // one step at a time
  mutable std::mutex mu_;       // queue_, live_, done_, last_id_
  std::condition_variable_any cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<uint64_t, std::shared_ptr<Job>> live_;  // queued or running
  std::map<uint64_t, Completion> done_;            // ended, waiting for Take / Wait
  uint64_t last_id_ = 0;
};

}  // namespace g4
