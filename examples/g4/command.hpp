// Subcommands of the g4 program register themselves here (one file per command), so adding a command touches
// only its own file and the source list in examples/meson.build.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace g4cli {

struct Command {
  std::string summary;                                // one line for `g4 --help`
  std::function<int(std::vector<std::string>)> run;   // arguments after the command name
};

inline std::map<std::string, Command>& Commands() {
  static std::map<std::string, Command> commands;
  return commands;
}

struct RegisterCommand {
  RegisterCommand(const std::string& name, std::string summary, std::function<int(std::vector<std::string>)> run) {
    Commands()[name] = Command{std::move(summary), std::move(run)};
  }
};

}  // namespace g4cli
