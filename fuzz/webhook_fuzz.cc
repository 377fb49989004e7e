// Webhook sources: a delivery (JSON, form or query; any headers) through a source's extraction
// and, for signed sources, the Standard Webhooks check, exactly as the route handles it.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "bridge/connectors.h"
#include "connectors/webhook/config.h"
#include "connectors/webhook/service.h"
#include "connectors/webhook/signature.h"
#include "fuzz/fuzz_input.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;

using callbridge::testing::MemoryStore;

namespace {

constexpr const char* kConfig = R"(
webhooks:
  - name: signed
    path: /v1/hooks/signed
    methods: [POST]
    accept: [json]
    auth:
      signature: { secret: "${WEBHOOK_SECRET}", tolerance_seconds: 300 }
    event:
      pointer: /type
      map: { call.ringing: inbound, call.answered: answered, call.ended: hangup }
    call_id: /data/call_id
    tel: /data/from
    answered: { pointer: /data/answered }
    vars:
      AGENT: /data/agent/name
      QUEUE: { pointer: /data/queue, default: main }
      HOOK: { header: webhook-id }
    dedup_window_seconds: 86400
  - name: form
    path: /v1/hooks/form
    methods: [POST]
    accept: [form, json]
    auth: none
    event:
      key: CallStatus
      map: { ringing: inbound, in-progress: answered, completed: hangup }
    call_id: { key: CallSid }
    tel: { key: From }
    answered: { key: CallStatus, pattern: "/^(in-progress|completed)$/" }
    vars:
      TO: { key: To }
      KIND: { const: twilio }
      DURATION: { key: CallDuration, default: "0" }
    delivery_id: [{ key: CallSid }, { key: CallStatus }]
    dedup_window_seconds: 3600
    reply: { status: 200, body: "<Response>{TO}</Response>", content_type: text/xml }
  - name: query
    path: /v1/hooks/query
    methods: [GET]
    accept: [query]
    auth: token
    event: { key: event, default: inbound }
    call_id: { key: id }
    tel: { key: tel }
    answered: { key: answered, pattern: "/^1$/" }
    reply: { status: 200, body: "OK {EVENT_ID} {ID}", content_type: "text/plain; charset=utf-8" }
)";

constexpr const char* kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

class CountingSink final : public rules::EventSink {
 public:
  std::optional<rules::SubmittedEvent> submit(const rules::EventInput& event,
                                              std::shared_ptr<rules::EventObserver>,
                                              rules::SubmitRejection&) override {
    fuzz::check(!event.call_id.empty(), "a submitted event has a call ID");
    return rules::SubmittedEvent{"ev-1", event.call_id};
  }
};

struct Fixture {
  std::shared_ptr<const webhook::WebhookSettings> settings;
  MemoryStore store;
  CountingSink sink;
  std::unique_ptr<webhook::WebhookService> service;

  Fixture() {
    auto env = [](std::string_view name) -> std::optional<std::string> {
      if (name == "WEBHOOK_SECRET") return std::string(kSecret);
      return std::nullopt;
    };
    auto loaded = rules::load_config_text(kConfig, "fuzz.yaml", env, bridge::connector_registry());
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.format().c_str());
    fuzz::check(loaded.config.has_value(), "the fuzz configuration loads");
    settings = std::dynamic_pointer_cast<const webhook::WebhookSettings>(
        loaded.config->sections.at("webhooks"));
    service = std::make_unique<webhook::WebhookService>(settings, store, sink, [] { return kNow; });
  }
};

// Headers written as "name: value" lines; names in lower case, as the server hands them over.
void add_headers(std::string_view text, rules::HttpRequest& request) {
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    request.headers.emplace(std::move(name), std::string(value));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  fixture.store.clear();
  unsigned char sel = fuzz::selector(data, size);
  auto in = fuzz::parts(data, size, 2);  // headers, body (query text for GET)
  const auto& source = fixture.settings->sources[sel % fixture.settings->sources.size()];

  rules::HttpRequest request;
  request.method = source.methods.front();
  request.path = source.path;
  add_headers(in[0], request);
  if (request.method == "GET") {
    httplib::detail::parse_query_text(in[1], request.params);
  } else {
    request.body = in[1];
    if (request.header("content-type").find("form") != std::string::npos)
      httplib::detail::parse_query_text(in[1], request.params);
  }
  if (source.auth == webhook::WebhookSource::Auth::signature && (sel & 0x80)) {
    // Signed correctly half of the time, so extraction behind the check is reached too.
    std::string id = request.header("webhook-id");
    std::string timestamp = std::to_string(1'700'000'000 - (sel & 0x3f));
    request.headers.erase("webhook-timestamp");
    request.headers.erase("webhook-signature");
    request.headers.emplace("webhook-timestamp", timestamp);
    request.headers.emplace("webhook-signature", webhook::sign_standard_webhook(
                                                     source.secret, id, timestamp, request.body));
  }
  rules::HttpResponse response;
  fixture.service->handle(source, request, response);
  fuzz::check(response.status >= 200 && response.status < 600, "an HTTP status");
  // A second, identical delivery is answered too (deduplicated or processed again).
  rules::HttpResponse again;
  fixture.service->handle(source, request, again);

  // The signature check on its own, with whatever the headers say.
  (void)webhook::verify_standard_webhook(
      source.secret.empty() ? kSecret : source.secret, request.header("webhook-id"),
      request.header("webhook-timestamp"), request.header("webhook-signature"), request.body, kNow,
      std::chrono::seconds(300));
  (void)webhook::decode_webhook_secret(in[1]);
  (void)webhook::base64_decode(in[1]);
  return 0;
}
