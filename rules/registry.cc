#include "rules/registry.h"

#include <nlohmann/json.hpp>

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

void HttpResponse::error(int error_status, std::string_view code, std::string_view message) {
  nlohmann::ordered_json j;
  j["error"]["code"] = code;
  j["error"]["message"] = message;
  status = error_status;
  content_type = "application/json";
  body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace callbridge::rules
