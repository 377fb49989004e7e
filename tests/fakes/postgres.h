// A real PostgreSQL server for tests: initdb and postgres on a scratch directory and a free
// port (as the `postgres` user when the tests run as root: initdb refuses root), one cluster per
// test binary run, stopped at exit; a fresh database per test case.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace callbridge::testing {

class PostgresServer {
 public:
  // The cluster of this run, started on first use. nullptr with `why_not` when PostgreSQL's
  // binaries are not installed, CALLBRIDGE_SKIP_POSTGRES=1 is set, or it did not start.
  static PostgresServer* shared(std::string& why_not);
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  // Creates an empty database; its postgresql:// URL (user postgres, no password needed), or
  // an empty string with `error`.
  std::string create_database(std::string& error);
  // The URL of database `name`; `password` goes into the URL when given (the server trusts
  // local connections, so any password is accepted).
  std::string url(const std::string& name, const std::string& password = "") const;
  // The server's log.
  std::string log() const;
  // Stops the server (fast shutdown: connections are closed) and starts it again on the same
  // port: what a database restart looks like to a client.
  bool stop(std::string& error);
  bool start_again(std::string& error);

 private:
  PostgresServer() = default;
  bool start(std::string& error);
  std::vector<std::string> as_server_user(std::vector<std::string> argv) const;

  std::string dir_;
  std::string options_;  // postgres's command-line options (port, socket directory, ...)
  int port_ = 0;
  int databases_ = 0;
  bool running_ = false;
};

}  // namespace callbridge::testing
