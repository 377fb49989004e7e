// commubo's inbound payload, as the callback route reads it: any body gives an event or a reason.
#include <nlohmann/json.hpp>

#include "connectors/webhook/commubo.h"
#include "fuzz/fuzz_input.h"

using namespace callbridge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto event = webhook::commubo_event_from_text(body, error);
  if (!event) {
    fuzz::check(!error.empty(), "a rejected payload says why");
    return 0;
  }
  fuzz::check(event->event == webhook::kCommuboEvent, "the event is commubo.inbound");
  fuzz::check(!event->call_id.empty(), "an accepted payload has a call ID");
  for (const auto& [name, value] : event->vars) {
    fuzz::check(name.rfind("COMMUBO_", 0) == 0, "every variable is COMMUBO_*");
    (void)value;
  }
  // Keys of any shape become variable names.
  (void)webhook::upper_snake(body);
  (void)webhook::upper_snake(body, body.substr(0, body.size() / 2));
  return 0;
}
