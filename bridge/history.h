// A call as the journal knows it: events, each rule's outcome per attempt, variables.
#pragma once

#include <cstdint>
#include <string>

#include "bridge/journal/journal.h"
#include "rules/secrets.h"

namespace callbridge::bridge {

// JSON text of the call's history; `found` false when the journal has no event of it. Every
// string in it (variables, extracted values, inputs, requests, notes) passes through `secrets`:
// the journal keeps variables as they are, to carry them across a restart.
std::string call_history(Journal& journal, const std::string& call_id, bool& found,
                         const rules::SecretSet& secrets, int indent = -1);

std::string ms_to_iso(std::int64_t unix_ms);

}  // namespace callbridge::bridge
