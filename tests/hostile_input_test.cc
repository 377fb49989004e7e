// Hostile input at the HTTP edge, through the real binary: nesting bombs on every JSON route,
// bodies over the limit (chunked or not, with or without a token), slow and idle connections,
// ambiguous framing, and identifiers that do not survive the trip.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bridge/connection_gate.h"
#include "bridge/journal/journal.h"
#include "tests/fakes/bridge_harness.h"

using namespace callbridge::testing;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// A raw TCP connection, for what an HTTP client library will not send.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  void finish_sending() { ::shutdown(fd_, SHUT_WR); }
  // False once the peer stops taking bytes (it answered and closed).
  bool send(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  // What arrives within `timeout`, until the peer closes or a whole answer is in.
  std::string receive(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    std::string out;
    auto deadline = Clock::now() + timeout;
    for (;;) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
      if (complete(out)) break;
    }
    return out;
  }

 private:
  static bool complete(const std::string& answer) {
    auto head = answer.find("\r\n\r\n");
    if (head == std::string::npos) return false;
    auto at = answer.find("Content-Length: ");
    if (at == std::string::npos || at > head) return false;
    std::size_t length = std::stoul(answer.substr(at + 16));
    return answer.size() >= head + 4 + length;
  }

  int fd_ = -1;
  bool connected_ = false;
};

int status_of(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

std::string status_line(const std::string& answer) {
  return answer.substr(0, answer.find("\r\n"));
}

std::string nested(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

const std::string kAuth = "Authorization: Bearer " + kBridgeToken + "\r\n";

std::string post(const std::string& path, const std::string& type, const std::string& body,
                 const std::string& extra = kAuth) {
  return "POST " + path + " HTTP/1.1\r\nHost: bridge\r\n" + extra + "Content-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

const char* kEventRule = R"(rules:
  - name: note
    event: inbound
    request: { url: "response://{CALL_ID}" }
)";

const char* kSources = R"(commubo: { deadline_ms: 500, default_status: 200, on_error_status: 486 }
webhooks:
  - name: plain
    path: /v1/hooks/plain
    methods: [POST]
    accept: [json]
    auth: none
    event: {const: inbound}
    call_id: /call
escalation:
  api: true
  contacts:
    - { id: c-01, name: one, phone: "090-1111-0001" }
  callflows:
    - { id: flow, name: flow, loop_limit: 1, contacts: [c-01] }
  guidances:
    - { id: guide, name: guide, message: "hello", responses: { 1: { type: terminate, message: bye } } }
  dialer: { type: simulate }
)";

}  // namespace

