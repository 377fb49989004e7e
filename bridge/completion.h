// Shell completion generated from the command-line definitions themselves, so a new subcommand
// or option completes without anyone editing a script.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace callbridge::bridge {

// A bash completion script for `app`: its visible subcommands, each one's options, the values of
// options restricted to a set, and file names for every other option that takes a value.
std::string bash_completion(CLI::App& app);

}  // namespace callbridge::bridge
