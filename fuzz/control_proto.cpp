// The monitor's control protocol as the monitor (requests) and its clients (replies, events)
// read it, and the event journal's lines: what decodes encodes to what decodes to the same type.
#include "fcvm/vm/control_proto.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "fcvm/vm/events.hpp"

namespace control = fcvm::vm::control;

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto r = control::decode_request(in)) {
    auto back = control::decode_request(control::encode(*r));
    require(back && control::type_name(*back) == control::type_name(*r));
  }
  if (auto m = control::decode_message(in)) {
    auto back = control::decode_message(control::encode(*m));
    require(back && control::type_name(*back) == control::type_name(*m));
  }
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    if (auto e = fcvm::vm::event_from_json(j)) {
      auto back = fcvm::vm::event_from_json(fcvm::vm::to_json(*e));
      require(back && back->type == e->type && back->vm_id == e->vm_id &&
              back->exit_code == e->exit_code && back->detail == e->detail);
    }
  }
  return 0;
}
