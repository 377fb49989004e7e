#include "connectors/kintone/rest_request.h"

#include <yaml-cpp/yaml.h>

#include "rules/config_reader.h"

namespace callbridge::kintone {

namespace {

// kintone reads a GET's parameters from a JSON body, as the RemoTEL examples do, but many HTTP
// stacks drop GET bodies; kintone documents POST + X-HTTP-Method-Override: GET for exactly this.
bool is_api_url(std::string_view url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  std::size_t path = url.find('/', scheme + 3);
  if (path == std::string_view::npos) return false;
  std::string_view p = url.substr(path);
  return p.rfind("/k/v1/", 0) == 0 || p.rfind("/k/guest/", 0) == 0;
}

// Placeholders in a kintone query are escaped for its query language; each gets a note.
void protect_query(rules::ConfigReader& reader, const YAML::Node& node, rules::Template& t) {
  for (const auto& p : t.protect_kintone_query())
    reader.note(node, "{" + p.name + "} is escaped for kintone's query language", p.offset);
}

}  // namespace

bool is_rest_path(std::string_view url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  std::size_t slash = url.find('/', scheme + 3);
  if (slash == std::string_view::npos) return false;
  std::string_view path = url.substr(slash, url.find_first_of("?#", slash) - slash);
  if (path.rfind("/k/v1/", 0) == 0) return true;
  if (path.rfind("/k/guest/", 0) != 0) return false;
  std::size_t space_end = path.find('/', 9);
  return space_end != std::string_view::npos && space_end > 9 &&
         path.substr(space_end).rfind("/v1/", 0) == 0;
}

bool RestRequestInspector::inspect(rules::RequestSpec& spec, const YAML::Node& request,
                                   rules::ConfigReader& reader) const {
  if (spec.pseudo_response) return false;
  if (is_rest_path(spec.url.probe())) {
    if (auto url = request["url"]) protect_query(reader, url, spec.url);
    if (auto body = request["body"]) protect_query(reader, body, spec.body);
  }
  // The URL may be wholly templated: whether it is kintone's is known only when it is rendered.
  return true;
}

void RestRequestInspector::adapt(http::Request& request, http::Request& shown) const {
  if (request.method != "GET" || request.body.empty() || !is_api_url(request.url)) return;
  request.method = shown.method = "POST";
  request.headers.emplace_back("X-HTTP-Method-Override", "GET");
  shown.headers.emplace_back("X-HTTP-Method-Override", "GET");
}

void load_token_auth(rules::AuthReader& auth) {
  auth.check_keys({"token", "tokens"});
  rules::ConfigReader& reader = auth.reader();
  std::vector<std::string> tokens;
  if (auto n = auth.node()["tokens"]; n && n.IsSequence()) {
    reader.record(n, rules::ValueKind::list);
    for (const auto& t : n)
      if (auto v = reader.string_setting(t, "request.auth.tokens")) {
        reader.secrets().add(*v);
        tokens.push_back(*v);
      }
  } else if (auto v = auth.secret("token")) {
    tokens.push_back(*v);
  }
  std::string joined;
  for (const auto& t : tokens) joined += (joined.empty() ? "" : ",") + t;
  if (!tokens.empty()) auth.add_header("X-Cybozu-API-Token", joined);
}

void load_password_auth(rules::AuthReader& auth) {
  auth.check_keys({"login", "password"});
  auto login = auth.secret("login");
  auto password = auth.secret("password");
  if (login && password)
    auth.add_header("X-Cybozu-Authorization", rules::base64_encode(*login + ":" + *password));
}

}  // namespace callbridge::kintone
