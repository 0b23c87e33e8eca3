#include "fcvm/util/unique_fd.hpp"

#include <unistd.h>

namespace fcvm {

void UniqueFd::reset(int fd) {
  if (m_fd >= 0) ::close(m_fd);  // close(2) releases the fd even on EINTR on Linux: no retry
  m_fd = fd;
}

}  // namespace fcvm
