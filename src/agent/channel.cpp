#include "agent/channel.hpp"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/console.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {
namespace {

constexpr const char* k_virtio_ports = "/sys/class/virtio-ports";

Result<UniqueFd> open_serial(const std::string& name) {
  auto dev = find_serial_port(name);
  if (!dev) return tl::unexpected<Error>(dev.error());
  // O_NONBLOCK: writes fail with EAGAIN instead of sleeping while no host is connected.
  UniqueFd fd(::open(dev->c_str(), O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", *dev));
  return fd;
}

Result<UniqueFd> listen_vsock(uint32_t port) {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("socket AF_VSOCK");
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_port = port;
  addr.svm_cid = VMADDR_CID_ANY;
  // sockaddr_vm is the concrete address type behind the generic sockaddr the API takes.
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return fail_errno(fmt::format("bind vsock port {}", port));
  }
  if (::listen(fd.get(), 4) != 0) return fail_errno(fmt::format("listen vsock port {}", port));
  return fd;
}

Result<UniqueFd> connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return fail(ErrorCode::kInvalidInput, fmt::format("socket path too long: {}", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("socket AF_UNIX");
  // A Unix stream connect completes at once or fails (no EINPROGRESS for a listening peer with
  // room in its backlog); see listen_vsock for the cast.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return fail_errno(fmt::format("connect {}", path));
  }
  return fd;
}

}  // namespace

// /dev/vportNpM of the virtio-serial port with this name. There is no udev in the guest, so the
// /dev/virtio-ports/NAME symlink does not exist; devtmpfs creates the vportNpM node itself.
Result<std::string> find_serial_port(const std::string& name) {
  std::error_code ec;
  std::filesystem::directory_iterator it(k_virtio_ports, ec), end;
  if (ec) return fail_errno(fmt::format("list {}", k_virtio_ports), ec.value());
  for (; it != end; it.increment(ec)) {
    auto port_name = read_file(it->path().string() + "/name");
    if (port_name && trim(*port_name) == name) {
      return "/dev/" + it->path().filename().string();
    }
  }
  return fail(ErrorCode::kNotFound, fmt::format("no virtio-serial port named {}", name));
}

void Channel::try_open() {
  int64_t now = uptime_ms();
  if (now < m_next_attempt_ms) return;
  Result<UniqueFd> opened;
  switch (m_spec.transport) {
    case Transport::kSerial:
      if (m_fd) return;
      opened = open_serial(m_spec.name);
      break;
    case Transport::kVsock:
      if (m_listen_fd) return;
      opened = listen_vsock(m_spec.port);
      break;
    case Transport::kUnix:
      if (m_fd) return;
      opened = connect_unix(m_spec.path);
      break;
  }
  if (!opened) {
    // Log the first failure and then every 50th: the device may simply not be there yet.
    if (m_failures++ % 50 == 0) {
      sayf("channel {}: {} (retrying)", describe(m_spec), opened.error().to_string());
    }
    m_next_attempt_ms = now + std::min(100 + 100 * m_failures, 1000);
    return;
  }
  m_failures = 0;
  switch (m_spec.transport) {
    case Transport::kSerial:
      m_fd = std::move(*opened);
      sayf("channel {}: port open, waiting for the host", describe(m_spec));
      break;
    case Transport::kVsock:
      m_listen_fd = std::move(*opened);
      sayf("channel {}: listening", describe(m_spec));
      break;
    case Transport::kUnix:
      m_fd = std::move(*opened);
      became_connected();
      break;
  }
}

void Channel::tick() {
  try_open();
  if (m_spec.transport == Transport::kSerial && m_fd && !m_connected) {
    pollfd p{m_fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP) == 0) became_connected();
  }
}

int Channel::wait_hint_ms() const {
  bool opening = m_spec.transport == Transport::kVsock ? !m_listen_fd : !m_fd;
  if (opening) {
    return static_cast<int>(std::max<int64_t>(0, m_next_attempt_ms - uptime_ms()));
  }
  if (m_spec.transport == Transport::kSerial && !m_connected) return k_tick_ms;
  return -1;
}

