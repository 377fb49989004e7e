// The two parts of systemd's protocol callbridge speaks, without linking libsystemd: service
// state notifications (sd_notify(3)) and whether stderr is connected to the journal.
#pragma once

#include <string>
#include <string_view>

namespace callbridge::bridge {

// Sends `state` (e.g. "READY=1") as one datagram to $NOTIFY_SOCKET (a path, or an abstract
// socket when it starts with '@'). False when the variable is unset or the send fails; a bridge
// not started by systemd simply has no socket.
bool notify_service_manager(std::string_view state);

// True when stderr is the stream systemd connected to journald: $JOURNAL_STREAM names
// stderr's device and inode (systemd.exec(5)).
bool stderr_is_journal();

}  // namespace callbridge::bridge
