#pragma once
// PollSet: the fds the agent's loop waits on in one iteration, each with its handler. The loop
// rebuilds it every iteration from what exists then. Handlers capture ids and look their object
// up when they run, never raw pointers: an earlier handler of the same iteration may have
// destroyed the object that a later fd belonged to.
#include <poll.h>

#include <cerrno>
#include <functional>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::agent {

class PollSet {
 public:
  using Handler = std::function<void(short revents)>;

  void add(int fd, short events, Handler handler) {
    m_fds.push_back(pollfd{fd, events, 0});
    m_handlers.push_back(std::move(handler));
  }

  // Waits up to timeout_ms (-1: forever) and runs the handlers of the ready fds in the order they
  // were added. EINTR counts as a timeout.
  Result<> wait_and_dispatch(int timeout_ms) {
    int r = ::poll(m_fds.data(), m_fds.size(), timeout_ms);
    if (r < 0) {
      if (errno == EINTR) return {};
      return fail_errno("poll");
    }
    for (size_t i = 0; i < m_fds.size() && r > 0; ++i) {
      if (m_fds[i].revents != 0) {
        --r;
        m_handlers[i](m_fds[i].revents);
      }
    }
    return {};
  }

 private:
  std::vector<pollfd> m_fds;
  std::vector<Handler> m_handlers;
};

}  // namespace fcvm::agent
