#pragma once
// What the HTTP API's requests ask for, decoded from their JSON bodies and query values into the
// engine's requests (vm/validate.hpp), which then apply the CLI's rules. Every bad value is one
// kInvalidInput error naming the field and the value. No HTTP here: the decoders are unit-tested
// and fuzzed on their own.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/validate.hpp"

namespace fcvm::api {

// POST /v1/vms: run -d with the CLI's options (docs/api.yaml lists the fields).
struct CreateVm {
  vm::RunRequest request;
  bool rm = false;  // removed when it ends
};
Result<CreateVm> parse_create_vm(std::string_view body);

// POST /v1/snapshots/{name}/clone.
struct CloneVm {
  vm::CloneRequest request;
  bool rm = false;
};
Result<CloneVm> parse_clone_vm(std::string_view body);

// POST /v1/vms/{id}/exec.
struct ExecBody {
  vm::ExecRequest request;  // interactive: stdin comes from .../exec/{eid}/stdin
  std::optional<vm::WindowSize> size{};
};
Result<ExecBody> parse_exec(std::string_view body);

// {"signal": "TERM"}: a name is_signal_name accepts (default `fallback`).
Result<std::string> parse_signal(std::string_view body, const std::string& fallback);
// {"rows": R, "cols": C}, each 1..65535.
Result<vm::WindowSize> parse_resize(std::string_view body);
// {"name": NAME} (a valid snapshot name).
Result<std::string> parse_snapshot_create(std::string_view body);
// {"seconds": N}: 0 clears the time-to-live.
Result<int64_t> parse_ttl(std::string_view body);

// Query values: "1"/"true"/"0"/"false" (empty: `fallback`), integers within bounds.
Result<bool> query_bool(const std::string& name, const std::string& value, bool fallback);
Result<int64_t> query_int(const std::string& name, const std::string& value, int64_t min,
                          int64_t max);

// --listen: unix:PATH, an absolute PATH, or HOST:PORT (IPv4, [IPv6] or localhost; port 0: any
// free one). A TCP address that is not loopback is refused unless allow_remote.
struct ListenAddress {
  bool tcp = false;
  std::string path{};  // unix
  std::string host{};  // tcp
  int port = 0;
};
Result<ListenAddress> parse_listen(const std::string& text, bool allow_remote);

}  // namespace fcvm::api
