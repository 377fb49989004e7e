// Re-running one dead-lettered (or `unknown`) action with the rules now in force: what
// `callbridge replay` and the console's replay both do. The new attempt is numbered and recorded
// through the dispatcher's functions; a success marks the old attempt `replayed`.
#pragma once

#include <string>

#include "bridge/journal/journal.h"
#include "rules/config.h"
#include "rules/engine.h"

namespace callbridge::bridge {

struct ReplayResult {
  enum class Kind { ran, no_rule, unreadable_event };
  Kind kind = Kind::ran;
  int attempt = 0;  // the new attempt's number (ran only)
  ActionState state = ActionState::failed;
  int status = 0;
  std::string error;  // the new attempt's error, or why it did not run
};

ReplayResult replay_action(Journal& journal, const rules::Engine& engine,
                           const rules::Config& config, const ActionRecord& dead);

}  // namespace callbridge::bridge
