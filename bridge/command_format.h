// Renders a request as a command a person can paste, like Pigeon's command generator.
#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "http/http_client.h"
#include "rules/config.h"
#include "rules/engine.h"

namespace callbridge {

enum class CommandFormat { curl, powershell, json };

std::string render_command(const http::Request& request, CommandFormat format);

// What `simulate` shows of one rule: whether it runs and why, its typed action, the request as a
// command, undefined variables, the answer (or that it was not sent), errors and extracted
// variables, secrets redacted.
void print_rule_outcome(std::ostream& out, const rules::RuleOutcome& o, const rules::Config& config,
                        CommandFormat format);

}  // namespace callbridge
