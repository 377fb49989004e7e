// Where a request buffered by the connection gate ends, decided before it is parsed: the
// headers, then a Content-Length or chunked body, each checked against its limit as it arrives,
// and framing two parsers could read differently refused.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace callbridge::bridge {

// How far a buffered request has arrived.
struct Framing {
  enum class State { incomplete, complete, rejected };
  State state = State::incomplete;
  std::size_t length = 0;  // the whole request's bytes, when complete
  int status = 0;          // when rejected
  std::string code, message;
  // Where the name of an `Expect: 100-continue` header starts, when the headers are in and the
  // body is still to come (the client waits for "100 Continue" before sending it).
  std::size_t expect_continue_at = std::string_view::npos;
};

// Frames the request at the start of `buffer` (headers, then a Content-Length or chunked
// body). Rejects before buffering more than the limits allow: a body over `max_body`, headers
// over `max_header`, conflicting Content-Length headers, Content-Length with
// Transfer-Encoding, a malformed chunk.
Framing frame_request(std::string_view buffer, std::size_t max_body, std::size_t max_header);

// The standard reason phrase of `status` (SIP's 4xx too: 486 Busy Here), by class if unknown.
std::string_view reason_phrase(int status);

}  // namespace callbridge::bridge
