// User stop strings ("\nUser:", "###") checked against generated text as it streams. Text that could still be the
// start of a stop string is held back, so a caller that prints what Push returns never shows part of one.
#pragma once
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace g4 {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
    std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
  }

  // Adds newly decoded text; returns the part that is safe to show. Once a stop string appears, returns the text
  // before it, drops the rest and stopped() turns true.
  std::string Push(std::string_view text) {
    if (stopped_) return {};
    held_ += text;
    size_t first = std::string::npos;
    for (const std::string& s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
      stopped_ = true;
      std::string out = held_.substr(0, first);
      held_.clear();
      return out;
    }
    // Hold back the longest tail of held_ that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const std::string& s : stops_)
      for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
        if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }

  // At the end of generation: the held-back tail turned out not to be a stop string.
  std::string Flush() { return std::exchange(held_, std::string()); }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace g4
