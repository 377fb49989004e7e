#include "bridge/replay.h"

#include <nlohmann/json.hpp>

#include "bridge/action_record.h"
#include "bridge/dispatcher.h"
#include "bridge/event_input.h"

namespace callbridge::bridge {

ReplayResult replay_action(Journal& journal, const rules::Engine& engine,
                           const rules::Config& config, const ActionRecord& dead) {
  ReplayResult result;
  const rules::Rule* rule = nullptr;
  for (const auto& r : config.rules->all())
    if (r.name == dead.rule) rule = &r;
  if (!rule) {
    result.kind = ReplayResult::Kind::no_rule;
    result.error = "no rule of that name in the rules in force";
    return result;
  }
  auto event = journal.event(dead.event_seq);
  std::string error;
  auto input = event ? event_from_json(nlohmann::json::parse(event->body, nullptr, false), error)
                     : std::nullopt;
  if (!input) {
    result.kind = ReplayResult::Kind::unreadable_event;
    result.error = "event unreadable";
    return result;
  }
  // Numbered after what the journal holds: a read that failed must not look like no attempts.
  std::vector<ActionRecord> done;
  auto call = call_context(journal, event->call_id, &*input, error);
  if (!call || !journal.read_actions_of(dead.event_seq, done, error)) {
    result.kind = ReplayResult::Kind::unreadable_event;
    result.error = "journal cannot be read: " + error;
    return result;
  }
  Attempt attempt{dead.event_seq, dead.rule, next_attempt_number(done, dead.rule)};
  auto run = run_attempt(journal, engine, *rule, *call, attempt);
  ActionRecord record =
      attempt_record(attempt, state_of(run.outcome.status), run.outcome, *config.secrets);
  journal.record_action(record, error);
  if (record.state == ActionState::succeeded) {
    ActionRecord old = dead;
    old.state = ActionState::replayed;
    journal.record_action(old, error);
  }
  result.attempt = attempt.number;
  result.state = record.state;
  result.status = record.status;
  result.error = record.error;
  return result;
}

}  // namespace callbridge::bridge
