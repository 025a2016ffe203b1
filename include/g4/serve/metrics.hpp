// GET /metrics: the server's counters and gauges in Prometheus' text exposition format (version 0.0.4), names
// prefixed g4_. HTTP statuses are counted by the HTTP layer (HttpCounters), the rest comes from the engine.
#pragma once
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "g4/serve/engine.hpp"

namespace g4::serve {

class HttpCounters {
 public:
  void Count(int status) {
    std::lock_guard lock(mu_);
    ++by_status_[status];
  }
  std::map<int, size_t> by_status() const {
    std::lock_guard lock(mu_);
    return by_status_;
  }

 private:
  mutable std::mutex mu_;
  std::map<int, size_t> by_status_;
};

inline std::string MetricsText(const Engine::Stats& s, const std::map<int, size_t>& http) {
  auto number = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  auto header = [](const char* name, const char* type, const char* help) {
    return std::string("# HELP g4_") + name + " " + help + "\n# TYPE g4_" + name + " " + type + "\n";
  };
  std::string out = header("http_requests_total", "counter", "HTTP requests answered, by status code.");
  for (const auto& [status, n] : http)
    out += "g4_http_requests_total{status=\"" + std::to_string(status) + "\"} " + number(static_cast<double>(n)) + "\n";
  const struct {
    const char *name, *type, *help;
    double value;
  } series[] = {
      {"requests_total", "counter", "Generation requests ended (finished, stopped, cancelled or failed).", double(s.requests)},
      {"requests_failed_total", "counter", "Generation requests that failed in the engine.", double(s.failed)},
      {"prompt_tokens_total", "counter", "Prompt tokens of ended requests (cached ones included).", double(s.prompt_tokens)},
      {"prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's cache instead of recomputed.", double(s.cached_tokens)},
      {"generated_tokens_total", "counter", "Tokens generated for ended requests.", double(s.generated_tokens)},
      {"generation_tokens_per_second", "gauge", "Generated tokens over the requests' generation time.",
       s.generation_seconds > 0 ? double(s.generated_tokens) / s.generation_seconds : 0.0},
      {"requests_queued", "gauge", "Requests waiting for a slot.", double(s.queued)},
      {"slots_busy", "gauge", "Slots running a request.", double(s.busy)},
      {"slots_total", "gauge", "Slots (sequences decoded together).", double(s.slots)},
      {"cache_tokens", "gauge", "Positions held by the slots' KV caches.", double(s.cache_tokens)},
  };
  for (const auto& m : series) out += header(m.name, m.type, m.help) + "g4_" + m.name + " " + number(m.value) + "\n";
  return out;
}

}  // namespace g4::serve
