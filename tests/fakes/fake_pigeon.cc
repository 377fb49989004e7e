#include "tests/fakes/fake_pigeon.h"

#include <httplib.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

namespace callbridge::testing {

namespace {

using json = nlohmann::json;

struct Contact {
  std::string name, phone;
};
struct CallFlow {
  std::string id, name;
  int loop_limit = 1;
  std::vector<std::pair<std::string, Contact>> contacts;
};
struct Response {
  std::string type, message;
};
struct Guidance {
  std::string id, name, message;
  std::map<int, Response> responses;
};

struct Result {
  std::string id;
  json final_doc;
  json history;  // all calls, in order
  int polls_left = 0;
  bool aborted = false;
};

std::string render(const std::string& text, const json& parameters) {
  std::string out;
  std::size_t i = 0;
  while (true) {
    auto open = text.find("{{", i);
    auto close = open == std::string::npos ? open : text.find("}}", open);
    if (close == std::string::npos) break;
    out += text.substr(i, open - i);
    std::string key = text.substr(open + 2, close - open - 2);
    while (!key.empty() && key.front() == ' ') key.erase(0, 1);
    while (!key.empty() && key.back() == ' ') key.pop_back();
    if (parameters.contains(key)) {
      const json& v = parameters[key];
      out += v.is_string() ? v.get<std::string>() : v.dump();
    }
    i = close + 2;
  }
  return out + text.substr(i);
}

}  // namespace

struct FakePigeon::Impl {
  std::string token;
  httplib::Server server;
  std::thread thread;
  int port = 0;

  mutable std::mutex mutex;
  std::map<std::string, Contact> contacts;
  std::map<std::string, CallFlow> callflows;
  std::map<std::string, Guidance> guidances;
  std::map<std::string, std::vector<std::string>> scripts;
  int polls_until_done = 1;
  std::map<std::string, Result> results;
  std::vector<PigeonRequestLog> requests;
  std::vector<json> invocations;
  std::vector<std::string> calls;
  int aborts = 0;
  int next_id = 1;

  static void error(httplib::Response& res, int status, const std::string& detail) {
    res.status = status;
    res.set_content(json{{"detail", detail}}.dump(), "application/json");
  }

  bool authorized(const httplib::Request& req) const {
    return req.get_header_value("X-Authorization") == "Token " + token;
  }

  // Runs the chain to its end with Pigeon's semantics; the caller holds the mutex.
  Result run(const CallFlow& flow, const Guidance& guidance, const json& parameters) {
    Result r;
    r.id = "00000000-0000-4000-8000-" + std::string(12 - std::to_string(next_id).size(), '0') +
           std::to_string(next_id);
    ++next_id;
    std::set<std::string> left;
    std::string status = "failed", reason = "max loop reached";
    json key_input = nullptr;
    json terminated_by = nullptr;
    int loops = 0;
    int clock = 0;
    r.history = json::array();
    for (int loop = 1; loop <= flow.loop_limit && status != "succeeded"; ++loop) {
      bool called = false;
      for (const auto& [cid, contact] : flow.contacts) {
        if (left.count(cid)) continue;
        called = true;
        loops = loop;
        calls.push_back(cid + "@" + std::to_string(loop));
        const auto& script = scripts[cid];
        std::string answer = script.empty()
                                 ? "no-answer"
                                 : script[std::min<std::size_t>(loop - 1, script.size() - 1)];
        json h{{"contactId", cid},
               {"displayName", contact.name},
               {"phoneNumber", contact.phone},
               {"loop", loop},
               {"startedAt", "2024-05-01T09:00:" + std::string(clock < 10 ? "0" : "") +
                                 std::to_string(clock) + ".000Z"},
               {"endedAt", "2024-05-01T09:00:" + std::string(clock + 1 < 10 ? "0" : "") +
                               std::to_string(clock + 1) + ".000Z"},
               {"message", render(guidance.message, parameters)},
               {"keyInput", nullptr},
               {"reaction", nullptr}};
        clock = (clock + 2) % 58;
        std::string reaction;
        if (answer.rfind("key ", 0) == 0) {
          int key = answer[4] - '0';
          auto it = guidance.responses.find(key);
          h["keyInput"] = std::to_string(key);
          if (it == guidance.responses.end()) {
            h["result"] = "ignored";
          } else {
            h["result"] = "succeeded";
            h["reaction"] = it->second.type;
            reaction = it->second.type;
          }
        } else if (answer == "no-key") {
          h["result"] = "ignored";
        } else if (answer == "fail") {
          h["result"] = "failed";
        } else {
          h["result"] = "missed";
        }
        r.history.push_back(h);
        if (reaction == "terminate") {
          status = "succeeded";
          reason = "terminated";
          key_input = h["keyInput"];
          terminated_by = json{{"contactId", cid}, {"displayName", contact.name}};
          break;
        }
        if (reaction == "leave") left.insert(cid);
      }
      if (!called) break;
    }
    json callflow_doc{{"callflowId", flow.id.empty() ? json(nullptr) : json(flow.id)},
                      {"displayName", flow.name},
                      {"loopLimit", flow.loop_limit},
                      {"contacts", json::array()}};
    for (const auto& [cid, c] : flow.contacts)
      callflow_doc["contacts"].push_back(
          json{{"contactId", cid}, {"displayName", c.name}, {"phoneNumber", c.phone}});
    json reactions = json::array();
    for (const auto& [key, resp] : guidance.responses)
      reactions.push_back(json{
          {"key", std::to_string(key)}, {"type", resp.type}, {"messageTemplate", resp.message}});
    r.final_doc = json{
        {"resultId", r.id},
        {"isActive", false},
        {"status", status},
        {"reason", reason},
        {"keyInput", key_input},
        {"terminatedBy", terminated_by},
        {"loopCount", loops},
        {"startedAt", "2024-05-01T09:00:00.000Z"},
        {"finishedAt", "2024-05-01T09:01:00.000Z"},
        {"callflow", callflow_doc},
        {"guidance", json{{"guidanceId", guidance.id.empty() ? json(nullptr) : json(guidance.id)},
                          {"displayName", guidance.name},
                          {"messageTemplate", guidance.message},
                          {"reactions", reactions}}},
        {"parameters", parameters},
        {"history", r.history}};
    r.polls_left = polls_until_done;
    return r;
  }

