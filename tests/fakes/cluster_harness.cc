#include "tests/fakes/cluster_harness.h"

#include <signal.h>

#include "bridge/journal/postgres/connection.h"
#include "tests/fakes/bridge_harness.h"

namespace callbridge::testing {

CountingCrm::CountingCrm() {
  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds delay;
    std::size_t n;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back({req.method, req.path, req.body, req.get_header_value("X-Node")});
      n = requests_.size();
      delay = delay_;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    res.status = 201;
    res.set_content("{\"id\":\"" + std::to_string(n) + "\"}", "application/json");
  };
  server_.Post(".*", handle);
  server_.Put(".*", handle);
  server_.new_task_queue = [] { return new httplib::ThreadPool(64); };
  port_ = server_.bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  while (!server_.is_running()) std::this_thread::yield();
}

CountingCrm::~CountingCrm() {
  server_.stop();
  thread_.join();
}

void CountingCrm::set_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  delay_ = delay;
}

std::vector<CountingCrm::Request> CountingCrm::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::size_t CountingCrm::count() const {
  std::lock_guard lock(mutex_);
  return requests_.size();
}

bool CountingCrm::wait_for(std::size_t n, std::chrono::milliseconds limit) const {
  auto until = std::chrono::steady_clock::now() + limit;
  while (count() < n) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  PostgresServer* server = PostgresServer::shared(skipped_);
  if (!server) return;
  std::string error;
  url_ = server->create_database(error);
  if (url_.empty()) {
    skipped_ = "no database: " + error;
    return;
  }
  nodes_.resize(static_cast<std::size_t>(options_.nodes));
}

Cluster::~Cluster() {
  // A node a test left stopped (SIGSTOP) is resumed so that it can be killed and reaped.
  for (auto& node : nodes_)
    if (node.up && node.process) node.process->signal(SIGCONT);
}

bool Cluster::ready(std::string& skipped) const {
  skipped = skipped_;
  return !url_.empty();
}

bool Cluster::start_all() {
  for (int i = 0; i < size(); ++i)
    if (!start(i)) return false;
  return true;
}

bool Cluster::start(int index) {
  Node& node = nodes_[static_cast<std::size_t>(index)];
  if (!node.dir) node.dir = std::make_unique<TempDir>();
  std::string rules = replace_all(options_.rules, "{NODE}", node_name(index));
  node.config_path = node.dir->write(
      "callbridge.yaml",
      "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
          "\"]\n  drain_seconds: 0\nstorage:\n  postgres: \"" + url_ +
          "\"\ncluster:\n  lease_seconds: " + std::to_string(options_.lease_seconds) + "\n" +
          options_.extra + "rules:\n" + rules);
  node.process.reset();
  node.process = std::make_unique<ServerProcess>(
      std::vector<std::string>{CALLBRIDGE_BINARY, "serve", "-c", node.config_path});
  node.up = node.process->started();
  return node.up;
}

void Cluster::kill(int index) {
  Node& node = nodes_[static_cast<std::size_t>(index)];
  if (node.process) node.process->stop(SIGKILL);
  node.up = false;
}

httplib::Client Cluster::client(int index) const {
  httplib::Client c("127.0.0.1", nodes_[static_cast<std::size_t>(index)].process->port());
  c.set_tcp_nodelay(true);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(10, 0);
  c.set_default_headers({{"Authorization", "Bearer " + kBridgeToken}});
  return c;
}

httplib::Result Cluster::post_event(int index, const nlohmann::json& event, int* served) {
  httplib::Result last(nullptr, httplib::Error::Connection);
  for (int tried = 0; tried < size(); ++tried) {
    int node = (index + tried) % size();
    if (!nodes_[static_cast<std::size_t>(node)].process) continue;  // never started
    auto r = client(node).Post("/v1/events", event.dump(), "application/json");
    // Refused (the node is down): the next node, as a load balancer does.
    if (!r && r.error() == httplib::Error::Connection) {
      last = std::move(r);
      continue;
    }
    if (served) *served = node;
    return r;
  }
  return last;
}

nlohmann::json Cluster::call_on(int node, const std::string& id) {
  auto r = client(node).Get(("/v1/calls/" + id).c_str());
  if (!r || r->status != 200) return nlohmann::json();
  return nlohmann::json::parse(r->body, nullptr, false);
}

nlohmann::json Cluster::call(const std::string& id) {
  for (int node = 0; node < size(); ++node)
    if (running(node)) return call_on(node, id);
  return nlohmann::json();
}

nlohmann::json Cluster::wait_done(const std::string& id, std::size_t events,
                                  std::chrono::milliseconds limit) {
  for (int node = 0; node < size(); ++node)
    if (running(node)) return wait_done_on(node, id, events, limit);
  return nlohmann::json();
}

nlohmann::json Cluster::wait_done_on(int node, const std::string& id, std::size_t events,
                                     std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (true) {
    nlohmann::json c = call_on(node, id);
    if (c.is_object() && c["events"].size() == events) {
      bool done = true;
      for (const auto& e : c["events"]) done &= e["state"] != "pending";
      if (done) return c;
    }
    if (std::chrono::steady_clock::now() >= until) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<std::string> Cluster::query(const std::string& sql) {
  bridge::pg::Connection db;
  std::string error;
  std::vector<std::string> rows;
  if (!db.open(url_, error)) return rows;
  bridge::pg::Result r = db.exec(sql.c_str());
  for (int i = 0; i < r.rows(); ++i) {
    std::string row;
    for (int c = 0; c < r.columns(); ++c) row += (c ? "\t" : "") + r.text(i, c);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace callbridge::testing
