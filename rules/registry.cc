#include "rules/registry.h"

#include <nlohmann/json.hpp>

#include "log/log.h"
#include "rules/config_reader.h"

namespace callbridge::rules {

void Registry::add_section(std::string key, SectionLoader loader) {
  sections_.push_back({std::move(key), std::move(loader)});
}

void Registry::add_action(std::string key, ActionLoader loader) {
  actions_.push_back({std::move(key), std::move(loader)});
}

void Registry::add_service(std::string name, ServiceFactory factory) {
  services_.push_back({std::move(name), std::move(factory)});
}

void Registry::add_request_inspector(std::shared_ptr<const RequestInspector> inspector) {
  inspectors_.push_back(std::move(inspector));
}

void Registry::add_auth_kind(std::string type, AuthKind kind) {
  auth_kinds_.push_back({std::move(type), std::move(kind)});
}

void Registry::add_command(Command command) {
  commands_.push_back(std::move(command));
}

void Registry::add_history_view(HistoryView view) {
  history_views_.push_back(std::move(view));
}

void Registry::add_description(std::string path, std::string text) {
  descriptions_[std::move(path)] = std::move(text);
}

AuthReader::AuthReader(const YAML::Node& node, std::string type, ConfigReader& reader,
                       RequestSpec& out)
    : node_(node), type_(std::move(type)), reader_(reader), out_(out) {}

void AuthReader::check_keys(std::vector<std::string> keys) {
  keys.insert(keys.begin(), "type");
  reader_.check_keys(node_, keys, "request.auth");
}

std::optional<std::string> AuthReader::secret(const char* key) {
  auto n = node_[key];
  if (!n) {
    reader_.error(node_,
                  "\"request.auth\" of type " + type_ + " is missing required key \"" + key + "\"");
    return std::nullopt;
  }
  auto v = reader_.string_setting(n, std::string("request.auth.") + key);
  if (v) reader_.secrets().add(*v);
  return v;
}

void AuthReader::add_header(std::string name, std::string value) {
  out_.headers.push_back({std::move(name), Template::literal(std::move(value), true), true});
}

const Registry::NamedAction* Registry::action(std::string_view key) const {
  for (const auto& a : actions_)
    if (a.key == key) return &a;
  return nullptr;
}

void Services::add(std::string name, std::shared_ptr<Service> service) {
  services_.emplace_back(std::move(name), std::move(service));
}

Service* Services::find(std::string_view name) const {
  for (const auto& [n, s] : services_)
    if (n == name) return s.get();
  return nullptr;
}

std::string HttpRequest::header(std::string_view lower_name) const {
  auto it = headers.find(std::string(lower_name));
  return it == headers.end() ? std::string() : it->second;
}

std::string HttpRequest::param(std::string_view name) const {
  auto it = params.find(std::string(name));
  return it == params.end() ? std::string() : it->second;
}

bool HttpRequest::has_param(std::string_view name) const {
  return params.count(std::string(name)) > 0;
}

void HttpResponse::error(int error_status, ErrorCode code, std::string_view message) {
  status = error_status;
  content_type = "application/json";
  body = error_body(code, message);
}

void SubmitRejection::set(int rejection_status, ErrorCode rejection_code, std::string text) {
  status = rejection_status;
  code = std::string(to_string(rejection_code));
  message = std::move(text);
}

ErrorCode SubmitRejection::error_code() const {
  return error_code_named(code).value_or(ErrorCode::journal_unavailable);
}

void Host::add_route(std::shared_ptr<Service> service, Route route) {
  route.handler = [service = std::move(service), inner = std::move(route.handler),
                   pattern = route.pattern](const HttpRequest& request, HttpResponse& response) {
    try {
      inner(request, response);
    } catch (const std::exception& e) {
      log::write(log::Level::error, "route failed", {{"route", pattern}, {"error", e.what()}});
      response = {};
      response.error(500, ErrorCode::internal, "internal error");
    }
  };
  routes.push_back(std::move(route));
}

}  // namespace callbridge::rules
