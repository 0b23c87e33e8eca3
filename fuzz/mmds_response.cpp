// What the guest agent reads from MMDS before it trusts anything else of the host's: HTTP/1.1
// answers (the token, then the plan) and the plan's JSON.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "agent/logic/mmds.hpp"
#include "fcvm/agent_proto/messages.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)fcvm::agent::mmds_response_complete(text);
  auto body = fcvm::agent::mmds_response_body(text);
  if (body) {
    auto json = nlohmann::json::parse(*body, nullptr, false);
    if (!json.is_discarded()) (void)fcvm::agent_proto::plan_from_json(json);
  }
  (void)fcvm::agent::mmds_from_cmdline(text);
  return 0;
}
