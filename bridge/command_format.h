// Renders a request as a command a person can paste, like Pigeon's command generator.
#pragma once

#include <string>
#include <string_view>

#include "http/http_client.h"

namespace callbridge {

enum class CommandFormat { curl, powershell, json };

std::string render_command(const http::Request& request, CommandFormat format);

}  // namespace callbridge
