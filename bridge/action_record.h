// Rule attempts as journal records, shared by the dispatcher and `callbridge replay`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bridge/journal/journal.h"
#include "http/http_client.h"
#include "rules/engine.h"

namespace callbridge::bridge {

std::int64_t unix_ms_now();

std::string request_to_json(const http::Request& request);
std::string variables_to_json(const rules::Variables& vars);
rules::Variables variables_from_json(const std::string& text);

ActionState state_of(rules::RuleStatus status);

// The most of a response body an attempt keeps (ActionRecord::response), in bytes.
inline constexpr std::size_t kResponseBodyCap = 4096;

// `body` with secrets redacted, cut to kResponseBodyCap bytes (at a UTF-8 character's start)
// and then marked "[cut: N of M bytes shown]" on a line of its own.
std::string response_excerpt(std::string_view body, const rules::SecretSet& secrets);

// Written before the request leaves: a crash after this point leaves a trace to decide on.
ActionRecord started_record(std::int64_t event_seq, const std::string& rule, int attempt,
                            std::int64_t started_ms, const http::Request& shown);

// The outcome of an attempt; errors are redacted and name undefined variables; the response
// body is kept as response_excerpt().
ActionRecord finished_record(std::int64_t event_seq, const std::string& rule, int attempt,
                             ActionState state, const rules::RuleOutcome& outcome,
                             std::int64_t started_ms, const rules::SecretSet& secrets);

// The call's variables as one of its events starts: what the journal holds, then the event's.
// nullopt with `error` when the journal could not be read.
std::optional<rules::CallContext> call_context(Journal& journal, const std::string& call_id,
                                               const rules::EventInput* event, std::string& error);

}  // namespace callbridge::bridge
