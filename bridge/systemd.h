// systemd's service state notifications (sd_notify(3)), without linking libsystemd. Whether
// stderr is connected to the journal is the logger's concern (log/log.h).
#pragma once

#include <string>
#include <string_view>

namespace callbridge::bridge {

// Sends `state` (e.g. "READY=1") as one datagram to $NOTIFY_SOCKET (a path, or an abstract
// socket when it starts with '@'). False when the variable is unset or the send fails; a bridge
// not started by systemd simply has no socket.
bool notify_service_manager(std::string_view state);

}  // namespace callbridge::bridge
