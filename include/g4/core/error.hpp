// g4::Error: the one exception type of the library. It carries *where* (a file, tensor or argument name) and
// *what* went wrong, so every message a user sees names the thing at fault. The library never calls exit().
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace g4 {

class Error : public std::runtime_error {
 public:
  Error(std::string where, const std::string& what)
      : std::runtime_error(where.empty() ? what : where + ": " + what), where_(std::move(where)) {}
  const std::string& where() const noexcept { return where_; }

 private:
  std::string where_;
};

[[noreturn]] inline void Fail(std::string_view where, const std::string& what) { throw Error(std::string(where), what); }

// `where` as text: a name, or a callable that builds one, which hot paths pass so that the string (a tensor's
// name and the like) is built only when a check fails.
template <typename Where>
std::string WhereText(const Where& where) {
  if constexpr (std::is_invocable_v<const Where&>) {
    return where();
  } else {
    return std::string(where);
  }
}

// Checks a condition that depends on input data (never on our own invariants).
inline void Require(bool ok, std::string_view where, const std::string& what) {
  if (!ok) Fail(where, what);
}

}  // namespace g4
