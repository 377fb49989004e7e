// commubo's inbound payload, as the callback route reads it: any body gives an event or a reason.
#include <nlohmann/json.hpp>

#include "connectors/commubo/service.h"
#include "fuzz/fuzz_input.h"

using namespace callbridge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto event = commubo::commubo_event_from_text(body, error);
  if (!event) {
    fuzz::check(!error.empty(), "a rejected payload says why");
    return 0;
  }
  fuzz::check(event->event == commubo::kCommuboEvent, "the event is commubo.inbound");
  fuzz::check(!event->call_id.empty(), "an accepted payload has a call ID");
  for (const auto& [name, value] : event->vars) {
    fuzz::check(name.rfind("COMMUBO_", 0) == 0, "every variable is COMMUBO_*");
    (void)value;
  }
  // Keys of any shape become variable names.
  (void)commubo::upper_snake(body);
  (void)commubo::upper_snake(body, body.substr(0, body.size() / 2));
  return 0;
}
