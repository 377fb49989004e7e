#include "rules/input.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace callbridge::rules {

namespace {

std::string media_type(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto first = type.find_first_not_of(" \t");
  auto last = type.find_last_not_of(" \t");
  return first == std::string::npos ? std::string() : type.substr(first, last - first + 1);
}

// Builds the document as nlohmann's own DOM parser does, refusing to nest deeper than the
// limit before anything deeper is allocated.
class BoundedBuilder {
 public:
  using json = nlohmann::json;
  explicit BoundedBuilder(int max_depth) : max_depth_(static_cast<std::size_t>(max_depth)) {}

  json root;
  std::string error;

  bool null() { return add(nullptr) != nullptr; }
  bool boolean(bool v) { return add(v) != nullptr; }
  bool number_integer(json::number_integer_t v) { return add(v) != nullptr; }
  bool number_unsigned(json::number_unsigned_t v) { return add(v) != nullptr; }
  bool number_float(json::number_float_t v, const json::string_t& text) {
    // An integer too long for 64 bits (an 80-digit call ID): its digits, not a rounded float.
    std::string_view digits = text;
    if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
    if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos)
      return add(text) != nullptr;
    return add(v) != nullptr;
  }
  bool string(json::string_t& v) { return add(std::move(v)) != nullptr; }
  bool binary(json::binary_t&) { return false; }
  bool start_object(std::size_t) { return open(json::object()); }
  bool key(json::string_t& k) {
    key_ = std::move(k);
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    if (error.empty()) error = "the body is not valid JSON (or not UTF-8)";
    return false;
  }

 private:
  bool open(json value) {
    if (stack_.size() >= max_depth_) {
      error =
          "the body nests deeper than server.max_json_depth (" + std::to_string(max_depth_) + ")";
      return false;
    }
    json* at = add(std::move(value));
    if (!at) return false;
    stack_.push_back(at);
    return true;
  }
  template <class V>
  json* add(V&& value) {
    if (stack_.empty()) {
      root = json(std::forward<V>(value));
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.emplace_back(std::forward<V>(value));
      return &top.back();
    }
    json& slot = top[key_];
    slot = json(std::forward<V>(value));
    return &slot;
  }

  std::size_t max_depth_;
  std::vector<json*> stack_;  // each points into its parent, which is not changed meanwhile
  std::string key_;
};

}  // namespace

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    unsigned char d = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d >= 0xA0) || (c == 0xF0 && d < 0x90) ||
        (c == 0xF4 && d >= 0x90))
      return false;
    i += n;
  }
  return true;
}

std::string check_call_id(std::string_view id, std::string_view field) {
  std::string what = "\"" + std::string(field) + "\"";
  if (id.empty() || id.size() > kMaxCallIdLength)
    return what + " must be 1 to " + std::to_string(kMaxCallIdLength) + " characters";
  for (unsigned char c : id)
    if (c < 0x20 || c == 0x7f) return what + " must not contain control characters";
  if (!valid_utf8(id)) return what + " must be valid UTF-8";
  return {};
}

std::optional<std::string> call_id_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return value.dump();
  return std::nullopt;
}

bool is_json_content_type(std::string_view content_type) {
  std::string type = media_type(content_type);
  if (type == "application/json") return true;
  // Structured syntax suffix (RFC 6839): application/cloudevents+json and the like.
  return type.rfind("application/", 0) == 0 && type.size() > 17 &&
         type.compare(type.size() - 5, 5, "+json") == 0;
}

bool is_form_content_type(std::string_view content_type) {
  return media_type(content_type) == "application/x-www-form-urlencoded";
}

nlohmann::json parse_json_body(std::string_view body, const InputLimits& limits,
                               std::string& error) {
  BoundedBuilder builder(limits.max_json_depth);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(body, &builder);
  } catch (const std::exception&) {
    ok = false;
  }
  if (!ok) {
    error = builder.error.empty() ? "the body is not valid JSON (or not UTF-8)" : builder.error;
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return std::move(builder.root);
}

}  // namespace callbridge::rules
