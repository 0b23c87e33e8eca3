#include "fcvm/vmm/qemu/qmp_client.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vmm::qemu {

using nlohmann::json;

Result<QmpClient> QmpClient::connect(const std::string& socket_path,
                                     std::chrono::milliseconds timeout) {
  auto fd = unix_connect(socket_path, timeout);
  if (!fd) return tl::unexpected<Error>(std::move(fd.error()).wrap("connect QMP"));
  QmpClient client;
  client.m_fd = std::move(*fd);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto greeting = client.read_message(deadline);
  if (!greeting) return tl::unexpected<Error>(std::move(greeting.error()).wrap("QMP greeting"));
  if (!greeting->contains("QMP")) {
    return fail(ErrorCode::kProtocol, fmt::format("unexpected QMP greeting: {}", greeting->dump()));
  }
  auto caps = client.execute("qmp_capabilities");
  if (!caps) return tl::unexpected<Error>(caps.error());
  return client;
}

Result<json> QmpClient::read_message(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto nl = m_buffer.find('\n');
    if (nl != std::string::npos) {
      auto line = m_buffer.substr(0, nl);
      m_buffer.erase(0, nl + 1);
      auto j = json::parse(line, nullptr, false);
      if (j.is_discarded())
        return fail(ErrorCode::kProtocol, fmt::format("bad QMP line: {}", line));
      return j;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return fail(ErrorCode::kTimeout, "QMP did not answer in time");
    auto ready = wait_readable(m_fd.get(), left);
    if (!ready) return tl::unexpected<Error>(ready.error());
    if (!*ready) continue;
    char buf[4096];
    ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read QMP");
    if (n == 0) return fail(ErrorCode::kProtocol, "QMP connection closed");
    m_buffer.append(buf, static_cast<size_t>(n));
  }
}

Result<json> QmpClient::execute(const std::string& command, const json& arguments,
                                std::chrono::milliseconds timeout) {
  json req = {{"execute", command}};
  if (!arguments.is_null()) req["arguments"] = arguments;
  FCVM_TRY_CTX(write_all(m_fd.get(), req.dump() + "\n"), fmt::format("QMP {}", command));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto msg = read_message(deadline);
    if (!msg)
      return tl::unexpected<Error>(std::move(msg.error()).wrap(fmt::format("QMP {}", command)));
    if (msg->contains("event")) {
      m_events.push_back((*msg)["event"].get<std::string>());
      continue;
    }
    if (msg->contains("error")) {
      return fail(ErrorCode::kSystem,
                  fmt::format("QMP {}: {}", command, (*msg)["error"].value("desc", msg->dump())));
    }
    if (msg->contains("return")) return (*msg)["return"];
  }
}

}  // namespace fcvm::vmm::qemu
