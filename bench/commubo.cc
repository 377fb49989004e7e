// commubo callback benchmark: how fast the bridge answers commubo's inbound callback.
//  1. Local rules: the customer directory (synced from a fake kintone) and regex gates decide;
//     fixed rate (default 500 callbacks/s), answer latency percentiles and status counts.
//  2. A hung CRM: a lookup rule in front of the decision hits a server that never answers;
//     every answer must still leave within the deadline (+50 ms).
// Everything runs on loopback.
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "record_sink.h"
#include "tests/fakes/fake_kintone.h"
#include "tests/fakes/subprocess.h"

using Clock = std::chrono::steady_clock;
using callbridge::testing::FakeKintone;
using callbridge::testing::ServerProcess;
using callbridge::testing::TempDir;

namespace {

const std::string kToken = "bench-token-0123456789";

struct Options {
  std::string binary = "build/bridge/callbridge";
  int rate = 500;
  double seconds = 20;
  int customers = 10000;
  int hung_rate = 20;
  double hung_seconds = 10;
  int deadline_ms = 500;
};

std::string tel_of(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "03%08d", i);
  return buf;
}

// A CRM that accepts connections and never answers.
struct HungServer {
  int fd = -1;
  int port = 0;
  std::atomic<bool> running{true};
  std::thread thread;
  std::vector<int> clients;
  HungServer() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd, 1024);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    thread = std::thread([this] {
      while (running) {
        int c = accept(fd, nullptr, nullptr);
        if (c < 0) break;
        clients.push_back(c);
      }
    });
  }
  ~HungServer() {
    running = false;
    shutdown(fd, SHUT_RDWR);
    close(fd);
    thread.join();
    for (int c : clients) close(c);
  }
};

struct RunResult {
  std::vector<double> ms;
  std::map<int, long> statuses;
  long failures = 0;
};

// Sends `rate` callbacks/s for `seconds` from 16 keep-alive clients; callback i uses `tel(i)`.
template <class TelOf>
RunResult drive(int port, int rate, double seconds, TelOf tel) {
  RunResult result;
  std::mutex mutex;
  const std::string payload_template = [] {
    std::ifstream in(std::string(CALLBRIDGE_SOURCE_DIR) + "/samples/events/commubo.known.json");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  auto base = nlohmann::json::parse(payload_template);
  long total = static_cast<long>(rate * seconds);
  int senders = 16;
  auto start = Clock::now() + std::chrono::milliseconds(100);
  std::vector<std::thread> threads;
  for (int s = 0; s < senders; ++s) {
    threads.emplace_back([&, s] {
      httplib::Client client("127.0.0.1", port);
      client.set_tcp_nodelay(true);
      client.set_keep_alive(true);
      client.set_read_timeout(30, 0);
      RunResult mine;
      for (long i = s; i < total; i += senders) {
        std::this_thread::sleep_until(start + std::chrono::microseconds(i * 1000000 / rate));
        auto payload = base;
        payload["callId"] = "B" + std::to_string(i);
        payload["phoneNumber"] = tel(i);
        if (i % 2) payload.erase("customer");  // commubo knows half of the callers
        std::string body = payload.dump();
        auto t0 = Clock::now();
        auto r =
            client.Post(("/v1/commubo/inbound?token=" + kToken).c_str(), body, "application/json");
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!r) {
          ++mine.failures;
          continue;
        }
        mine.ms.push_back(ms);
        ++mine.statuses[r->status];
      }
      std::lock_guard lock(mutex);
      result.ms.insert(result.ms.end(), mine.ms.begin(), mine.ms.end());
      for (auto [k, v] : mine.statuses) result.statuses[k] += v;
      result.failures += mine.failures;
    });
  }
  for (auto& t : threads) t.join();
  return result;
}

void report(const char* what, const RunResult& r) {
  std::printf("%s: %zu answers  p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  statuses:",
              what, r.ms.size(), bench::percentile(r.ms, 50), bench::percentile(r.ms, 99),
              bench::percentile(r.ms, 99.9),
              r.ms.empty() ? 0.0 : *std::max_element(r.ms.begin(), r.ms.end()));
  for (auto [status, count] : r.statuses) std::printf(" %d x%ld", status, count);
  std::printf("  transport failures: %ld\n", r.failures);
}

