// The HTTP API's decoders (api/requests.hpp): request bodies and query values from any client.
// The first byte picks the decoder. What is accepted is consistent: a create has an image, an
// exec a command, a window size is in range, a listen address is loopback unless allowed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fcvm/api/requests.hpp"

using namespace fcvm;

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 10) {
    case 0:
      if (auto c = api::parse_create_vm(text)) {
        require(!c->request.image_and_command.empty() && !c->request.image_and_command[0].empty());
        require(c->request.detach);
      }
      break;
    case 1:
      (void)api::parse_clone_vm(text);
      break;
    case 2:
      if (auto e = api::parse_exec(text)) {
        require(!e->request.argv.empty());
        require(!e->size || (e->size->rows > 0 && e->size->cols > 0));
      }
      break;
    case 3:
      if (auto s = api::parse_signal(text, "TERM")) require(!s->empty());
      break;
    case 4:
      if (auto w = api::parse_resize(text)) require(w->rows > 0 && w->cols > 0);
      break;
    case 5:
      if (auto n = api::parse_snapshot_create(text)) require(!n->empty() && n->size() <= 63);
      break;
    case 6:
      if (auto t = api::parse_ttl(text)) require(*t >= 0);
      break;
    case 7:
      if (auto a = api::parse_listen(text, false); a && a->tcp) {
        require(a->host.rfind("127.", 0) == 0 || a->host == "::1" ||
                a->host.find(':') != std::string::npos);
      }
      (void)api::parse_listen(text, true);
      break;
    case 8:
      (void)api::query_bool("q", text, false);
      break;
    default:
      if (auto n = api::query_int("q", text, -5, 5)) require(*n >= -5 && *n <= 5);
      break;
  }
  return 0;
}
