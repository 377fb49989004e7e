// The YAML rule loader with every connector registered: any text gives a configuration or
// located errors, never a crash or an exception.
#include "bridge/connectors.h"
#include "fuzz/fuzz_input.h"
#include "rules/config.h"

using namespace callbridge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name.empty() || name[0] == 'U') return std::nullopt;  // undefined: an error
    if (name.find("SECRET") != std::string_view::npos)
      return std::string("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    return std::string("value-of-") + std::string(name);
  };
  auto result = rules::load_config_text(text, "fuzz.yaml", env, bridge::connector_registry());
  fuzz::check(result.config.has_value() != !result.errors.empty(),
              "a configuration, or errors, never both");
  for (const auto& e : result.errors) {
    fuzz::check(!e.message.empty(), "an error says what is wrong");
    (void)e.format();
  }
  return 0;
}
