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
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP g4_") + name + " " + help + "\n# TYPE g4_" + name + " " + type + "\n";
  };
  auto value = [&](const char* name, double v, const std::string& labels = {}) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += std::string("g4_") + name + labels + " " + buf + "\n";
  };
  metric("http_requests_total", "counter", "HTTP requests answered, by status code.");
  for (const auto& [status, n] : http) value("http_requests_total", static_cast<double>(n), "{status=\"" + std::to_string(status) + "\"}");
  metric("requests_total", "counter", "Generation requests ended (finished, stopped, cancelled or failed).");
  value("requests_total", static_cast<double>(s.requests));
  metric("requests_failed_total", "counter", "Generation requests that failed in the engine.");
  value("requests_failed_total", static_cast<double>(s.failed));
  metric("prompt_tokens_total", "counter", "Prompt tokens of ended requests (cached ones included).");
  value("prompt_tokens_total", static_cast<double>(s.prompt_tokens));
  metric("prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's cache instead of recomputed.");
  value("prompt_tokens_cached_total", static_cast<double>(s.cached_tokens));
  metric("generated_tokens_total", "counter", "Tokens generated for ended requests.");
  value("generated_tokens_total", static_cast<double>(s.generated_tokens));
  metric("generation_tokens_per_second", "gauge", "Generated tokens over the requests' generation time (per request, averaged by tokens).");
  value("generation_tokens_per_second", s.generation_seconds > 0 ? static_cast<double>(s.generated_tokens) / s.generation_seconds : 0.0);
  metric("requests_queued", "gauge", "Requests waiting for a slot.");
  value("requests_queued", static_cast<double>(s.queued));
  metric("slots_busy", "gauge", "Slots running a request.");
  value("slots_busy", static_cast<double>(s.busy));
  metric("slots_total", "gauge", "Slots (sequences decoded together).");
  value("slots_total", static_cast<double>(s.slots));
  metric("cache_tokens", "gauge", "Positions held by the slots' KV caches.");
  value("cache_tokens", static_cast<double>(s.cache_tokens));
  return out;
}

}  // namespace g4::serve
