#pragma once
// SignalFd: blocks a set of signals for the calling thread and delivers them through a signalfd
// (non-blocking, close-on-exec) for the object's life; the old mask is restored when it is
// destroyed. Children started by ChildProcess begin with an empty mask, so they still get these
// signals normally.
#include <signal.h>

#include <initializer_list>
#include <optional>

#include "fcvm/util/unique_fd.hpp"

namespace fcvm {

class SignalFd {
 public:
  explicit SignalFd(std::initializer_list<int> signals);
  ~SignalFd();
  SignalFd(const SignalFd&) = delete;
  SignalFd& operator=(const SignalFd&) = delete;

  int fd() const { return m_fd.get(); }
  bool valid() const { return static_cast<bool>(m_fd); }
  // The next pending signal's number, or nullopt when none is pending.
  std::optional<int> take();

 private:
  sigset_t m_old{};
  UniqueFd m_fd;
};

}  // namespace fcvm
