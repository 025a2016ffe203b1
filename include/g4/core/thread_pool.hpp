// A persistent fork-join thread pool. Run(n_tasks, f) calls f(task, worker) for every task in [0, n_tasks) and
// returns when all are done; the calling thread is worker 0. Partitioning is deterministic: worker w always
// takes tasks w, w + n_workers, ... (static round-robin), so a result never depends on timing, and per-worker
// scratch indexed by `worker` needs no locks. Workers and the caller spin briefly before sleeping, because decode
// issues hundreds of short parallel sections per token and a futex wake costs ~5-20 us each; they do sleep soon
// after, because spinning on a loaded machine starves the very thread being waited for.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "g4/core/error.hpp"

namespace g4 {

class ThreadPool {
 public:
  static constexpr size_t kMaxThreads = 1024;
  // How long to spin before sleeping, adapted per waiting thread: doubled (up to kSpinMax) when the wait ends
  // while spinning, halved (down to kSpinMin) when it runs out. Alone on its cores, decode keeps the long spin
  // that bridges the gaps between one token's parallel sections (11 us, 1000 pauses, let ~490 sleeps and wakes
  // per 12B decode step through: 3-5% of its time); sharing them with another busy process (parallel tests, a
  // build), the spin shrinks at once instead of taking the core from the very thread being waited for.
  static constexpr std::chrono::nanoseconds kSpinMin{10'000}, kSpinMax{200'000};

  // n_threads counts the caller; 0 means one per hardware thread.
  explicit ThreadPool(size_t n_threads = 0) {
    if (n_threads == 0) n_threads = std::max(1u, std::thread::hardware_concurrency());
    Require(n_threads <= kMaxThreads, "threads",
            std::to_string(n_threads) + " threads requested; at most " + std::to_string(kMaxThreads));
    n_workers_ = n_threads;
    for (size_t w = 1; w < n_workers_; ++w) threads_.emplace_back([this, w] { WorkerLoop(w); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return n_workers_; }

  // f(task, worker). Exceptions thrown by f are rethrown here (the first one). Callers on several threads take
  // turns (one job slot: each call runs whole); a task that calls Run again is an error, not a deadlock.
  template <typename F>
  void Run(size_t n_tasks, F&& f) {
    if (n_tasks == 0) return;
    if (n_workers_ == 1 || n_tasks == 1) {
      for (size_t t = 0; t < n_tasks; ++t) f(t, 0);
      return;
    }
    Require(!InTask(), "thread pool", "Run called from inside one of its own tasks");
    std::lock_guard<std::mutex> turn(run_mu_);
    InTask() = true;
    struct Leave { ~Leave() { InTask() = false; } } leave;
    std::function<void(size_t, size_t)> fn = std::ref(f);
    job_ = &fn;
    n_tasks_ = n_tasks;
    error_ = nullptr;
    pending_.store(n_workers_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
    }
    cv_.notify_all();
    RunShare(0);
    // Wait for the others: spin briefly, then sleep until the last one signals.
    SpinWhile(caller_spin_, [&] { return pending_.load(std::memory_order_acquire) != 0; });
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  // Splits [0, n) into contiguous ranges of at least `grain` and calls f(begin, end, worker).
  template <typename F>
  void ParallelFor(size_t n, size_t grain, F&& f) {
    if (n == 0) return;
    grain = std::max<size_t>(grain, 1);
    const size_t max_chunks = (n + grain - 1) / grain;
    const size_t chunks = std::min(max_chunks, n_workers_);
    Run(chunks, [&](size_t c, size_t worker) {
      const size_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      f(begin, end, worker);
    });
  }

 private:
  // Whether this thread is running a task of some pool (workers run nothing else).
  static bool& InTask() {
    thread_local bool in_task = false;
    return in_task;
  }

  void RunShare(size_t worker) {
    try {
      for (size_t t = worker; t < n_tasks_; t += n_workers_) (*job_)(t, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void WorkerLoop(size_t worker) {
    InTask() = true;
    uint64_t seen = 0;
    std::chrono::nanoseconds spin = kSpinMax;
    for (;;) {
      // Spin a little on the generation counter before sleeping.
      SpinWhile(spin, [&] { return gen_relaxed() == seen; });
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_.load();
        if (stop_) return;
      }
      RunShare(worker);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);  // the caller may be between its check and its wait
        done_cv_.notify_one();
      }
    }
  }
  // Spins while busy() holds, for at most `spin`, and adapts `spin` to how that went.
  template <typename Busy>
  static void SpinWhile(std::chrono::nanoseconds& spin, Busy&& busy) {
    const auto until = std::chrono::steady_clock::now() + spin;
    while (busy()) {
      for (int i = 0; i < 16; ++i) {  // the clock is read once per 16 pauses (~170 ns)
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (std::chrono::steady_clock::now() >= until) {
        spin = std::max(spin / 2, kSpinMin);
        return;
      }
    }
    spin = std::min(spin * 2, kSpinMax);
  }
  uint64_t gen_relaxed() const { return generation_.load(std::memory_order_relaxed); }

  size_t n_workers_ = 1;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::mutex run_mu_;  // held by the one caller whose job the workers run
  std::condition_variable cv_;       // workers wait here for a new generation
  std::condition_variable done_cv_;  // the caller waits here for the last worker
  std::atomic<uint64_t> generation_{0};  // written under mu_, read lock-free while spinning
  bool stop_ = false;
  std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> pending_{0};
  std::exception_ptr error_;
  std::chrono::nanoseconds caller_spin_ = kSpinMax;  // the spin of whichever thread calls Run (one at a time)
};

}  // namespace g4