void Channel::add_to(PollSet& set) {
  if (m_listen_fd) set.add(m_listen_fd.get(), POLLIN, [this](short) { on_accept(); });
  if (m_fd && m_connected) {
    short events = POLLIN;
    if (!m_outbox.empty() && !m_awaiting_first) events |= POLLOUT;
    // The channel outlives every iteration: capturing this is safe here.
    set.add(m_fd.get(), events, [this](short revents) { on_ready(revents); });
  }
}

void Channel::on_ready(short revents) {
  if (revents & (POLLIN | POLLHUP | POLLERR)) read_input();
  if (m_connected && (revents & POLLOUT)) flush();
}

void Channel::on_accept() {
  UniqueFd conn(::accept4(m_listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!conn) {
    if (errno != EAGAIN && errno != EINTR) sayf("channel: accept: {}", std::strerror(errno));
    return;
  }
  if (m_fd) lost_host("replaced by a new connection", true);
  m_fd = std::move(conn);
  became_connected();
}

void Channel::read_input() {
  char buf[65536];
  while (m_fd && m_connected) {
    ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n == 0) {
      // Serial: the host closed its side of the chardev; the port stays open for the next one.
      lost_host("host disconnected", m_spec.transport != Transport::kSerial);
      return;
    }
    if (n < 0) {
      lost_host(fmt::format("read: {}", std::strerror(errno)), true);
      return;
    }
    m_decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
    for (;;) {
      auto frame = m_decoder.next();
      if (!frame) {
        // A corrupt stream cannot be resynchronised: drop the connection (a socket), or the
        // buffered bytes (serial, where the host must reconnect to start clean).
        sayf("channel: {}", frame.error().to_string());
        lost_host("protocol error", m_spec.transport != Transport::kSerial);
        return;
      }
      if (!*frame) break;
      m_events.push_back({ChannelEvent::Type::kFrame, std::move(**frame)});
    }
  }
}

void Channel::flush() {
  bool is_socket = m_spec.transport != Transport::kSerial;
  while (m_fd && m_connected && !m_awaiting_first && !m_outbox.empty()) {
    const std::string& head = m_outbox.front();
    const char* p = head.data() + m_head_written;
    size_t len = head.size() - m_head_written;
    ssize_t n = is_socket ? ::send(m_fd.get(), p, len, MSG_NOSIGNAL) : ::write(m_fd.get(), p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) {
      // Serial ports only fail like this when the device went away: reopen it.
      lost_host(fmt::format("write: {}", std::strerror(errno)), true);
      return;
    }
    m_head_written += static_cast<size_t>(n);
    if (m_head_written == head.size()) {
      m_queued_bytes -= head.size();
      m_outbox.pop_front();
      m_head_written = 0;
    }
  }
}

void Channel::send(agent_proto::Kind kind, uint32_t stream, std::string_view payload) {
  auto frame = agent_proto::encode(kind, stream, payload);
  m_queued_bytes += frame.size();
  m_outbox.push_back(std::move(frame));
}

void Channel::send_control_first(std::string_view json) {
  auto frame = agent_proto::encode(agent_proto::Kind::kControl, 0, json);
  m_queued_bytes += frame.size();
  auto pos = m_outbox.begin();
  if (m_head_written > 0) ++pos;  // never split a frame that is on its way
  m_outbox.insert(pos, std::move(frame));
  m_awaiting_first = false;
}

void Channel::became_connected() {
  m_connected = true;
  m_decoder = agent_proto::Decoder{};
  m_head_written = 0;  // the new host gets the interrupted frame again, whole
  m_awaiting_first = true;
  sayf("channel {}: host connected", describe(m_spec));
  m_events.push_back({ChannelEvent::Type::kConnected, {}});
}

void Channel::lost_host(std::string_view reason, bool close_fd) {
  bool was_connected = m_connected;
  m_connected = false;
  m_awaiting_first = false;
  m_head_written = 0;
  m_decoder = agent_proto::Decoder{};
  if (close_fd) {
    m_fd.reset();
    m_next_attempt_ms = uptime_ms() + k_tick_ms;
  }
  if (was_connected) {
    sayf("channel {}: {}", describe(m_spec), reason);
    m_events.push_back({ChannelEvent::Type::kDisconnected, {}});
  }
}

std::vector<ChannelEvent> Channel::take_events() { return std::exchange(m_events, {}); }

}  // namespace fcvm::agent
