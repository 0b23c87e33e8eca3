// The guest agent's first input: the kernel command line it takes its channel from
// (fcvm.agent=vsock:PORT | serial:DEV ...).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/logic/cmdline.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)fcvm::agent::channel_from_cmdline(text);
  (void)fcvm::agent::parse_channel_spec(text);
  return 0;
}
