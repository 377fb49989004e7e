#include "http/http_client.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <thread>

using namespace callbridge::http;

namespace {

// A loopback server that records what it received.
struct TestServer {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex mutex;
  std::vector<httplib::Request> seen;
  TestServer() {
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(1000);
    auto record = [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex);
        seen.push_back(req);
      }
      res.set_content("ok:" + req.method, "text/plain");
    };
    server.Get("/echo", record);
    server.Post("/echo", record);
    server.Put("/echo", record);
    server.Patch("/echo", record);
    server.Delete("/echo", record);
    server.Get("/fail", [](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("boom", "text/plain");
    });
    server.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      res.set_content("late", "text/plain");
    });
    server.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(100000, 'x'), "text/plain");
    });
    server.Get("/port", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.remote_port), "text/plain");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::yield();
  }
  ~TestServer() {
    server.stop();
    thread.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
};

Request request(std::string method, std::string url, std::string body = "") {
  Request r;
  r.method = std::move(method);
  r.url = std::move(url);
  r.body = std::move(body);
  r.timeout = std::chrono::milliseconds(5000);
  return r;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);  // nothing listens there now
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("methods, headers and bodies arrive as given", "[http]") {
  TestServer server;
  HttpClient client;
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    Request r = request(method, server.url("/echo?q=%E9%9B%BB"),
                        std::string(method) == "GET" ? "" : "{\"電話\":\"03\"}");
    r.headers = {{"X-Cybozu-API-Token", "abc"}, {"Content-Type", "application/json"}};
    Outcome o = client.perform(r);
    INFO(method << " " << o.error);
    REQUIRE(o.kind == OutcomeKind::response);
    CHECK(o.status == 200);
    CHECK(o.body == std::string("ok:") + method);
    CHECK(o.latency.count() > 0);
  }
  std::lock_guard lock(server.mutex);
  REQUIRE(server.seen.size() == 5);
  CHECK(server.seen[1].body == "{\"電話\":\"03\"}");
  CHECK(server.seen[1].get_header_value("X-Cybozu-API-Token") == "abc");
  CHECK(server.seen[0].get_param_value("q") == "電");
}

TEST_CASE("any status is a response: failures are values with latency", "[http]") {
  TestServer server;
  HttpClient client({true, "", 50000, 8});

  Outcome fail = client.perform(request("GET", server.url("/fail")));
  CHECK(fail.kind == OutcomeKind::response);
  CHECK(fail.status == 500);
  CHECK(fail.body == "boom");
  CHECK_FALSE(fail.ok());

  Outcome refused = client.perform(
      request("POST", "http://127.0.0.1:" + std::to_string(free_port()) + "/x", "{}"));
  CHECK(refused.kind == OutcomeKind::connect_error);
  CHECK_FALSE(refused.maybe_sent);

  Request slow = request("GET", server.url("/slow"));
  slow.timeout = std::chrono::milliseconds(300);
  Outcome timeout = client.perform(slow);
  CHECK(timeout.kind == OutcomeKind::timeout);
  CHECK(timeout.maybe_sent);
  CHECK(timeout.latency < std::chrono::milliseconds(1200));

  Outcome big = client.perform(request("GET", server.url("/big")));
  CHECK(big.kind == OutcomeKind::too_large);

  CHECK(client.perform(request("GET", "ftp://127.0.0.1/")).kind == OutcomeKind::invalid_request);
  CHECK(client.perform(request("FETCH", server.url("/echo"))).kind == OutcomeKind::invalid_request);
  Request injected = request("GET", server.url("/echo"));
  injected.headers = {{"X-A", "1\r\nX-B: 2"}};
  CHECK(client.perform(injected).kind == OutcomeKind::invalid_request);
}

TEST_CASE("TLS to a plain HTTP port fails fast as tls_error", "[http]") {
  TestServer server;
  HttpClient client;
  Request r = request("GET", "https://127.0.0.1:" + std::to_string(server.port) + "/echo");
  r.timeout = std::chrono::milliseconds(2000);
  Outcome o = client.perform(r);
  CHECK((o.kind == OutcomeKind::tls_error || o.kind == OutcomeKind::io_error));
  CHECK(o.latency < std::chrono::milliseconds(2500));
}

TEST_CASE("connections are kept alive and reused per origin", "[http]") {
  TestServer server;
  HttpClient client;
  std::set<std::string> ports;
  for (int i = 0; i < 5; ++i)
    ports.insert(client.perform(request("GET", server.url("/port"))).body);
  CHECK(ports.size() == 1);
}

TEST_CASE("concurrent use from many threads", "[http]") {
  TestServer server;
  HttpClient client;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (client.perform(request("POST", server.url("/echo"), "x")).ok()) ++ok;
    });
  for (auto& t : threads) t.join();
  CHECK(ok == 400);
}

TEST_CASE("a kept-alive connection the server closed is not used for the next request", "[http]") {
  TestServer server;
  server.server.set_keep_alive_timeout(1);  // the server drops idle connections after 1 s
  HttpClient client;
  std::string first_port = client.perform(request("GET", server.url("/port"))).body;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // let the server close it
  Outcome second = client.perform(request("POST", server.url("/echo"), "second"));
  INFO(second.error);
  CHECK(second.ok());  // a POST on the dead connection would have been an unknown outcome
  CHECK(client.perform(request("GET", server.url("/port"))).body != first_port);
}
