// Several `callbridge serve` nodes on one PostgreSQL database (tests/fakes/postgres.h), a CRM
// stand-in that records every request it gets, and a client that sends to node i and, when the
// connection is refused (the node is down), to the next one, as a load balancer would.
#pragma once

#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/postgres.h"
#include "tests/fakes/subprocess.h"

namespace callbridge::testing {

// A CRM on port 0: POST and PUT to any path answer 201 with {"id":"<n>"} after `delay`; every
// request is recorded with its `X-Node` header (the node that sent it) before the delay.
class CountingCrm {
 public:
  struct Request {
    std::string method, path, body, node;
  };
  CountingCrm();
  ~CountingCrm();
  CountingCrm(const CountingCrm&) = delete;
  CountingCrm& operator=(const CountingCrm&) = delete;

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set_delay(std::chrono::milliseconds delay);
  std::vector<Request> requests() const;
  std::size_t count() const;
  // Waits until at least `n` requests arrived (or `limit` passes); true when they did.
  bool wait_for(std::size_t n, std::chrono::milliseconds limit) const;

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  std::chrono::milliseconds delay_{0};
};

struct ClusterOptions {
  int nodes = 3;
  int lease_seconds = 2;
  // Rules (the `rules:` section, its items indented by two spaces); `{NODE}` is replaced by the
  // node's name (node-0, node-1, ...) in each node's file, e.g. for an `X-Node` header.
  std::string rules;
  std::string extra;  // more top-level sections (dispatcher:, ...)
};

class Cluster {
 public:
  // Starts nothing; `ready()` false (with a message in `skipped`) when PostgreSQL cannot run.
  explicit Cluster(ClusterOptions options);
  ~Cluster();
  bool ready(std::string& skipped) const;

  // Writes every node's configuration and starts them; false when one does not start.
  bool start_all();
  bool start(int node);
  int size() const { return static_cast<int>(nodes_.size()); }
  ServerProcess& process(int node) { return *nodes_[static_cast<std::size_t>(node)].process; }
  bool running(int node) const { return nodes_[static_cast<std::size_t>(node)].up; }
  std::string node_name(int node) const { return "node-" + std::to_string(node); }
  // SIGKILL; the node stays down until start(node).
  void kill(int node);
  const std::string& database_url() const { return url_; }

  // Sends the event to `node`, and on a refused connection to the next ones in turn. `served`
  // (optional) says which node answered.
  httplib::Result post_event(int node, const nlohmann::json& event, int* served = nullptr);
  // GET /v1/calls/{id} from the first node up that answers (or from `node`); null when none
  // has it.
  nlohmann::json call(const std::string& id);
  nlohmann::json call_on(int node, const std::string& id);
  // Polls until the call has `events` events, none pending (or `limit` passes).
  nlohmann::json wait_done(const std::string& id, std::size_t events,
                           std::chrono::milliseconds limit = std::chrono::seconds(30));
  nlohmann::json wait_done_on(int node, const std::string& id, std::size_t events,
                              std::chrono::milliseconds limit = std::chrono::seconds(30));
  // Runs `sql` on the database with psql-free libpq; rows as text, tab-separated columns.
  std::vector<std::string> query(const std::string& sql);

 private:
  struct Node {
    std::unique_ptr<TempDir> dir;
    std::string config_path;
    std::unique_ptr<ServerProcess> process;
    bool up = false;
  };
  httplib::Client client(int node) const;

  ClusterOptions options_;
  std::string skipped_;
  std::string url_;
  std::vector<Node> nodes_;
};

}  // namespace callbridge::testing
