#include "fcvm/vm/control_server.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "fcvm/util/log.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vm {

namespace proto = agent_proto;

Result<ControlServer> ControlServer::listen(const std::string& path) {
  FCVM_TRY_ASSIGN(auto fd, unix_listen(path, 64));
  // Non-blocking: on_poll accepts until the backlog is empty.
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return fail_errno(fmt::format("make {} non-blocking", path));
  }
  ControlServer s;
  s.m_listen = std::move(fd);
  return s;
}

void ControlServer::poll_fds(std::vector<pollfd>& fds) {
  m_first_fd = fds.size();
  fds.push_back({m_listen.get(), POLLIN, 0});
  m_polled = 0;
  for (auto& c : m_clients) {
    short events = c.closed ? 0 : POLLIN;
    if (!c.closed && !c.queue.empty()) events |= POLLOUT;
    fds.push_back({c.closed ? -1 : c.fd.get(), events, 0});
    ++m_polled;
  }
}

void ControlServer::on_poll(const std::vector<pollfd>& fds, const FrameHandler& on_frame) {
  // Clients first (the list may grow below; new ones were not polled).
  size_t i = m_first_fd + 1;
  size_t n = 0;
  for (auto& c : m_clients) {
    if (n++ >= m_polled || i >= fds.size()) break;
    auto revents = fds[i++].revents;
    if (c.closed || revents == 0) continue;
    if (revents & POLLOUT) flush_some(c);
    if (revents & (POLLIN | POLLHUP | POLLERR)) read_some(c, on_frame);
  }
  if (m_first_fd < fds.size() && (fds[m_first_fd].revents & POLLIN)) {
    for (;;) {
      // Non-blocking: a client that stops reading must never block a write of ours.
      UniqueFd conn(::accept4(m_listen.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!conn) break;
      ControlConnection c;
      c.id = m_next_id++;
      c.fd = std::move(conn);
      m_clients.push_back(std::move(c));
    }
  }
}

void ControlServer::send(ControlConnection& c, proto::Kind kind, uint32_t stream,
                         std::string_view payload) {
  if (c.closed || c.write_closed) return;
  bool output = kind == proto::Kind::kStdout || kind == proto::Kind::kStderr;
  if (output && c.queued_bytes + payload.size() > k_max_queued_bytes) {
    if (!c.drop_output) {
      FCVM_LOG(kWarn, "control", "client {} does not read its output: disconnecting it", c.id);
      c.closed = true;
      return;
    }
    if (c.dropped_total == 0) {
      FCVM_LOG(kInfo, "control", "client {} does not read: its output is dropped past {} bytes",
               c.id, k_max_queued_bytes);
    }
    c.dropped_bytes += payload.size();
    c.dropped_total += payload.size();
    return;
  }
  if (!output && c.queued_bytes + payload.size() > k_max_queued_bytes + k_control_reserve) {
    FCVM_LOG(kWarn, "control", "client {} does not read: disconnecting it", c.id);
    c.closed = true;
    return;
  }
  if (output && c.dropped_bytes > 0) {
    // The client reads again: tell it what it missed before what comes next.
    auto notice = fmt::format(
        "fcvm: {} bytes of output were dropped while this client did not read; `fcvm logs` "
        "has all of it\n",
        c.dropped_bytes);
    c.dropped_bytes = 0;
    auto frame = proto::encode(proto::Kind::kStderr, stream, notice);
    c.queued_bytes += frame.size();
    c.queue.push_back(std::move(frame));
  }
  auto frame = proto::encode(kind, stream, payload);
  c.queued_bytes += frame.size();
  c.queue.push_back(std::move(frame));
  flush_some(c);
}

void ControlServer::flush_some(ControlConnection& c) {
  while (!c.closed && !c.queue.empty()) {
    const auto& head = c.queue.front();
    ssize_t n = ::send(c.fd.get(), head.data() + c.head_written, head.size() - c.head_written,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;  // the socket is full: the rest waits for POLLOUT
      c.write_closed = true;
      c.queue.clear();
      c.queued_bytes = c.head_written = 0;
      return;
    }
    c.head_written += static_cast<size_t>(n);
    if (c.head_written == head.size()) {
      c.queued_bytes -= head.size();
      c.queue.pop_front();
      c.head_written = 0;
    }
  }
}

void ControlServer::read_some(ControlConnection& c, const FrameHandler& on_frame) {
  char buf[65536];
  ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    c.closed = true;
    return;
  }
  c.decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
  for (;;) {
    auto frame = c.decoder.next();
    if (!frame || !*frame) {
      if (!frame) c.closed = true;  // not our framing: nothing more it says can be trusted
      return;
    }
    on_frame(c, **frame);
    if (c.closed) return;
  }
}

void ControlServer::reap(const std::function<void(ControlConnection&)>& on_gone) {
  for (auto it = m_clients.begin(); it != m_clients.end();) {
    if (!it->closed) {
      ++it;
      continue;
    }
    on_gone(*it);
    it = m_clients.erase(it);
  }
}

void ControlServer::flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<pollfd> fds;
    for (auto& c : m_clients) {
      if (!c.closed && !c.queue.empty()) fds.push_back({c.fd.get(), POLLOUT, 0});
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (fds.empty() || left.count() <= 0) return;
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) <= 0) return;
    for (auto& c : m_clients) flush_some(c);
  }
}

}  // namespace fcvm::vm
