// Event intake as POST/GET /v1/events read it: a JSON body, or form fields and query parameters
// parsed by the HTTP server; an accepted event is stored as JSON text and must read back the same
// when the journal is replayed.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "bridge/event_input.h"
#include "bridge/server.h"
#include "fuzz/fuzz_input.h"

using namespace callbridge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  unsigned char sel = fuzz::selector(data, size);
  std::string body(reinterpret_cast<const char*>(data), size);
  if (!body.empty()) body.erase(0, 1);

  nlohmann::json json;
  if (sel % 2 == 0) {
    json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_discarded()) return 0;
  } else {
    httplib::Params params;
    httplib::detail::parse_query_text(body, params);
    std::string error;
    json = bridge::event_from_params(params, error);
    if (json.is_null()) {
      fuzz::check(!error.empty(), "rejected parameters say why");
      return 0;
    }
  }
  std::string error;
  auto event = event_from_json(json, error);
  if (!event) {
    fuzz::check(!error.empty(), "a rejected event says why");
    return 0;
  }
  fuzz::check(!event->call_id.empty() && event->call_id.size() <= 128, "call ID of 1 to 128");

  // What the journal stores reads back as the same event (recovery and `simulate` replay it).
  std::string stored = event_to_json_text(*event);
  auto again = event_from_json(nlohmann::json::parse(stored, nullptr, false), error);
  fuzz::check(again.has_value(), "the stored event reads back");
  fuzz::check(again->event == event->event && again->call_id == event->call_id &&
                  again->tel == event->tel && again->answered == event->answered &&
                  again->vars == event->vars,
              "the stored event reads back unchanged");
  return 0;
}