  json active_doc(const Result& r) const {
    json doc = r.final_doc;
    doc["isActive"] = true;
    doc["status"] = "running";
    doc["reason"] = "";
    doc["keyInput"] = nullptr;
    doc["terminatedBy"] = nullptr;
    doc["finishedAt"] = nullptr;
    doc["history"] = json::array();
    if (!r.history.empty()) doc["history"].push_back(r.history[0]);
    return doc;
  }

  void invoke(const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("params") || !body["params"].is_object())
      return error(res, 400, "params is required");
    const json& p = body["params"];
    std::lock_guard lock(mutex);
    CallFlow flow;
    Guidance guidance;
    if (p.contains("callflowId")) {
      auto it =
          callflows.find(p["callflowId"].is_string() ? p["callflowId"].get<std::string>() : "");
      if (it == callflows.end()) return error(res, 404, "callflow not found");
      flow = it->second;
    } else if (p.contains("callflow") && p["callflow"].is_object()) {
      const json& c = p["callflow"];
      flow.loop_limit = c.value("loopLimit", 1);
      int n = 0;
      for (const auto& contact : c.value("contacts", json::array())) {
        ++n;
        if (contact.is_string()) {
          auto known = contacts.find(contact.get<std::string>());
          if (known == contacts.end()) return error(res, 400, "unknown contact");
          flow.contacts.emplace_back(known->first, known->second);
        } else {
          std::string id = contact.value("contactId", "inline-" + std::to_string(n));
          flow.contacts.emplace_back(
              id, Contact{contact.value("displayName", ""), contact.value("phoneNumber", "")});
        }
      }
      if (flow.contacts.empty()) return error(res, 400, "callflow.contacts is empty");
    } else {
      return error(res, 400, "callflowId or callflow is required");
    }
    if (p.contains("guidanceId")) {
      auto it =
          guidances.find(p["guidanceId"].is_string() ? p["guidanceId"].get<std::string>() : "");
      if (it == guidances.end()) return error(res, 404, "guidance not found");
      guidance = it->second;
    } else if (p.contains("guidance") && p["guidance"].is_object()) {
      const json& g = p["guidance"];
      guidance.message = g.value("messageTemplate", "");
      bool terminate = false;
      for (const auto& r : g.value("reactions", json::array())) {
        std::string key = r.value("key", "");
        if (key.size() != 1 || key[0] < '1' || key[0] > '9')
          return error(res, 400, "reaction key must be 1-9");
        guidance.responses[key[0] - '0'] =
            Response{r.value("type", ""), r.value("messageTemplate", "")};
        if (r.value("type", "") == "terminate") terminate = true;
      }
      if (!terminate) return error(res, 400, "at least one terminate reaction is required");
    } else {
      return error(res, 400, "guidanceId or guidance is required");
    }
    json parameters = p.value("parameters", json::object());
    Result r = run(flow, guidance, parameters);
    invocations.push_back(p);
    std::string id = r.id;
    results[id] = std::move(r);
    res.status = 200;
    res.set_content(json{{"resultId", id}}.dump(), "application/json");
  }

