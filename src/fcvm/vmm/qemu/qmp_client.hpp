#pragma once
// A minimal QMP client: one connection, synchronous commands, asynchronous events skipped (and
// remembered by name for callers that wait for one).
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vmm::qemu {

class QmpClient {
 public:
  // Connects (retrying until timeout), reads the greeting and negotiates capabilities.
  static Result<QmpClient> connect(const std::string& socket_path,
                                   std::chrono::milliseconds timeout);
  // Runs a command; the "return" member on success, the QMP error description otherwise.
  Result<nlohmann::json> execute(const std::string& command,
                                 const nlohmann::json& arguments = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  const std::vector<std::string>& events_seen() const { return m_events; }

 private:
  Result<nlohmann::json> read_message(std::chrono::steady_clock::time_point deadline);
  UniqueFd m_fd;
  std::string m_buffer;
  std::vector<std::string> m_events;
};

}  // namespace fcvm::vmm::qemu
