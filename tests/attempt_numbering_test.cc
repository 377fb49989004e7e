// Attempts are numbered one way, by the dispatcher and by `callbridge replay` alike: after the
// last attempt the journal holds for the rule, whatever other rules of the event did.
#include <catch2/catch.hpp>

#include "bridge/action_record.h"
#include "bridge/dispatcher.h"

using namespace callbridge;

namespace {

bridge::ActionRecord attempt_of(std::string rule, int number, bridge::ActionState state) {
  bridge::ActionRecord record;
  record.rule = std::move(rule);
  record.attempt = number;
  record.state = state;
  return record;
}

}  // namespace

TEST_CASE("an attempt is numbered after the last one journaled for its rule", "[attempt]") {
  std::vector<bridge::ActionRecord> actions = {
      attempt_of("notify", 1, bridge::ActionState::retrying),
      attempt_of("lookup", 4, bridge::ActionState::succeeded),
      attempt_of("notify", 3, bridge::ActionState::dead),
      attempt_of("notify", 2, bridge::ActionState::retrying)};
  CHECK(bridge::next_attempt_number(actions, "notify") == 4);
  CHECK(bridge::next_attempt_number(actions, "lookup") == 5);
  CHECK(bridge::next_attempt_number(actions, "other") == 1);
  CHECK(bridge::next_attempt_number({}, "notify") == 1);
  REQUIRE(bridge::last_attempt(actions, "notify") == &actions[2]);
  CHECK(bridge::last_attempt(actions, "notify")->state == bridge::ActionState::dead);
  CHECK(bridge::last_attempt(actions, "other") == nullptr);
}

TEST_CASE("an attempt's outcome record carries its number and start", "[attempt]") {
  bridge::Attempt attempt{42, "notify", 3, 1700000000000};
  rules::RuleOutcome outcome;
  outcome.rule = "notify";
  outcome.status = rules::RuleStatus::failed;
  outcome.error = "token tok-1234567890 refused";
  rules::SecretSet secrets;
  secrets.add("tok-1234567890");
  auto record = bridge::attempt_record(attempt, bridge::ActionState::dead, outcome, secrets);
  CHECK(record.event_seq == 42);
  CHECK(record.rule == "notify");
  CHECK(record.attempt == 3);
  CHECK(record.started_at_ms == 1700000000000);
  CHECK(record.state == bridge::ActionState::dead);
  CHECK(record.error.find("tok-1234567890") == std::string::npos);
  CHECK(record.error.find("refused") != std::string::npos);
}
