// The one way an event enters the bridge: a slot in the dispatcher (backpressure), then the
// journal (durable), then the dispatcher's queue. HTTP intake and connector services share it.
#pragma once

#include "bridge/dispatcher.h"
#include "bridge/journal/journal.h"
#include "bridge/metrics.h"
#include "rules/host.h"

namespace callbridge::bridge {

class Intake final : public rules::EventSink {
 public:
  Intake(Journal& journal, Dispatcher& dispatcher, Metrics& metrics, const ConfigHolder& config)
      : journal_(journal), dispatcher_(dispatcher), metrics_(metrics), config_(config) {}

  using Rejection = rules::SubmitRejection;  // busy, journal_unavailable
  std::optional<rules::SubmittedEvent> accept(const rules::EventInput& event,
                                              std::shared_ptr<rules::EventObserver> observer,
                                              Rejection& rejection);

  std::optional<rules::SubmittedEvent> submit(const rules::EventInput& event,
                                              std::shared_ptr<rules::EventObserver> observer,
                                              Rejection& rejection) override {
    return accept(event, std::move(observer), rejection);
  }

 private:
  // Cluster mode: the event and its call's lease in one commit (Journal::append_event_leased).
  std::optional<rules::SubmittedEvent> accept_clustered(
      const rules::EventInput& event, std::shared_ptr<rules::EventObserver> observer,
      Rejection& rejection);
  std::nullopt_t journal_unavailable(const std::string& error, Rejection& rejection);
  std::nullopt_t busy(Rejection& rejection);

  Journal& journal_;
  Dispatcher& dispatcher_;
  Metrics& metrics_;
  const ConfigHolder& config_;
};

// Connector state in the journal's database.
class JournalStore final : public rules::KeyValueStore {
 public:
  explicit JournalStore(Journal& journal) : journal_(journal) {}

  // The namespaces whose keys belong to an event (rules::kEventNotes), for
  // JournalOptions::event_scoped: the journal prunes them with the event's call.
  static std::vector<EventScopedKeys> event_scoped_keys() {
    return {{std::string(rules::kEventNotes), rules::event_notes_prefix}};
  }
  bool put(std::string_view ns, std::string_view key, std::string_view value,
           std::string& error) override {
    return journal_.kv_put(ns, key, value, error);
  }
  void put_later(std::string_view ns, std::string_view key, std::string_view value) override {
    journal_.kv_put_later(ns, key, value);
  }
  bool erase(std::string_view ns, std::string_view key, std::string& error) override {
    return journal_.kv_erase(ns, key, error);
  }
  bool put_if(std::string_view ns, std::string_view key, std::string_view value,
              std::optional<std::string_view> expected, std::string& error) override {
    return journal_.kv_put_if(ns, key, value, expected, error);
  }
  std::optional<std::string> get(std::string_view ns, std::string_view key) override {
    return journal_.kv_get(ns, key);
  }
  std::vector<std::pair<std::string, std::string>> scan(std::string_view ns) override {
    return journal_.kv_scan(ns);
  }

 private:
  Journal& journal_;
};

}  // namespace callbridge::bridge
