// A small command-line parser shared by the g4 subcommands: flags in llama.cpp's style (-m/--model VALUE,
// --flag), positional arguments, and clear errors for unknown flags or missing values.
#pragma once
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "g4/core/error.hpp"

namespace g4cli {

class Args {
 public:
  // value_flags take a value; switches do not. Names include the dashes; aliases map a short name to a long one.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& value_flags, const std::set<std::string>& switches,
       const std::map<std::string, std::string>& aliases = {}) {
    for (size_t i = 0; i < argv.size(); ++i) {
      std::string a = argv[i];
      if (a.size() > 1 && a[0] == '-' && a != "-") {
        if (const auto it = aliases.find(a); it != aliases.end()) a = it->second;
        if (value_flags.count(a)) {
          g4::Require(i + 1 < argv.size(), a, "needs a value");
          values_[a].push_back(argv[++i]);
        } else if (switches.count(a)) {
          switches_.insert(a);
        } else {
          g4::Fail(a, "unknown flag (see --help)");
        }
      } else {
        positional_.push_back(a);
      }
    }
  }

  bool has(const std::string& flag) const { return switches_.count(flag) || values_.count(flag); }
  std::string get(const std::string& flag, const std::string& fallback = "") const {
    const auto it = values_.find(flag);
    return it == values_.end() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& flag) const {
    const auto it = values_.find(flag);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  long long get_int(const std::string& flag, long long fallback, long long lo, long long hi) const {
    if (!values_.count(flag)) return fallback;
    const std::string s = get(flag);
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    g4::Require(!s.empty() && *end == '\0', flag, "'" + s + "' is not an integer");
    g4::Require(v >= lo && v <= hi, flag, std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  double get_double(const std::string& flag, double fallback) const {
    if (!values_.count(flag)) return fallback;
    const std::string s = get(flag);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    g4::Require(!s.empty() && *end == '\0', flag, "'" + s + "' is not a number");
    return v;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positional_;
};

}  // namespace g4cli
