// The values a user types, as vm:: validates them for every front end: --publish, --env,
// --map, --map-size, --wait-ready, names, image references, registries, --vmm,
// --network and --restart. The first byte picks the parser. Whatever is accepted prints back to a
// form that is accepted again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "fcvm/net/publish.hpp"
#include "fcvm/readiness/gate.hpp"
#include "fcvm/storage/image_ref.hpp"
#include "fcvm/storage/volume.hpp"
#include "fcvm/vm/options.hpp"

using namespace fcvm;

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}
std::optional<std::string> lookup(const std::string& name) {
  if (name.size() % 2 == 0) return std::nullopt;
  return "v-" + name;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 12) {
    case 0:
      if (auto p = net::parse_publish(text))
        require(net::parse_publish(p->to_string()).has_value());
      break;
    case 1:
      if (auto e = vm::normalize_env(text, lookup)) {
        auto again = vm::normalize_env(*e, lookup);
        require(e->find('=') != std::string::npos && again && *again == *e);
      }
      break;
    case 2:
      if (auto m = storage::parse_volume_map(text)) {
        require(storage::parse_volume_map(m->to_string()).has_value());
      }
      break;
    case 3:
      if (auto s = storage::parse_size_mib(text)) require(*s > 0);
      break;
    case 4:
      (void)readiness::parse_gate(text);
      break;
    case 5:
      (void)readiness::parse_http_url(text);
      break;
    case 6:
      (void)vm::validate_name(text);
      break;
    case 7:
      if (auto r = storage::parse_image_ref(text)) {
        require(storage::parse_image_ref(r->original).has_value());
      }
      break;
    case 8:
      (void)vm::validate_registry(text);  // (snapshot names are VM names)
      break;
    case 9:
      if (auto c = vm::parse_vmm_choice(text)) require(vm::vmm_choice_name(*c) == text);
      break;
    case 10:
      if (auto n = vm::parse_network_mode(text)) require(vm::to_string(*n) == text);
      break;
    case 11:
      if (auto p = vm::parse_restart_policy(text)) {
        auto again = vm::parse_restart_policy(vm::to_string(*p));
        require(again && *again == *p);
      }
      break;
  }
  return 0;
}
