#pragma once
// Host side of Firecracker's hybrid vsock: the guest's AF_VSOCK ports are reached through one
// Unix socket (uds_path). A host-initiated connection connects there, writes "CONNECT <port>\n"
// and reads "OK <host_port>\n"; from then on the socket is a plain byte stream to the guest
// listener. When nothing listens on the port in the guest (yet), Firecracker closes the connection
// instead of answering, so vsock_connect retries until its deadline.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vmm::firecracker {

struct VsockConnectOptions {
  // Bound on one attempt's wait for the "OK" line once connected.
  std::chrono::milliseconds handshake_timeout{2000};
  // Pause between attempts (grows to max_backoff).
  std::chrono::milliseconds initial_backoff{20};
  std::chrono::milliseconds max_backoff{250};
  // Asked before every retry; an error ends the wait at once (e.g. the VMM exited).
  std::function<Result<>()> still_alive{};
};

// Connects to guest port `port` through uds_path, retrying while the socket is missing, refuses,
// or Firecracker hangs up (guest not listening), until timeout passes. The returned descriptor is
// positioned right after the "OK <n>\n" line: the next byte is the guest's. A reply other than
// "OK <number>" is a kProtocol error at once; running out of time is kTimeout naming the last
// reason.
Result<UniqueFd> vsock_connect(const std::string& uds_path, uint32_t port,
                               std::chrono::milliseconds timeout, VsockConnectOptions options = {});

}  // namespace fcvm::vmm::firecracker
