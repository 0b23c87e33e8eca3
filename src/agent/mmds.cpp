// The plan from Firecracker's MMDS (logic/mmds.hpp): a link-local address on eth0 for the
// exchange, two HTTP requests, and the address removed again before the plan's network stage.
#include "agent/logic/mmds.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::agent {
namespace {
using Clock = std::chrono::steady_clock;
constexpr auto k_mmds_budget = std::chrono::seconds(5);
constexpr const char* k_link_local = "169.254.169.1/16";

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// One request on its own connection, read until the answer is complete.
Result<std::string> exchange(const std::string& request, Clock::time_point deadline) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(k_mmds_port);
  ::inet_pton(AF_INET, k_mmds_address, &addr.sin_addr);
  // sockaddr_in is the concrete type behind the generic sockaddr the API takes.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    return fail_errno("connect to MMDS");
  }
  pollfd p{fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, ms_left(deadline)) <= 0) return fail(ErrorCode::kTimeout, "MMDS: no answer");
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return fail_errno("connect to MMDS", err);
  FCVM_TRY(write_all(fd.get(), request));
  std::string response;
  char buf[4096];
  for (;;) {
    p = {fd.get(), POLLIN, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0) {
      return fail(ErrorCode::kTimeout, "MMDS: the answer did not end in time");
    }
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return fail_errno("read from MMDS");
    if (n == 0) break;
    response.append(buf, static_cast<size_t>(n));
    if (response.size() > (1u << 20)) return fail(ErrorCode::kProtocol, "MMDS: answer too large");
    if (mmds_response_complete(response)) break;
  }
  return mmds_response_body(response);
}

Result<std::string> fetch_plan(Clock::time_point deadline) {
  // The first packets may go out before the link is fully up: try again until the deadline.
  for (;;) {
    auto token = exchange(mmds_token_request(), deadline);
    if (token) {
      return exchange(mmds_get_request(k_mmds_plan_path, trim(*token)), deadline);
    }
    if (ms_left(deadline) < 200) return tl::unexpected<Error>(token.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}
}  // namespace

Result<agent_proto::Plan> Agent::read_mmds_plan() {
  auto deadline = Clock::now() + k_mmds_budget;
  constexpr auto k_ip_timeout = std::chrono::seconds(5);
  FCVM_TRY(run_checked({"ip", "link", "set", "eth0", "up"}, k_ip_timeout));
  FCVM_TRY(run_checked({"ip", "addr", "add", k_link_local, "dev", "eth0"}, k_ip_timeout));
  auto body = fetch_plan(deadline);
  if (auto r = run_checked({"ip", "addr", "del", k_link_local, "dev", "eth0"}, k_ip_timeout); !r) {
    sayf("{}", r.error().to_string());
  }
  if (!body) return tl::unexpected<Error>(body.error());
  auto json = nlohmann::json::parse(*body, nullptr, false);
  if (json.is_discarded()) return fail(ErrorCode::kProtocol, "MMDS: the plan is not JSON");
  return agent_proto::plan_from_json(json);
}

}  // namespace fcvm::agent