  void result(const std::string& id, httplib::Response& res) {
    std::lock_guard lock(mutex);
    auto it = results.find(id);
    if (it == results.end()) return error(res, 404, "result not found");
    Result& r = it->second;
    json doc;
    if (r.aborted) {
      doc = r.final_doc;
      doc["status"] = "aborted";
      doc["reason"] = "aborted";
      doc["keyInput"] = nullptr;
      doc["terminatedBy"] = nullptr;
      doc["history"] = json::array();
      if (!r.history.empty()) doc["history"].push_back(r.history[0]);
    } else if (r.polls_left > 0) {
      --r.polls_left;
      doc = active_doc(r);
    } else {
      doc = r.final_doc;
    }
    res.set_content(doc.dump(), "application/json");
  }

  void abort(const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, false);
    std::string id;
    if (body.is_object() && body.contains("params") && body["params"].is_object())
      id = body["params"].value("resultId", "");
    else if (body.is_object())
      id = body.value("resultId", "");
    std::lock_guard lock(mutex);
    auto it = results.find(id);
    if (it == results.end()) return error(res, 404, "result not found");
    if (it->second.polls_left <= 0 || it->second.aborted)
      return error(res, 409, "the chain is not active");
    it->second.aborted = true;
    ++aborts;
    res.set_content(json{{"resultId", id}, {"status", "aborted"}}.dump(), "application/json");
  }
};

FakePigeon::FakePigeon(std::string token) : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  auto& s = impl_->server;
  s.set_tcp_nodelay(true);
  // Recorded before answering, so a client that got its answer finds its request logged.
  auto guard = [this](auto handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      PigeonRequestLog log{req.method, req.path, {}, req.body};
      for (const auto& [k, v] : req.headers) {
        std::string lower = k;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        log.headers.emplace(lower, v);
      }
      {
        std::lock_guard lock(impl_->mutex);
        impl_->requests.push_back(std::move(log));
      }
      if (!impl_->authorized(req)) return Impl::error(res, 401, "Invalid token.");
      handler(req, res);
    };
  };
  s.Post("/api/apps/pigeon/chain/invoke",
         guard([this](const httplib::Request& req, httplib::Response& res) {
           impl_->invoke(req, res);
         }));
  s.Get(R"(/api/apps/pigeon/results/([^/]+))",
        guard([this](const httplib::Request& req, httplib::Response& res) {
          impl_->result(req.matches[1], res);
        }));
  s.Post("/api/apps/pigeon/chain/abort",
         guard([this](const httplib::Request& req, httplib::Response& res) {
           impl_->abort(req, res);
         }));
  impl_->port = s.bind_to_any_port("127.0.0.1");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  while (!impl_->server.is_running()) std::this_thread::yield();
}

FakePigeon::~FakePigeon() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int FakePigeon::port() const {
  return impl_->port;
}
std::string FakePigeon::base_url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

void FakePigeon::add_contact(std::string id, std::string name, std::string phone) {
  std::lock_guard lock(impl_->mutex);
  impl_->contacts[std::move(id)] = Contact{std::move(name), std::move(phone)};
}

void FakePigeon::add_callflow(std::string id, std::string name, int loop_limit,
                              std::vector<std::string> contact_ids) {
  std::lock_guard lock(impl_->mutex);
  CallFlow flow{id, std::move(name), loop_limit, {}};
  for (const auto& cid : contact_ids) flow.contacts.emplace_back(cid, impl_->contacts.at(cid));
  impl_->callflows[std::move(id)] = std::move(flow);
}

void FakePigeon::add_guidance(std::string id, std::string name, std::string message,
                              std::map<int, std::pair<std::string, std::string>> responses) {
  std::lock_guard lock(impl_->mutex);
  Guidance g{id, std::move(name), std::move(message), {}};
  for (auto& [key, r] : responses) g.responses[key] = Response{r.first, r.second};
  impl_->guidances[std::move(id)] = std::move(g);
}

void FakePigeon::script(const std::string& contact_id, std::vector<std::string> answers) {
  std::lock_guard lock(impl_->mutex);
  impl_->scripts[contact_id] = std::move(answers);
}

void FakePigeon::set_polls_until_done(int polls) {
  std::lock_guard lock(impl_->mutex);
  impl_->polls_until_done = polls;
}

std::vector<PigeonRequestLog> FakePigeon::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->requests;
}

std::vector<nlohmann::json> FakePigeon::invocations() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->invocations;
}

std::vector<std::string> FakePigeon::calls() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->calls;
}

int FakePigeon::aborts() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->aborts;
}

}  // namespace callbridge::testing
