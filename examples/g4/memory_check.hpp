// The memory check of the commands that build KV caches (g4 run, g4 serve, g4 bench), run before the model loads:
// a configuration whose weights, caches and buffers do not fit the memory available (g4/session/memory_plan.hpp)
// is refused naming the context flag, with the numbers and what would fit. --no-memory-check skips it (llama.cpp
// has no such refusal on the CPU; its --fit shrinks a context to a GPU's free memory instead).
#pragma once
#include <functional>

#include "args.hpp"
#include "g4/session/memory_plan.hpp"

namespace g4cli {

inline constexpr const char* kNoMemoryCheck = "--no-memory-check";

// `plan` builds the plan (given the flags its errors name); flags.skip becomes --no-memory-check.
inline void CheckMemory(const Args& args, g4::MemoryFlags flags, const std::function<g4::MemoryPlan(const g4::MemoryFlags&)>& plan) {
  if (args.has(kNoMemoryCheck)) return;
  flags.skip = kNoMemoryCheck;
  g4::RequireMemoryFits(plan(flags), g4::MachineAvailableMemory(), flags);
}

}  // namespace g4cli
