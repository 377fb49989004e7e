// What the kintone connector adds to raw `request:` rules that call kintone's REST API: the
// `kintone-token` and `kintone-password` credentials, the escaping of placeholders that land in
// a kintone query, and the POST + X-HTTP-Method-Override form of a GET with a body.
#pragma once

#include <string_view>

#include "rules/registry.h"

namespace callbridge::kintone {

// A kintone REST path: /k/v1/... or /k/guest/SPACE/v1/... (the host may be templated).
bool is_rest_path(std::string_view url);

// Escapes query placeholders at load (with a note each) and sends a GET with a body as POST +
// X-HTTP-Method-Override: GET, which kintone documents for HTTP stacks that drop GET bodies.
class RestRequestInspector final : public rules::RequestInspector {
 public:
  bool inspect(rules::RequestSpec& spec, const YAML::Node& request,
               rules::ConfigReader& reader) const override;
  void adapt(http::Request& request, http::Request& shown) const override;
};

// `auth: {type: kintone-token, token | tokens}`: X-Cybozu-API-Token.
void load_token_auth(rules::AuthReader& auth);
// `auth: {type: kintone-password, login, password}`: X-Cybozu-Authorization.
void load_password_auth(rules::AuthReader& auth);

}  // namespace callbridge::kintone