std::unique_ptr<ServerProcess> start_bridge(const Options& o, const TempDir& dir,
                                            const std::string& name, const std::string& body) {
  std::string config =
      dir.write(name + ".yaml", "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kToken +
                                    "\"]\n  threads: 64\n  drain_seconds: 0\nstorage:\n  path: " +
                                    dir.path() + "/" + name + ".db\n" + body);
  return std::make_unique<ServerProcess>(std::vector<std::string>{o.binary, "serve", "-c", config},
                                         std::map<std::string, std::string>{});
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"callbridge-bench-commubo: commubo callback decisions, local rules and a hung CRM"};
  app.add_option("--binary", o.binary, "the callbridge executable")->capture_default_str();
  app.add_option("--rate", o.rate, "callbacks/s with local rules")->capture_default_str();
  app.add_option("--seconds", o.seconds, "length of the local-rules run")->capture_default_str();
  app.add_option("--customers", o.customers, "customers in the fake kintone directory")
      ->capture_default_str();
  app.add_option("--hung-rate", o.hung_rate, "callbacks/s against the hung CRM")
      ->capture_default_str();
  app.add_option("--hung-seconds", o.hung_seconds, "length of the hung-CRM run")
      ->capture_default_str();
  app.add_option("--deadline-ms", o.deadline_ms, "commubo answer deadline")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  TempDir dir;

  // 1. Local rules: directory lookup and regex gates.
  {
    FakeKintone kintone;
    kintone.add_app(14, "record_no");
    kintone.add_api_token(14, "bench-kintone-token");
    std::vector<nlohmann::json> records;
    for (int i = 0; i < o.customers; ++i)
      records.push_back({{"電話番号", {{"value", tel_of(i)}}},
                         {"顧客名", {{"value", "顧客" + std::to_string(i)}}}});
    kintone.insert_records(14, records);
    auto bridge = start_bridge(o, dir, "local", R"(kintone:
  connections:
    crm: { url: )" + kintone.base_url() + R"(, api_tokens: [bench-kintone-token] }
  directory: { connection: crm, app: 14, phone_fields: [電話番号], name_field: 顧客名, interval_seconds: 3600 }
commubo: { deadline_ms: 2000 }
rules:
  - name: blocklist
    event: commubo.inbound
    order: 1
    when: { code: "{TEL}", pattern: "/^(0120999999|anonymous)$/" }
    decide: { status: 486 }
  - name: known
    event: commubo.inbound
    order: 2
    when: { code: "{CUSTOMER_FOUND}", pattern: "/^1$/" }
    decide: { status: 200 }
  - name: unknown-in-hours
    event: commubo.inbound
    order: 3
    decide: { status: 200 }
)");
    if (!bridge->started()) {
      std::fprintf(stderr, "the bridge did not start:\n%s\n", bridge->log().c_str());
      return 1;
    }
    if (!bridge->wait_for_log("\"full\":true", 60) && !bridge->wait_for_log("import", 1))
      std::fprintf(stderr, "no directory import line in the log; measuring anyway\n");
    // Known customers, unknown callers and blocklisted numbers, in turn.
    auto tel = [&](long i) {
      if (i % 10 == 9) return std::string("0120999999");
      if (i % 3 == 0) return std::string("09011112222");
      return tel_of(static_cast<int>(i % o.customers));
    };
    auto r = drive(bridge->port(), o.rate, o.seconds, tel);
    char what[128];
    std::snprintf(what, sizeof what, "commubo, local rules, %d callbacks/s for %.0f s", o.rate,
                  o.seconds);
    report(what, r);
  }

  // 2. A hung CRM in front of the decision.
  {
    HungServer hung;
    auto bridge = start_bridge(o, dir, "hung",
                               R"(commubo: { deadline_ms: )" + std::to_string(o.deadline_ms) + R"( }
dispatcher: { workers: 16 }
rules:
  - name: crm-lookup
    event: commubo.inbound
    order: 1
    request:
      method: GET
      url: http://127.0.0.1:)" + std::to_string(hung.port) +
                                   R"(/k/v1/records.json?app=14
      timeout: 5
    retry: { attempts: 1 }
  - name: decide
    event: commubo.inbound
    order: 2
    decide: { status: 200 }
)");
    if (!bridge->started()) {
      std::fprintf(stderr, "the bridge did not start:\n%s\n", bridge->log().c_str());
      return 1;
    }
    auto r = drive(bridge->port(), o.hung_rate, o.hung_seconds,
                   [](long i) { return tel_of(static_cast<int>(i)); });
    char what[128];
    std::snprintf(what, sizeof what, "commubo, hung CRM, deadline %d ms, %d callbacks/s for %.0f s",
                  o.deadline_ms, o.hung_rate, o.hung_seconds);
    report(what, r);
    long late =
        std::count_if(r.ms.begin(), r.ms.end(), [&](double ms) { return ms > o.deadline_ms + 50; });
    std::printf("answers later than deadline + 50 ms: %ld of %zu\n", late, r.ms.size());
  }
  return 0;
}
