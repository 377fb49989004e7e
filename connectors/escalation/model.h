// The escalation model, with Kompira Pigeon's semantics (000 seed): contacts, call flows (an order
// of contacts and a maximum loop count), guidances (a `{{key}}` message and key responses 1-9,
// each terminate / continue / leave), and the state of one running chain with every attempt.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace callbridge::escalation {

using Parameters = std::map<std::string, std::string, std::less<>>;

struct Contact {
  std::string id;
  std::string name;  // 表示名
  std::string phone;
};

struct CallFlow {
  std::string id;  // empty for an inline call flow
  std::string name;
  std::vector<Contact> contacts;  // 架電順, resolved (a chain keeps a snapshot)
  int loop_limit = 1;             // 最大ループ回数, >= 1
};

enum class Reaction { terminate, continue_on, leave };
std::string_view to_string(Reaction reaction);
std::optional<Reaction> reaction_from_string(std::string_view text);

struct KeyResponse {
  Reaction reaction = Reaction::terminate;
  std::string message;  // `{{key}}` template, played after the key
};

struct Guidance {
  std::string id;  // empty for an inline guidance
  std::string name;
  std::string message;                   // メッセージテンプレート, `{{key}}`
  std::map<int, KeyResponse> responses;  // keys 1-9; at least one terminate
};

// Returns an error message, empty when the guidance is usable.
std::string validate(const Guidance& guidance);
std::string validate(const CallFlow& flow);

// Mustache `{{key}}` (and `{{{key}}}`, `{{ key }}`) substitution, no HTML escaping: the text is
// read aloud. Unknown keys render empty and are listed in `missing`.
std::string render_message(std::string_view text, const Parameters& parameters,
                           std::vector<std::string>* missing = nullptr);

enum class AttemptOutcome { succeeded, ignored, missed, failed, aborted };
std::string_view to_string(AttemptOutcome outcome);
std::optional<AttemptOutcome> attempt_outcome_from_string(std::string_view text);

enum class ChainStatus { running, succeeded, failed, aborted };
std::string_view to_string(ChainStatus status);
std::optional<ChainStatus> chain_status_from_string(std::string_view text);

using Millis = std::int64_t;     // milliseconds since the Unix epoch
std::string iso8601(Millis at);  // 2024-05-01T09:30:00.000Z

// Lower-case UUID v4, like Pigeon's ids: a chain's id and its attempts' prefix.
std::string new_uuid();

struct Attempt {
  std::string id;  // CHAIN-N
  std::string contact_id;
  std::string contact_name;
  std::string phone;
  int loop = 1;      // 1-based
  int position = 0;  // index in the call flow
  Millis started_at = 0;
  Millis ended_at = 0;                    // 0 while dialing
  std::optional<AttemptOutcome> outcome;  // unset while dialing
  std::optional<int> key;
  std::optional<Reaction> reaction;  // what the key did
  std::string message;               // rendered guidance message
  std::string response_message;      // rendered message of the pressed key's response
  std::string error;
};

enum class Phase {
  waiting,  // the next attempt is due at `due_at`
  dialing,  // `attempts.back()` is in progress
  remote,   // runs on Kompira Pigeon; `remote_id` is its resultId (empty: invoke pending)
  finished,
};
std::string_view to_string(Phase phase);

struct ChainState {
  std::string id;
  std::string origin_call_id;  // the call whose rule started it; empty from the API
  std::string origin_rule;
  std::string backend = "engine";  // engine | pigeon
  std::string remote_id;           // Pigeon's resultId
  CallFlow callflow;
  Guidance guidance;
  Parameters parameters;
  ChainStatus status = ChainStatus::running;
  Phase phase = Phase::waiting;
  std::string reason;  // why it ended
  Millis created_at = 0;
  Millis finished_at = 0;
  Millis due_at = 0;
  int loop = 1;       // current loop, 1-based
  int position = -1;  // call-flow index of the current or last attempt; -1 before the first
  std::set<std::string> left;  // contacts that chose `leave`
  std::vector<Attempt> attempts;
  std::optional<int> key;     // the key that terminated the chain
  std::string terminated_by;  // contact id who pressed it
  bool notified = false;      // escalation.finished submitted
  int remote_polls = 0;

  bool active() const { return status == ChainStatus::running; }
  int loops() const;  // loops begun (the highest loop of any attempt)
};

nlohmann::json to_json(const Contact& contact);
nlohmann::json to_json(const CallFlow& flow);
nlohmann::json to_json(const Guidance& guidance);
nlohmann::json to_json(const Attempt& attempt);
nlohmann::json to_json(const ChainState& state);
// nullopt with `error` when the stored text is not a chain.
std::optional<ChainState> chain_from_json(const nlohmann::json& json, std::string& error);

// Kompira Pigeon's shapes (inline specs of chain/invoke and results/{resultId}).
nlohmann::json pigeon_callflow(const CallFlow& flow);
nlohmann::json pigeon_guidance(const Guidance& guidance);
nlohmann::json pigeon_result(const ChainState& state);
// Reads an inline `callflow` / `guidance` as chain/invoke accepts it; `known` resolves contact
// ids. Empty string on success, else the error.
std::string callflow_from_pigeon(const nlohmann::json& json,
                                 const std::map<std::string, Contact, std::less<>>& known,
                                 CallFlow& out);
std::string guidance_from_pigeon(const nlohmann::json& json, Guidance& out);
Parameters parameters_from_json(const nlohmann::json& json);

}  // namespace callbridge::escalation
