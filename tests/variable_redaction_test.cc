// A CRM that echoes a secret back, captured by `extract`: the secret never shows in the call's
// history (API and CLI) nor in the log, though the journal keeps the value for the call.
#include <httplib.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;
using nlohmann::json;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;
const std::string kSecret = "crm-secret-4f9a0c1e77";

// Answers with the request's X-Api-Key header in its body, as some CRMs echo what they got.
class EchoingCrm {
 public:
  EchoingCrm() {
    server_.Post("/lookup", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(json({{"seen", req.get_header_value("X-Api-Key")}, {"rank", "gold"}}).dump(),
                      "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~EchoingCrm() {
    server_.stop();
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace

TEST_CASE("extracted secrets are redacted in the call's history and logs", "[server][secrets]") {
  EchoingCrm crm;
  Bridge bridge;
  bridge.write_config(R"y(
rules:
  - name: look-up
    event: inbound
    request:
      method: POST
      url: )y" + crm.base_url() +
                      R"y(/lookup
      headers:
        X-Api-Key: ${CRM_KEY}
      body: '{"call": "{ID}"}'
    extract: '/"rank":"(?P<RANK>[a-z]+)","seen":"(?P<KEY>[^"]*)"/'
)y");
  REQUIRE(bridge.start({{"CRM_KEY", kSecret}}));
  auto r = bridge.post_event({{"event", "inbound"}, {"call_id", "R-1"}});
  REQUIRE(r);
  REQUIRE(r->status == 202);
  json call = bridge.wait_done("R-1", 1);
  REQUIRE(call.is_object());
  const json& action = call["events"][0]["actions"][0];
  INFO(call.dump());
  CHECK(action["state"] == "succeeded");
  CHECK(action["extracted"]["RESPONSE_RANK"] == "gold");
  CHECK(action["extracted"]["RESPONSE_KEY"] == "[secret]");
  CHECK(call["variables"]["RESPONSE_KEY"] == "[secret]");
  auto raw = bridge.client().Get("/v1/calls/R-1");
  REQUIRE(raw);
  CHECK(raw->body.find(kSecret) == std::string::npos);

  auto history = run_process({kBinary, "history", "-c", bridge.config_path, "--call", "R-1"},
                             {{"CRM_KEY", kSecret}});
  INFO(history.out << history.err);
  CHECK(history.exit_code == 0);
  CHECK(history.out.find("\"RESPONSE_KEY\": \"[secret]\"") != std::string::npos);
  CHECK(history.out.find(kSecret) == std::string::npos);

  bridge.process->stop(SIGTERM);
  CHECK(bridge.process->log().find(kSecret) == std::string::npos);
}
