// callbridge on PostgreSQL, one and two nodes, in one run: durable intake and end-to-end on one
// node on SQLite, one node on PostgreSQL and two nodes on one PostgreSQL; event to CRM latency at
// a fixed rate on two nodes; and the takeover of a killed node's calls by the other. The bridges
// are real `callbridge serve` processes, the PostgreSQL server is the tests' (tests/fakes/
// postgres.h), the CRM is in-process. Everything is loopback.
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench/record_sink.h"
#include "tests/fakes/postgres.h"

using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string binary = "build/bridge/callbridge";
  int connections = 16;
  double seconds = 5;
  double latency_seconds = 10;
  double rate = 1000;
  double drain_seconds = 60;
  int lease_seconds = 0;  // 0: the bridge's default
};

const std::string kToken = "bench-token-0123456789abcdef";

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The CRM stand-in: records when each call's first request arrived; while `hold` is set, requests
// for calls named "K-..." are not answered (a slow CRM), so the events behind them stay pending.
struct Crm {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex mutex;
  std::unordered_map<std::string, Clock::time_point> arrived;
  std::atomic<long> count{0};
  std::atomic<bool> hold{false}, stopping{false};
  std::atomic<long> held{0};

  Crm() {
    // A thread per kept-alive connection: more than two nodes' workers open at once.
    server.new_task_queue = [] { return new httplib::ThreadPool(256); };
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(1000000);
    server.Post("/k/v1/record.json", [this](const httplib::Request& req, httplib::Response& res) {
      auto now = Clock::now();
      auto at = req.body.find("\"value\":\"");
      std::string id = at == std::string::npos
                           ? ""
                           : req.body.substr(at + 9, req.body.find('"', at + 9) - at - 9);
      bool slow = id.rfind("K-", 0) == 0 && hold.load();
      {
        std::lock_guard lock(mutex);
        arrived.emplace(id, now);
      }
      ++count;
      if (slow) {
        ++held;
        auto until = Clock::now() + std::chrono::seconds(120);
        while (hold.load() && !stopping.load() && Clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      res.set_content(R"({"id":"1","revision":"1"})", "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    bench::deepen_backlog(port);
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::yield();
  }
  ~Crm() {
    stopping = true;
    server.stop();
    thread.join();
  }
  void reset() {
    std::lock_guard lock(mutex);
    arrived.clear();
    count = 0;
  }
  std::optional<Clock::time_point> first_arrival(const std::string& id) {
    std::lock_guard lock(mutex);
    auto it = arrived.find(id);
    if (it == arrived.end()) return std::nullopt;
    return it->second;
  }
};

// A bridge as a child process, ready once its log says it listens.
struct Node {
  int pid = -1;
  int port = 0;
  std::string log;
  std::shared_ptr<std::string> tail = std::make_shared<std::string>();
  std::shared_ptr<std::mutex> tail_mutex = std::make_shared<std::mutex>();

  Node(const std::string& binary, const std::string& config) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid = fork();
    if (pid == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      close(fds[0]);
      execl(binary.c_str(), binary.c_str(), "serve", "-c", config.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    auto deadline = Clock::now() + std::chrono::seconds(60);
    char buf[4096];
    while (port == 0 && Clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      log.append(buf, static_cast<std::size_t>(n));
      auto at = log.find("\"port\":\"");
      if (log.find("\"listening\"") != std::string::npos && at != std::string::npos)
        port = std::atoi(log.c_str() + at + 8);
    }
    std::thread([fd = fds[0], tail = tail, m = tail_mutex] {
      char b[4096];
      ssize_t n;
      while ((n = read(fd, b, sizeof b)) > 0) {
        std::lock_guard lock(*m);
        tail->append(b, static_cast<std::size_t>(n));
        if (tail->size() > 65536) tail->erase(0, tail->size() - 32768);
      }
      close(fd);
    }).detach();
  }
  void kill9() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Node() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
};

std::string write_config(const std::string& dir, const std::string& name,
                         const std::string& storage, int crm_port, const Options& o) {
  std::string path = dir + "/" + name + ".yaml";
  std::ofstream out(path);
  out << "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" << kToken
      << "\"]\n  threads: " << o.connections + 8
      << "\n  keep_alive_max_count: 1000000\n  drain_seconds: 0\n"
      << "storage:\n"
      << storage << "cluster:\n  node_id: " << name << "\n";
  if (o.lease_seconds > 0) out << "  lease_seconds: " << o.lease_seconds << "\n";
  out << "rules:\n  - name: to-crm\n    event: bench\n"
      << "    request:\n      method: POST\n      url: http://127.0.0.1:" << crm_port
      << "/k/v1/record.json\n      headers: { Content-Type: application/json }\n"
      << "      body: '{\"app\":1,\"record\":{\"call\":{\"value\":\"{ID}\"},"
      << "\"tel\":{\"value\":\"{TEL}\"}}}'\n";
  return path;
}

struct Sent {
  std::string id;
  Clock::time_point sent, answered;
};

struct Load {
  std::vector<Sent> acknowledged;
  long rejected = 0;
  std::string first_rejection;
  Clock::time_point start, stop;
};

httplib::Client client_for(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_tcp_nodelay(true);
  client.set_keep_alive(true);
  client.set_bearer_token_auth(kToken);
  client.set_read_timeout(30, 0);
  return client;
}

std::string event_body(const std::string& event, const std::string& id) {
  return R"({"event":")" + event + R"(","call_id":")" + id + R"(","tel":"0312345678"})";
}

// Closed loop over the nodes: connection c talks to node c % nodes and sends its next event as
// soon as the previous one is answered. `interval` > 0 makes it open loop instead: connection c
// sends its n-th event at start + (n * connections + c) * interval.
Load run_load(const std::vector<int>& ports, const std::string& prefix, const std::string& event,
              double seconds, int connections, double interval = 0) {
  Load load;
  std::mutex mutex;
  load.start = Clock::now();
  auto until = load.start + std::chrono::microseconds(static_cast<long>(seconds * 1e6));
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      auto client = client_for(ports[static_cast<std::size_t>(c) % ports.size()]);
      std::vector<Sent> mine;
      long rejected = 0;
      std::string first;
      for (long n = 0;; ++n) {
        if (interval > 0) {
          auto at = load.start + std::chrono::microseconds(static_cast<long>(
                                     (static_cast<double>(n * connections + c)) * interval * 1e6));
          if (at >= until) break;
          std::this_thread::sleep_until(at);
        } else if (Clock::now() >= until) {
          break;
        }
        std::string id = prefix + std::to_string(c) + "-" + std::to_string(n);
        auto t0 = Clock::now();
        auto r = client.Post("/v1/events", event_body(event, id), "application/json");
        auto t1 = Clock::now();
        if (r && r->status == 202) {
          mine.push_back({std::move(id), t0, t1});
        } else {
          ++rejected;
          if (first.empty())
            first = r ? std::to_string(r->status) + " " + r->body.substr(0, 120)
                      : httplib::to_string(r.error());
        }
      }
      std::lock_guard lock(mutex);
      load.acknowledged.insert(load.acknowledged.end(), std::make_move_iterator(mine.begin()),
                               std::make_move_iterator(mine.end()));
      load.rejected += rejected;
      if (load.first_rejection.empty()) load.first_rejection = first;
    });
  }
  for (auto& t : threads) t.join();
  load.stop = Clock::now();
  return load;
}

struct Figures {
  std::string name;
  bool ran = false;
  double intake = 0, intake_p50 = 0, intake_p99 = 0;
  long intake_rejected = 0;
  double acknowledged_rate = 0, sustained = 0, until_all = 0;
  long acknowledged = 0, at_crm = 0, rejected = 0;
  double crm_p50 = 0, crm_p99 = 0;
  std::string first_rejection;
};

// Waits until the CRM has every acknowledged event's request; the latencies from the send.
std::vector<double> wait_for_crm(Crm& crm, const Load& load, double drain_seconds, long& at_crm,
                                 Clock::time_point& last) {
  auto deadline = load.stop + std::chrono::microseconds(static_cast<long>(drain_seconds * 1e6));
  while (Clock::now() < deadline && crm.count.load() < static_cast<long>(load.acknowledged.size()))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::vector<double> to_crm;
  at_crm = 0;
  last = load.start;
  std::lock_guard lock(crm.mutex);
  for (const auto& s : load.acknowledged) {
    auto it = crm.arrived.find(s.id);
    if (it == crm.arrived.end()) continue;
    ++at_crm;
    last = std::max(last, it->second);
    to_crm.push_back(ms_between(s.sent, it->second));
  }
  return to_crm;
}

void measure(Figures& f, Crm& crm, const std::vector<int>& ports, const Options& o) {
  auto intake = run_load(ports, "R-", "bench.norule", o.seconds, o.connections);
  std::vector<double> ack;
  for (const auto& s : intake.acknowledged) ack.push_back(ms_between(s.sent, s.answered));
  f.intake =
      static_cast<double>(intake.acknowledged.size()) / seconds_between(intake.start, intake.stop);
  f.intake_p50 = bench::percentile(ack, 50);
  f.intake_p99 = bench::percentile(ack, 99);
  f.intake_rejected = intake.rejected;

  crm.reset();
  auto load = run_load(ports, "E-", "bench", o.seconds, o.connections);
  Clock::time_point last;
  auto to_crm = wait_for_crm(crm, load, o.drain_seconds, f.at_crm, last);
  f.acknowledged = static_cast<long>(load.acknowledged.size());
  f.rejected = load.rejected;
  f.first_rejection =
      intake.first_rejection.empty() ? load.first_rejection : intake.first_rejection;
  f.acknowledged_rate =
      static_cast<double>(f.acknowledged) / seconds_between(load.start, load.stop);
  f.until_all = seconds_between(load.start, last);
  f.sustained = f.until_all > 0 ? static_cast<double>(f.at_crm) / f.until_all : 0;
  f.crm_p50 = bench::percentile(to_crm, 50);
  f.crm_p99 = bench::percentile(to_crm, 99);
  f.ran = true;
}

std::string postgres_storage(callbridge::testing::PostgresServer& pg) {
  std::string error;
  std::string url = pg.create_database(error);
  if (url.empty()) std::fprintf(stderr, "cannot create a database: %s\n", error.c_str());
  return url.empty() ? "" : "  postgres: \"" + url + "\"\n";
}

bool started(const Node& n, const char* what) {
  if (n.port != 0) return true;
  std::fprintf(stderr, "%s did not start:\n%s\n", what, n.log.c_str());
  return false;
}

std::string ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f ms" : v < 100 ? "%.1f ms" : "%.0f ms", v);
  return buf;
}

std::string thousands(double v) {
  std::string digits = std::to_string(static_cast<long>(v + 0.5));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"callbridge-bench-cluster: one node on SQLite, one and two nodes on PostgreSQL"};
  app.add_option("--binary", o.binary, "the callbridge executable")->capture_default_str();
  app.add_option("--connections", o.connections, "client connections of the closed loops")
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "length of each closed loop")->capture_default_str();
  app.add_option("--latency-seconds", o.latency_seconds, "length of the fixed-rate run")
      ->capture_default_str();
  app.add_option("--rate", o.rate, "events/s of the fixed-rate run")->capture_default_str();
  app.add_option("--drain-seconds", o.drain_seconds,
                 "how long to wait after a load for the CRM to have every action")
      ->capture_default_str();
  app.add_option("--lease-seconds", o.lease_seconds, "cluster.lease_seconds (0: the default)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);

  std::string why_not;
  auto* pg = callbridge::testing::PostgresServer::shared(why_not);
  if (!pg) {
    std::fprintf(stderr, "%s\n", why_not.c_str());
    return 1;
  }
  char dir_template[] = "/tmp/callbridge-bench-cluster-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  Crm crm;
  std::vector<Figures> all;

  // 1. Durable intake and end-to-end, one configuration after the other.
  {
    Figures f;
    f.name = "one node, SQLite";
    Node a(o.binary,
           write_config(dir, "sqlite-a", "  path: " + dir + "/journal.db\n", crm.port, o));
    if (started(a, "the SQLite node")) measure(f, crm, {a.port}, o);
    all.push_back(f);
  }
  {
    Figures f;
    f.name = "one node, PostgreSQL";
    Node a(o.binary, write_config(dir, "pg1-a", postgres_storage(*pg), crm.port, o));
    if (started(a, "the PostgreSQL node")) measure(f, crm, {a.port}, o);
    all.push_back(f);
  }
  std::string two_storage = postgres_storage(*pg);
  {
    Figures f;
    f.name = "two nodes, one PostgreSQL";
    Node a(o.binary, write_config(dir, "pg2-a", two_storage, crm.port, o));
    Node b(o.binary, write_config(dir, "pg2-b", two_storage, crm.port, o));
    if (started(a, "node a") && started(b, "node b")) measure(f, crm, {a.port, b.port}, o);
    all.push_back(f);
  }

  // 2. Event to CRM request at a fixed rate on two nodes.
  double fixed_p50 = 0, fixed_p99 = 0, fixed_rate = 0;
  long fixed_sent = 0, fixed_at_crm = 0, fixed_rejected = 0;
  {
    std::string storage = postgres_storage(*pg);
    Node a(o.binary, write_config(dir, "lat-a", storage, crm.port, o));
    Node b(o.binary, write_config(dir, "lat-b", storage, crm.port, o));
    if (started(a, "node a") && started(b, "node b")) {
      crm.reset();
      auto load =
          run_load({a.port, b.port}, "L-", "bench", o.latency_seconds, o.connections, 1.0 / o.rate);
      Clock::time_point last;
      auto to_crm = wait_for_crm(crm, load, o.drain_seconds, fixed_at_crm, last);
      fixed_sent = static_cast<long>(load.acknowledged.size());
      fixed_rejected = load.rejected;
      fixed_rate = static_cast<double>(fixed_sent) / seconds_between(load.start, load.stop);
      fixed_p50 = bench::percentile(to_crm, 50);
      fixed_p99 = bench::percentile(to_crm, 99);
    }
  }

  // 3. Takeover: node a holds calls whose first request the CRM does not answer, with more
  // events queued behind; kill -9 a; the time until node b sends one of those calls' requests.
  double takeover = -1;
  int lease = o.lease_seconds;
  long held = 0;
  {
    std::string storage = postgres_storage(*pg);
    Node a(o.binary, write_config(dir, "kill-a", storage, crm.port, o));
    Node b(o.binary, write_config(dir, "kill-b", storage, crm.port, o));
    if (lease == 0) {
      auto at = a.log.find("\"lease_seconds\":\"");
      lease = at == std::string::npos ? 0 : std::atoi(a.log.c_str() + at + 17);
    }
    if (started(a, "node a") && started(b, "node b")) {
      crm.reset();
      crm.hold = true;
      auto client = client_for(a.port);
      const int calls = 4, per_call = 5;
      for (int e = 0; e < per_call; ++e)
        for (int c = 0; c < calls; ++c)
          client.Post("/v1/events", event_body("bench", "K-" + std::to_string(c)),
                      "application/json");
      auto wait_until = Clock::now() + std::chrono::seconds(10);
      while (crm.held.load() < calls && Clock::now() < wait_until)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      held = crm.held.load();
      crm.reset();
      auto killed = Clock::now();
      a.kill9();
      crm.hold = false;
      auto deadline = killed + std::chrono::seconds(lease * 3 + 30);
      while (Clock::now() < deadline && takeover < 0) {
        std::optional<Clock::time_point> first;
        for (int c = 0; c < calls; ++c) {
          auto t = crm.first_arrival("K-" + std::to_string(c));
          if (t && (!first || *t < *first)) first = t;
        }
        if (first) takeover = seconds_between(killed, *first);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  std::filesystem::remove_all(dir);

  std::printf(
      "\nPostgreSQL: the tests' server (tests/fakes/postgres.cc: fsync=off, "
      "synchronous_commit default), loopback; bridges: drain_seconds 0, defaults otherwise\n");
  std::printf("%d connections, closed loop, %.0f s each\n\n", o.connections, o.seconds);
  std::printf(
      "| configuration | durable intake ev/s | ack p50 / p99 | end-to-end acknowledged ev/s | "
      "sustained actions/s | event to CRM p50 / p99 |\n|---|---|---|---|---|---|\n");
  for (const auto& f : all) {
    if (!f.ran) {
      std::printf("| %s | did not run | | | | |\n", f.name.c_str());
      continue;
    }
    char sustained[128];
    std::snprintf(sustained, sizeof sustained, "%s (%s%s in %.1f s)",
                  thousands(f.sustained).c_str(), f.at_crm == f.acknowledged ? "" : "only ",
                  thousands(static_cast<double>(f.at_crm)).c_str(), f.until_all);
    std::printf("| %s | %s | %s / %s | %s | %s | %s / %s |\n", f.name.c_str(),
                thousands(f.intake).c_str(), ms(f.intake_p50).c_str(), ms(f.intake_p99).c_str(),
                thousands(f.acknowledged_rate).c_str(), sustained, ms(f.crm_p50).c_str(),
                ms(f.crm_p99).c_str());
    if (f.intake_rejected + f.rejected > 0)
      std::printf("  %s: %ld rejected in the intake run, %ld in the end-to-end run, first: %s\n",
                  f.name.c_str(), f.intake_rejected, f.rejected, f.first_rejection.c_str());
  }
  if (all[0].ran && all[1].ran)
    std::printf("\ndurable intake, PostgreSQL node / SQLite node: %.0f %% (target >= 50 %%)\n",
                100.0 * all[1].intake / all[0].intake);
  std::printf(
      "\nfixed rate on two nodes: %.0f ev/s asked, %s ev/s acknowledged (%ld rejected) for %.0f "
      "s, %ld of %ld at the CRM; event to CRM request p50 %s, p99 %s (target p99 < 10 ms)\n",
      o.rate, thousands(fixed_rate).c_str(), fixed_rejected, o.latency_seconds, fixed_at_crm,
      fixed_sent, ms(fixed_p50).c_str(), ms(fixed_p99).c_str());
  if (takeover >= 0)
    std::printf(
        "\ntakeover after kill -9: lease %d s, %ld calls held at the CRM; kill to node b's first "
        "request of an orphaned call: %.2f s (target <= lease + 1 s = %d s)\n",
        lease, held, takeover, lease + 1);
  else
    std::printf("\ntakeover after kill -9: lease %d s; node b sent no orphaned call's request\n",
                lease);
  return 0;
}
