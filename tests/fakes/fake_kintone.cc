// The fake kintone's server: a real HTTP server on loopback speaking kintone's REST API (routes
// below, handlers in fake_kintone_api.cc) and OAuth, and the API tests use to set it up and
// inspect it. Its query language is in fake_kintone_query.*, its time format in
// fake_kintone_clock.*.
#include "tests/fakes/fake_kintone.h"

#include <httplib.h>

#include <cstdlib>
#include <thread>

#include "tests/fakes/fake_kintone_server.h"

namespace callbridge::testing {

FakeKintone::FakeKintone(int port) : impl_(std::make_unique<Impl>()) {
  auto& s = impl_->server;
  s.new_task_queue = [] { return new httplib::ThreadPool(16); };
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(1000);
  s.set_keep_alive_timeout(5);
  auto send = [](httplib::Response& res, const Answer& a) {
    res.status = a.status;
    for (const auto& [k, v] : a.headers) res.set_header(k.c_str(), v);
    if (a.status != 302) res.set_content(a.body, "application/json; charset=utf-8");
  };
  auto handler = [this, send](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds delay;
    std::string api = req.matches[2];
    {
      std::lock_guard lock(impl_->mutex);
      impl_->log_request(req);
      if (auto app = impl_->app_of(req, api)) ++impl_->api_counts[*app];
      delay = impl_->delay;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard lock(impl_->mutex);
    if (impl_->fail_count > 0) {
      --impl_->fail_count;
      res.status = impl_->fail_status;
      for (const auto& [k, v] : impl_->fail_headers) res.set_header(k.c_str(), v);
      res.set_content(impl_->fail_body, "application/json; charset=utf-8");
      return;
    }
    std::optional<int> path_space;
    std::string guest = req.matches[1];  // "guest/3/" or ""
    if (!guest.empty()) path_space = std::atoi(guest.c_str() + 6);
    std::string method = req.method;
    if (method == "POST" && req.get_header_value("X-HTTP-Method-Override") == "GET")
      method = "GET-BODY";
    Answer a;
    if (method == "GET-BODY") {
      // GET semantics with parameters in the JSON body, as kintone allows.
      httplib::Request as_get = req;
      as_get.method = "GET";
      auto json = nlohmann::json::parse(req.body, nullptr, false);
      if (!json.is_object()) {
        a = answer({400, "CB_IJ01", "JSONの形式が正しくありません。", nullptr});
      } else {
        as_get.params.clear();
        for (const auto& [k, v] : json.items()) {
          if (k == "fields" && v.is_array()) {
            for (std::size_t i = 0; i < v.size(); ++i)
              as_get.params.emplace("fields[" + std::to_string(i) + "]", as_text(v[i]));
          } else {
            as_get.params.emplace(k, as_text(v));
          }
        }
        a = impl_->handle("GET", api, as_get, path_space);
      }
    } else {
      a = impl_->handle(method, api, req, path_space);
    }
    send(res, a);
  };
  const char* pattern =
      R"(/k/(guest/\d+/)?v1/(records|record|record/comment|record/comments|records/cursor)\.json)";
  s.Get(pattern, handler);
  s.Post(pattern, handler);
  s.Put(pattern, handler);
  s.Delete(pattern, handler);
  s.Get("/oauth2/authorization", [this, send](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(impl_->mutex);
    impl_->log_request(req);
    send(res, impl_->authorize(req));
  });
  s.Post("/oauth2/token", [this, send](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(impl_->mutex);
    impl_->log_request(req);
    send(res, impl_->issue_token(req));
  });
  if (port == 0)
    impl_->port = s.bind_to_any_port("127.0.0.1");
  else
    impl_->port = s.bind_to_port("127.0.0.1", port) ? port : -1;
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  while (!impl_->server.is_running()) std::this_thread::yield();
}

FakeKintone::~FakeKintone() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int FakeKintone::port() const {
  return impl_->port;
}
std::string FakeKintone::base_url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

void FakeKintone::add_app(int app, std::string record_number_field) {
  std::lock_guard lock(impl_->mutex);
  impl_->apps[app].record_number_field = std::move(record_number_field);
}

void FakeKintone::add_app(int app, std::string record_number_field, int guest_space) {
  std::lock_guard lock(impl_->mutex);
  App& a = impl_->apps[app];
  a.record_number_field = std::move(record_number_field);
  a.guest_space = guest_space;
}

void FakeKintone::add_api_token(int app, std::string token) {
  std::lock_guard lock(impl_->mutex);
  impl_->apps[app].tokens.push_back(std::move(token));
}

void FakeKintone::add_user(std::string login, std::string password) {
  std::lock_guard lock(impl_->mutex);
  impl_->users[std::move(login)] = std::move(password);
}

std::string FakeKintone::insert_record(int app, const nlohmann::json& fields) {
  std::lock_guard lock(impl_->mutex);
  App& a = impl_->apps[app];
  return a.records[impl_->create(a, fields)].id;
}

void FakeKintone::insert_records(int app, const std::vector<nlohmann::json>& fields) {
  std::lock_guard lock(impl_->mutex);
  App& a = impl_->apps[app];
  a.records.reserve(a.records.size() + fields.size());
  for (const auto& f : fields) impl_->create(a, f);
}

std::size_t FakeKintone::record_count(int app) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->apps.find(app);
  return it == impl_->apps.end() ? 0 : it->second.records.size();
}

void FakeKintone::set_time(std::chrono::system_clock::time_point now) {
  std::lock_guard lock(impl_->mutex);
  if (now == std::chrono::system_clock::time_point{})
    impl_->fixed_time.reset();
  else
    impl_->fixed_time = now;
}

std::vector<nlohmann::json> FakeKintone::records(int app) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<nlohmann::json> out;
  auto it = impl_->apps.find(app);
  if (it == impl_->apps.end()) return out;
  for (const auto& r : it->second.records)
    out.push_back(nlohmann::json::parse(impl_->render(it->second, r, {}).dump()));
  return out;
}

