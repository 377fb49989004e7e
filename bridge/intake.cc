#include "bridge/intake.h"

#include "bridge/action_record.h"
#include "bridge/event_input.h"
#include "log/log.h"

namespace callbridge::bridge {

std::nullopt_t Intake::journal_unavailable(const std::string& error, Rejection& rejection) {
  metrics_.rejected_journal++;
  log::write_limited("intake-journal", log::Level::error, "cannot make event durable",
                     {{"error", error}});
  rejection.set(503, rules::ErrorCode::journal_unavailable,
                "the event could not be made durable; retry later");
  return std::nullopt;
}

std::nullopt_t Intake::busy(Rejection& rejection) {
  metrics_.rejected_busy++;
  rejection.set(503, rules::ErrorCode::busy, "too many events waiting; retry later");
  rejection.retry_after_seconds =
      static_cast<int>(metrics_.backlog.retry_after(dispatcher_.depth()).count());
  return std::nullopt;
}

std::optional<rules::SubmittedEvent> Intake::accept_clustered(
    const rules::EventInput& event, std::shared_ptr<rules::EventObserver> observer,
    Rejection& rejection) {
  if (!dispatcher_.reserve()) return busy(rejection);
  const ClusterMode& cluster = dispatcher_.cluster();
  std::string error;
  // No rule listens and no one follows it: the journal finishes it in its append transaction
  // unless an earlier event of the call is pending on any node (then it runs in its turn).
  bool idle = !observer && config_.get()->rules->for_event(event.event).empty();
  auto leased =
      idle ? journal_.append_idle_event(event.call_id, event.event, event_to_json_text(event),
                                        variables_to_json(rules::Engine::variable_defaults()),
                                        variables_to_json(rules::Engine::event_variables(event)),
                                        cluster.owner, cluster.lease, error)
           : journal_.append_event_leased(event.call_id, event.event, event_to_json_text(event),
                                          cluster.owner, cluster.lease, error);
  if (!leased) {
    dispatcher_.cancel_reservation();
    return journal_unavailable(error, rejection);
  }
  if (leased->event.state != EventState::pending) {
    dispatcher_.cancel_reservation();
    metrics_.events_accepted++;
    metrics_.events_processed++;
    return rules::SubmittedEvent{leased->event.event_id, leased->event.call_id};
  }
  rules::SubmittedEvent submitted{leased->event.event_id, leased->event.call_id};
  dispatcher_.submit_leased(std::move(*leased), std::move(observer));
  metrics_.events_accepted++;
  return submitted;
}

std::optional<rules::SubmittedEvent> Intake::accept(const rules::EventInput& event,
                                                    std::shared_ptr<rules::EventObserver> observer,
                                                    Rejection& rejection) {
  if (dispatcher_.clustered()) return accept_clustered(event, std::move(observer), rejection);
  std::string error;
  // No rule listens and no one follows it: finish it in its own append transaction, unless
  // earlier events of the call are still queued (they must finish first).
  if (!observer && config_.get()->rules->for_event(event.event).empty() &&
      dispatcher_.claim_direct(event.call_id)) {
    auto stored = journal_.append_finished_event(
        event.call_id, event.event, event_to_json_text(event),
        variables_to_json(rules::Engine::variable_defaults()),
        variables_to_json(rules::Engine::event_variables(event)), error);
    dispatcher_.release_direct(event.call_id);
    if (!stored) return journal_unavailable(error, rejection);
    metrics_.events_accepted++;
    metrics_.events_processed++;
    return rules::SubmittedEvent{stored->event_id, stored->call_id};
  }
  if (!dispatcher_.reserve()) return busy(rejection);
  auto stored = journal_.append_event(event.call_id, event.event, event_to_json_text(event), error);
  if (!stored) {
    dispatcher_.cancel_reservation();
    return journal_unavailable(error, rejection);
  }
  rules::SubmittedEvent submitted{stored->event_id, stored->call_id};
  dispatcher_.submit(std::move(*stored), std::move(observer));
  metrics_.events_accepted++;
  return submitted;
}

}  // namespace callbridge::bridge