TEST_CASE("hostile: nesting bombs are refused on every JSON route, and the bridge lives",
          "[hostile]") {
  Bridge bridge;
  bridge.write_config(kEventRule, kSources);
  REQUIRE(bridge.start());
  const std::string deep_commubo = R"({"callId":"X","customer":{"x":)" + nested(32000) + "}}";

  SECTION("commubo: its error status, with the reason") {
    httplib::Client c = bridge.client();
    auto r = c.Post(("/v1/commubo/inbound?token=" + kBridgeToken).c_str(), deep_commubo,
                    "application/json");
    REQUIRE(r);
    CHECK(r->status == 486);
    CHECK(r->body.find("server.max_json_depth") != std::string::npos);
  }
  SECTION("commubo: a payload that would expand past the bound") {
    // 30 levels of 1000-character keys, then 2000 leaves: each leaf's name repeats the path.
    std::string body = R"({"callId":"X","customer":{)";
    for (int i = 0; i < 30; ++i)
      body += "\"" + std::string(1000, static_cast<char>('a' + i % 26)) + "\":{";
    for (int i = 0; i < 2000; ++i) body += (i ? ",\"" : "\"") + std::to_string(i) + "\":1";
    body += std::string(30, '}') + "}}";
    REQUIRE(body.size() < 65536);
    auto r = bridge.client().Post(("/v1/commubo/inbound?token=" + kBridgeToken).c_str(), body,
                                  "application/json");
    REQUIRE(r);
    CHECK(r->status == 486);
    CHECK(r->body.find("server.max_expanded_bytes") != std::string::npos);
  }
  SECTION("/v1/events") {
    auto r = bridge.client().Post(
        "/v1/events", R"({"event":"inbound","call_id":"C","vars":{"x":)" + nested(65) + "}}",
        "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_code(r) == "invalid_json");
    CHECK(r->body.find("server.max_json_depth") != std::string::npos);
  }
  SECTION("a webhook source") {
    auto r = bridge.client().Post("/v1/hooks/plain", R"({"call":)" + nested(1000) + "}",
                                  "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_code(r) == "invalid_json");
  }
  SECTION("the Pigeon API and dial results") {
    auto r = bridge.client().Post("/api/apps/pigeon/chain/invoke",
                                  R"({"params":{"x":)" + nested(1000) + "}}", "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_code(r) == "invalid_json");
  }
  // Within the limit still works, and the bridge is alive after all of it.
  auto ok = bridge.post_event({{"event", "inbound"}, {"call_id", "after"}});
  REQUIRE(ok);
  CHECK(ok->status == 202);
  auto health = bridge.client().Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
}

TEST_CASE("hostile: max_body_bytes bounds chunked bodies on every route, token or not",
          "[hostile]") {
  Bridge bridge;
  bridge.write_config(kEventRule,
                      "webhooks:\n  - {name: p, path: /v1/hooks/p, methods: [POST], "
                      "accept: [json], auth: none, event: {const: inbound}, call_id: /call}\n");
  REQUIRE(bridge.start());
  auto chunked_flood = [&](const std::string& path, const std::string& extra) {
    RawConnection c(bridge.port());
    REQUIRE(c.connected());
    c.send("POST " + path + " HTTP/1.1\r\nHost: bridge\r\n" + extra +
           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "4000\r\n" + std::string(0x4000, ' ') + "\r\n";
    // 300 MB offered; the answer must come long before (the default limit is 64 KiB).
    std::size_t sent = 0;
    while (sent < (300u << 20) && c.send(chunk)) {
      sent += 0x4000;
      if (sent > (1u << 20)) break;  // the bridge has had far more than it may buffer
    }
    return c.receive();
  };
  SECTION("/v1/events with a token") {
    std::string answer = chunked_flood("/v1/events", kAuth);
    CHECK(status_of(answer) == 413);
    CHECK(answer.find("too_large") != std::string::npos);
  }
  SECTION("/healthz without a token") {
    CHECK(status_of(chunked_flood("/healthz", "")) == 413);
  }
  SECTION("a webhook source path and an unknown path") {
    CHECK(status_of(chunked_flood("/v1/hooks/p", "")) == 413);
    CHECK(status_of(chunked_flood("/nowhere", "")) == 413);
  }
  SECTION("a Content-Length over the limit is refused before its body is sent") {
    RawConnection c(bridge.port());
    c.send(
        "POST /v1/events HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
        "Content-Length: 314572800\r\n\r\n");
    CHECK(status_of(c.receive()) == 413);
  }
  SECTION("a chunked event within the limit is accepted") {
    RawConnection c(bridge.port());
    std::string body = R"({"event":"inbound","call_id":"chunked-1"})";
    std::ostringstream size;
    size << std::hex << body.size();
    c.send("POST /v1/events HTTP/1.1\r\nHost: b\r\n" + kAuth +
           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + size.str() +
           "\r\n" + body + "\r\n0\r\n\r\n");
    std::string answer = c.receive();
    CHECK(status_of(answer) == 202);
    CHECK(answer.find("chunked-1") != std::string::npos);
  }
}

TEST_CASE("hostile: slow and idle connections do not starve intake", "[hostile]") {
  Bridge bridge;
  bridge.write_config(kEventRule, "");
  std::string text = read_file(bridge.config_path);
  bridge.config_path = bridge.dir.write("callbridge.yaml",
                                        replace_all(text, "server:\n", "server:\n  threads: 8\n"));
  REQUIRE(bridge.start());

  std::vector<std::unique_ptr<RawConnection>> slow, idle;
  for (int i = 0; i < 64; ++i) {
    slow.push_back(std::make_unique<RawConnection>(bridge.port()));
    REQUIRE(slow.back()->send("POST /v1/events HTTP/1.1\r\nHost: b\r\nContent-Le"));
  }
  for (int i = 0; i < 64; ++i) {
    idle.push_back(std::make_unique<RawConnection>(bridge.port()));
    REQUIRE(idle.back()->send("GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n"));
    REQUIRE(status_of(idle.back()->receive()) == 200);  // and now it sits, kept alive
  }
  for (int i = 0; i < 3; ++i) {
    for (auto& s : slow) s->send("n");  // one byte at a time
    auto started = Clock::now();
    httplib::Client c = bridge.client();
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(1, 0);
    auto health = c.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    auto event = c.Post("/v1/events", json{{"event", "inbound"}, {"call_id", "fast"}}.dump(),
                        "application/json");
    REQUIRE(event);
    CHECK(event->status == 202);
    CHECK(Clock::now() - started < std::chrono::seconds(1));
  }
}

TEST_CASE("hostile: a request that does not arrive in time gets 408", "[hostile]") {
  Bridge bridge;
  bridge.write_config(kEventRule, "");
  std::string text = read_file(bridge.config_path);
  bridge.config_path = bridge.dir.write(
      "callbridge.yaml", replace_all(text, "server:\n", "server:\n  read_timeout_ms: 300\n"));
  REQUIRE(bridge.start());
  RawConnection c(bridge.port());
  c.send("POST /v1/events HTTP/1.1\r\nHost: b\r\n");
  auto started = Clock::now();
  std::string answer = c.receive(std::chrono::milliseconds(5000));
  CHECK(status_of(answer) == 408);
  CHECK(Clock::now() - started < std::chrono::seconds(3));
}

TEST_CASE("hostile: framing and identifiers", "[hostile]") {
  Bridge bridge;
  bridge.write_config(kEventRule, kSources);
  REQUIRE(bridge.start());

  SECTION("two different Content-Length headers are refused") {
    RawConnection c(bridge.port());
    std::string body = R"({"event":"inbound","call_id":"dup"})";
    c.send("POST /v1/events HTTP/1.1\r\nHost: b\r\n" + kAuth +
           "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nContent-Length: 5\r\n\r\n" + body);
    std::string answer = c.receive();
    CHECK(status_of(answer) == 400);
    CHECK(answer.find("Content-Length") != std::string::npos);
  }
  SECTION("a request followed by a half-close is still answered") {
    RawConnection c(bridge.port());
    std::string body = R"({"event":"inbound","call_id":"half-closed"})";
    c.send(post("/v1/events", "application/json", body + std::string(20000, ' ')));
    c.finish_sending();
    std::string answer = c.receive();
    CHECK(status_of(answer) == 202);
  }
  SECTION("Content-Length with Transfer-Encoding is refused") {
    RawConnection c(bridge.port());
    c.send("POST /v1/events HTTP/1.1\r\nHost: b\r\n" + kAuth +
           "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(status_of(c.receive()) == 400);
  }
  SECTION("a call ID with '/' is served percent-encoded") {
    auto r = bridge.post_event({{"event", "inbound"}, {"call_id", "pbx/7/a"}});
    REQUIRE(r);
    REQUIRE(r->status == 202);
    json call = bridge.wait_done("pbx%2F7%2Fa", 1);
    REQUIRE(call.is_object());
    CHECK(call["call_id"] == "pbx/7/a");
  }
  SECTION("control characters in call IDs are refused by every intake path") {
    for (std::string id :
         {std::string("a\x1b[31m"), std::string("a\r\nb"), std::string("a\0b", 3)}) {
      auto r = bridge.client().Post(
          "/v1/events", json{{"event", "inbound"}, {"call_id", id}}.dump(), "application/json");
      REQUIRE(r);
      CHECK(r->status == 400);
      CHECK(r->body.find("control characters") != std::string::npos);
      auto hook =
          bridge.client().Post("/v1/hooks/plain", json{{"call", id}}.dump(), "application/json");
      REQUIRE(hook);
      CHECK(hook->status == 400);
      CHECK(hook->body.find("control characters") != std::string::npos);
      auto pigeon = bridge.client().Post(
          "/api/apps/pigeon/chain/invoke",
          json{{"params", {{"callflowId", "flow"}, {"guidanceId", "guide"}, {"callId", id}}}}
              .dump(),
          "application/json");
      REQUIRE(pigeon);
      CHECK(pigeon->status == 400);
      CHECK(pigeon->body.find("control characters") != std::string::npos);
    }
  }
  SECTION("the Pigeon API caps callId at 128 characters like the rest") {
    auto r = bridge.client().Post("/api/apps/pigeon/chain/invoke",
                                  json{{"params",
                                        {{"callflowId", "flow"},
                                         {"guidanceId", "guide"},
                                         {"callId", std::string(10000, 'x')}}}}
                                      .dump(),
                                  "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->body.find("128") != std::string::npos);
  }
  SECTION("an 80-digit numeric call ID keeps its digits") {
    const std::string digits =
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890";
    auto r = bridge.client().Post("/v1/events", R"({"event":"inbound","call_id":)" + digits + "}",
                                  "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 202);
    CHECK(json::parse(r->body)["call_id"] == digits);
    auto hook =
        bridge.client().Post("/v1/hooks/plain", R"({"call":)" + digits + "}", "application/json");
    REQUIRE(hook);
    REQUIRE(hook->status == 200);
    CHECK(json::parse(hook->body)["call_id"] == digits);
  }
  SECTION("application/jsonx is not JSON; application/json with a charset is") {
    auto r = bridge.client().Post("/v1/events", R"({"event":"inbound","call_id":"x"})",
                                  "application/jsonx");
    REQUIRE(r);
    CHECK(r->status == 415);
    r = bridge.client().Post("/v1/events", R"({"event":"inbound","call_id":"x"})",
                             "application/json; charset=utf-8");
    REQUIRE(r);
    CHECK(r->status == 202);
  }
  SECTION("a 486 answer carries its own reason phrase") {
    RawConnection c(bridge.port());
    c.send(post("/v1/commubo/inbound?token=" + kBridgeToken, "application/json", "{"));
    std::string answer = c.receive();
    CHECK(status_line(answer) == "HTTP/1.1 486 Busy Here");
  }
}

TEST_CASE("hostile: request framing in the gate", "[hostile]") {
  using callbridge::bridge::frame_request;
  using State = callbridge::bridge::Framing::State;
  const std::string head = "POST /x HTTP/1.1\r\nHost: b\r\n";
  CHECK(frame_request(head, 100, 1000).state == State::incomplete);
  auto f = frame_request(head + "Content-Length: 3\r\n\r\nabcGET", 100, 1000);
  CHECK(f.state == State::complete);
  CHECK(f.length == head.size() + 21 + 3);
  CHECK(frame_request(head + "Content-Length: 101\r\n\r\n", 100, 1000).status == 413);
  CHECK(
      frame_request(head + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 100, 1000).state ==
      State::complete);
  CHECK(frame_request(head + "Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 100, 1000).status ==
        400);
  CHECK(frame_request(head + "Content-Length: -1\r\n\r\n", 100, 1000).status == 400);
  const std::string chunked = head + "Transfer-Encoding: chunked\r\n\r\n";
  CHECK(frame_request(chunked + "3\r\nabc\r\n", 100, 1000).state == State::incomplete);
  f = frame_request(chunked + "3\r\nabc\r\n0\r\n\r\nnext", 100, 1000);
  CHECK(f.state == State::complete);
  CHECK(f.length == chunked.size() + 13);
  CHECK(frame_request(chunked + "40\r\n" + std::string(64, 'x') + "\r\n40\r\n", 100, 1000).status ==
        413);
  CHECK(frame_request(chunked + "zz\r\n", 100, 1000).status == 400);
  CHECK(frame_request(head + "Transfer-Encoding: gzip\r\n\r\n", 100, 1000).status == 501);
  CHECK(frame_request(head + std::string(2000, 'h'), 100, 1000).status == 431);
  auto expect =
      frame_request(head + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", 100, 1000);
  CHECK(expect.state == State::incomplete);
  CHECK(expect.expect_continue_at == head.size());
  CHECK(callbridge::bridge::reason_phrase(486) == "Busy Here");
  CHECK(callbridge::bridge::reason_phrase(499) == "Client Error");
}

TEST_CASE("hostile: the new server limits are checked with their bounds", "[hostile]") {
  TempDir dir;
  std::string file = dir.write("c.yaml", R"(server:
  read_timeout_ms: 5
  max_waiting_connections: 1
  max_json_depth: 100000
  max_expanded_bytes: 10
)");
  auto r = run_process({CALLBRIDGE_BINARY, "validate", "-c", file});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("\"server.read_timeout_ms\": must be between 100 and 300000, got 5") !=
        std::string::npos);
  CHECK(r.err.find("server.max_waiting_connections") != std::string::npos);
  CHECK(r.err.find("server.max_json_depth") != std::string::npos);
  CHECK(r.err.find("server.max_expanded_bytes") != std::string::npos);
}

TEST_CASE("hostile: history shows control characters in stored call IDs escaped", "[hostile]") {
  // A journal written before call IDs were checked may hold an ANSI escape.
  Bridge bridge;
  bridge.write_config("");
  {
    std::string error;
    auto journal =
        callbridge::bridge::Journal::open({bridge.dir.path() + "/journal.db", false, 512}, error);
    REQUIRE(journal);
    REQUIRE(journal->append_finished_event(
        "red\x1b[31mcall", "inbound", R"({"event":"inbound","call_id":"x"})", "{}", "{}", error));
  }
  auto r = run_process({CALLBRIDGE_BINARY, "history", "-c", bridge.config_path});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("red\\x1b[31mcall") != std::string::npos);
  CHECK(r.out.find('\x1b') == std::string::npos);
}
