#include "tests/fakes/bridge_harness.h"

#include <chrono>
#include <thread>

namespace callbridge::testing {

void Bridge::write_config(const std::string& body, const std::string& extra) {
  config_path =
      dir.write("callbridge.yaml", "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
                                       "\"]\n  drain_seconds: 0\nstorage:\n  path: " + dir.path() +
                                       "/journal.db\n" + extra + body);
}

bool Bridge::start(const std::map<std::string, std::string>& env) {
  process = std::make_unique<ServerProcess>(
      std::vector<std::string>{CALLBRIDGE_BINARY, "serve", "-c", config_path}, env);
  return process->started();
}

httplib::Client Bridge::client() const {
  httplib::Client c("127.0.0.1", process->port());
  c.set_tcp_nodelay(true);
  c.set_read_timeout(10, 0);
  c.set_default_headers({{"Authorization", "Bearer " + kBridgeToken}});
  return c;
}

httplib::Result Bridge::post_event(const nlohmann::json& event) const {
  return client().Post("/v1/events", event.dump(), "application/json");
}

nlohmann::json Bridge::call(const std::string& id) const {
  auto r = client().Get(("/v1/calls/" + id).c_str());
  if (!r || r->status != 200) return nlohmann::json();
  return nlohmann::json::parse(r->body);
}

nlohmann::json Bridge::wait_done(const std::string& id, std::size_t events) const {
  for (int i = 0; i < 2000; ++i) {
    nlohmann::json c = call(id);
    if (c.is_object() && c["events"].size() == events) {
      bool done = true;
      for (const auto& e : c["events"]) done &= e["state"] != "pending";
      if (done) return c;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return call(id);
}

std::string error_code(const httplib::Result& r) {
  if (!r) return "no response";
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_object() && j.contains("error") ? j["error"]["code"].get<std::string>() : r->body;
}

}  // namespace callbridge::testing
