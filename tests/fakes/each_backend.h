// The journal's backends for tests that run the same scenario on each: SQLite in a scratch
// file and PostgreSQL on a server the test binary starts (tests/fakes/postgres.h). The
// PostgreSQL runs are skipped with a message when its binaries are absent or
// CALLBRIDGE_SKIP_POSTGRES=1 is set.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bridge/journal/journal.h"
#include "tests/fakes/postgres.h"
#include "tests/fakes/subprocess.h"

namespace callbridge::testing {

// One backend's journal storage for a test case: opens (and reopens) a journal on it.
class Backend {
 public:
  explicit Backend(bridge::JournalBackend kind) : kind_(kind) {}
  const char* name() const {
    return kind_ == bridge::JournalBackend::sqlite ? "sqlite" : "postgres";
  }

  // False (with a message in `skipped`) when this backend cannot run here.
  bool prepare(std::string& skipped) {
    if (kind_ == bridge::JournalBackend::sqlite) return true;
    PostgresServer* server = PostgresServer::shared(skipped);
    if (!server) return false;
    std::string error;
    url_ = server->create_database(error);
    INFO(error);
    REQUIRE_FALSE(url_.empty());
    return true;
  }

  std::unique_ptr<bridge::Journal> open(std::vector<bridge::EventScopedKeys> scoped = {}) {
    bridge::JournalOptions options(dir_.path() + "/journal.db", false);
    options.backend = kind_;
    options.postgres = url_;
    options.event_scoped = std::move(scoped);
    std::string error;
    auto journal = bridge::Journal::open(options, error);
    INFO(error);
    REQUIRE(journal);
    return journal;
  }

 private:
  bridge::JournalBackend kind_;
  TempDir dir_;
  std::string url_;
};

// Runs `scenario` on each backend that can run here.
template <class F>
inline void on_each_backend(F&& scenario) {
  for (bridge::JournalBackend kind :
       {bridge::JournalBackend::sqlite, bridge::JournalBackend::postgres}) {
    Backend backend(kind);
    std::string skipped;
    if (!backend.prepare(skipped)) {
      WARN(skipped);
      continue;
    }
    INFO("backend " << backend.name());
    scenario(backend);
  }
}

}  // namespace callbridge::testing
