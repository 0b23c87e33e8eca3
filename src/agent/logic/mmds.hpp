#pragma once
// The run plan from Firecracker's MMDS (version 2), which fcvm fills with {"fcvm": {"plan": ...}}
// before the guest boots and announces with fcvm.mmds=1 on the kernel command line. Two HTTP/1.1
// exchanges with 169.254.169.254:80 over the guest's eth0:
//   PUT /latest/api/token   X-metadata-token-ttl-seconds: 60        -> the session token
//   GET /fcvm/plan          X-metadata-token: T, Accept: application/json -> the plan
// Each request goes on its own connection; its answer is complete once its Content-Length body has
// arrived (Firecracker's MMDS keeps the connection open despite "Connection: close"). These
// functions are the protocol alone (no I/O), so they are unit-tested and fuzzed.
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::agent {

inline constexpr const char* k_mmds_address = "169.254.169.254";
inline constexpr int k_mmds_port = 80;
inline constexpr const char* k_mmds_plan_path = "/fcvm/plan";

// fcvm.mmds=1 in a kernel command line (the last fcvm.mmds= wins).
bool mmds_from_cmdline(std::string_view cmdline);

std::string mmds_token_request();
std::string mmds_get_request(std::string_view path, std::string_view token);

// The body of a complete answer (status line, headers, Content-Length body). kProtocol for a
// malformed or truncated answer, kNotFound for 404, kSystem naming any other non-2xx status.
Result<std::string> mmds_response_body(std::string_view response);
// True once `received` holds the whole answer: its headers and as many body bytes as its
// Content-Length says (an answer without one ends when the server closes the connection).
bool mmds_response_complete(std::string_view received);

}  // namespace fcvm::agent