std::vector<nlohmann::json> FakeKintone::comments(int app, const std::string& record_id) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<nlohmann::json> out;
  auto it = impl_->apps.find(app);
  if (it == impl_->apps.end()) return out;
  auto c = it->second.comments.find(record_id);
  if (c == it->second.comments.end()) return out;
  for (auto i = c->second.rbegin(); i != c->second.rend(); ++i)
    out.push_back({{"id", i->id},
                   {"text", i->text},
                   {"mentions", nlohmann::json::parse(i->mentions.dump())}});
  return out;
}

std::vector<KintoneRequestLog> FakeKintone::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->log;
}

void FakeKintone::fail_next(int count, int status, std::string body) {
  fail_next(count, status, std::move(body), {});
}

void FakeKintone::fail_next(int count, int status, std::string body,
                            std::multimap<std::string, std::string> headers) {
  std::lock_guard lock(impl_->mutex);
  impl_->fail_count = count;
  impl_->fail_status = status;
  impl_->fail_body = std::move(body);
  impl_->fail_headers = std::move(headers);
}

void FakeKintone::set_response_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(impl_->mutex);
  impl_->delay = delay;
}

void FakeKintone::add_oauth_client(std::string client_id, std::string client_secret,
                                   std::string redirect_uri) {
  std::lock_guard lock(impl_->mutex);
  impl_->oauth_clients[std::move(client_id)] = {std::move(client_secret), std::move(redirect_uri)};
}

void FakeKintone::set_access_token_lifetime(std::chrono::seconds lifetime) {
  std::lock_guard lock(impl_->mutex);
  impl_->token_lifetime = lifetime;
}

void FakeKintone::expire_access_tokens() {
  std::lock_guard lock(impl_->mutex);
  for (auto& [token, t] : impl_->access_tokens) t.revoked = true;
}

int FakeKintone::token_requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->token_request_count;
}

std::uint64_t FakeKintone::api_requests(int app) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->api_counts.find(app);
  return it == impl_->api_counts.end() ? 0 : it->second;
}

std::size_t FakeKintone::open_cursors() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cursors.size();
}

}  // namespace callbridge::testing
