#include "bridge/intake.h"

#include "bridge/event_input.h"
#include "bridge/log.h"

namespace callbridge::bridge {

std::optional<rules::SubmittedEvent> Intake::accept(const rules::EventInput& event,
                                                    std::shared_ptr<rules::EventObserver> observer,
                                                    Rejection& rejection) {
  if (!dispatcher_.reserve()) {
    metrics_.rejected_busy++;
    rejection = {503, "busy", "too many events waiting; retry later"};
    return std::nullopt;
  }
  std::string error;
  auto stored = journal_.append_event(event.call_id, event.event, event_to_json_text(event), error);
  if (!stored) {
    dispatcher_.cancel_reservation();
    metrics_.rejected_journal++;
    log_limited("intake-journal", LogLevel::error, "cannot make event durable", {{"error", error}});
    rejection = {503, "journal_unavailable", "the event could not be made durable; retry later"};
    return std::nullopt;
  }
  rules::SubmittedEvent submitted{stored->event_id, stored->call_id};
  dispatcher_.submit(std::move(*stored), std::move(observer));
  metrics_.events_accepted++;
  return submitted;
}

std::optional<rules::SubmittedEvent> Intake::submit(const rules::EventInput& event,
                                                    std::shared_ptr<rules::EventObserver> observer,
                                                    int& status, std::string& error) {
  Rejection rejection;
  auto submitted = accept(event, std::move(observer), rejection);
  status = submitted ? 202 : rejection.status;
  if (!submitted) error = rejection.message;
  return submitted;
}

}  // namespace callbridge::bridge
