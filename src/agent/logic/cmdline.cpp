#include "agent/logic/cmdline.hpp"

#include <fmt/format.h>

#include <optional>

#include "fcvm/util/strings.hpp"

namespace fcvm::agent {

Result<ChannelSpec> parse_channel_spec(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("bad agent channel '{}': expected serial:NAME, vsock:PORT or unix:PATH", text));
  }
  auto kind = text.substr(0, colon);
  auto value = text.substr(colon + 1);
  if (value.empty()) {
    return fail(ErrorCode::kInvalidInput, fmt::format("bad agent channel '{}': empty {}", text,
                                                      kind == "vsock" ? "port" : "name"));
  }
  ChannelSpec spec;
  if (kind == "serial") {
    if (value.find('/') != std::string_view::npos) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("bad agent channel '{}': a port name has no '/'", text));
    }
    spec.transport = Transport::kSerial;
    spec.name = std::string(value);
  } else if (kind == "vsock") {
    auto port = parse_int(value, 1, UINT32_MAX - 1);
    if (!port) {
      return fail(
          ErrorCode::kInvalidInput,
          fmt::format("bad agent channel '{}': vsock port must be 1..{}", text, UINT32_MAX - 1));
    }
    spec.transport = Transport::kVsock;
    spec.port = static_cast<uint32_t>(*port);
  } else if (kind == "unix") {
    spec.transport = Transport::kUnix;
    spec.path = std::string(value);
  } else {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("bad agent channel '{}': unknown transport '{}'", text, kind));
  }
  return spec;
}

Result<ChannelSpec> channel_from_cmdline(std::string_view cmdline) {
  constexpr std::string_view key = "fcvm.agent=";
  std::optional<std::string_view> found;
  // The kernel splits parameters on spaces (and newlines in /proc/cmdline's trailing one);
  // fcvm's values never contain quotes or spaces.
  for (auto word : split(trim(cmdline), ' ')) {
    word = trim(word);
    if (word.substr(0, key.size()) == key) found = word.substr(key.size());
  }
  if (!found) return ChannelSpec{};
  return parse_channel_spec(*found);
}

std::string describe(const ChannelSpec& spec) {
  switch (spec.transport) {
    case Transport::kSerial:
      return fmt::format("serial:{}", spec.name);
    case Transport::kVsock:
      return fmt::format("vsock:{}", spec.port);
    case Transport::kUnix:
      return fmt::format("unix:{}", spec.path);
  }
  return "?";
}

}  // namespace fcvm::agent
