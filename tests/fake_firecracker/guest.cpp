#include "fake_firecracker/guest.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fake_fc {

namespace proto = fcvm::agent_proto;

namespace {

// Reads "CONNECT <port>\n" byte by byte (bounded); nullopt on anything else.
std::optional<uint32_t> read_connect(int fd) {
  std::string line;
  while (line.size() < 64) {
    auto readable = fcvm::wait_readable(fd, std::chrono::milliseconds(5000));
    if (!readable || !*readable) return std::nullopt;
    char c = 0;
    if (::read(fd, &c, 1) != 1) return std::nullopt;
    if (c == '\n') break;
    line.push_back(c);
  }
  if (line.rfind("CONNECT ", 0) != 0) return std::nullopt;
  auto port = fcvm::parse_int(fcvm::trim(line.substr(8)), 0, UINT32_MAX);
  if (!port) return std::nullopt;
  return static_cast<uint32_t>(*port);
}

bool send_control(int fd, const std::string& payload) {
  return static_cast<bool>(
      proto::write_frame(fd, proto::Kind::kControl, proto::k_main_stream, payload));
}

// Reads frames until a control message of `type`; nullopt when the stream ends first.
std::optional<nlohmann::json> wait_control(int fd, const std::string& type) {
  for (;;) {
    auto frame = proto::read_frame(fd);
    if (!frame) return std::nullopt;
    if (frame->kind != proto::Kind::kControl) continue;
    auto msg = proto::parse_control(frame->payload);
    if (msg && (*msg)["type"] == type) return *msg;
  }
}

}  // namespace

FakeGuest::FakeGuest() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) == 0) {
    m_poweroff_read.reset(p[0]);
    m_poweroff_write.reset(p[1]);
  }
}

FakeGuest::~FakeGuest() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_cv.notify_all();
  // Unblocks accept/read in the thread.
  if (m_listener) ::shutdown(m_listener.get(), SHUT_RDWR);
  if (m_thread.joinable()) m_thread.join();
}

void FakeGuest::start(fcvm::UniqueFd listener, GuestOptions options, bool paused) {
  m_listener = std::move(listener);
  m_options = options;
  m_paused = paused;
  m_boot_time = std::chrono::steady_clock::now();
  m_thread = std::thread([this] { run(); });
}

void FakeGuest::set_paused(bool paused) {
  {
    std::lock_guard lock(m_mutex);
    m_paused = paused;
  }
  m_cv.notify_all();
}

bool FakeGuest::wait_running() {
  std::unique_lock lock(m_mutex);
  m_cv.wait(lock, [this] { return !m_paused || m_stopping; });
  return !m_stopping;
}

bool FakeGuest::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(m_mutex);
  return !m_cv.wait_for(lock, d, [this] { return m_stopping; });
}

int64_t FakeGuest::uptime_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               m_boot_time)
      .count();
}

void FakeGuest::run() {
  for (;;) {
    {
      std::lock_guard lock(m_mutex);
      if (m_stopping) return;
    }
    pollfd p{m_listener.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    fcvm::UniqueFd conn(::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    auto port = read_connect(conn.get());
    if (!wait_running()) return;
    // Like Firecracker: no listener on that port in the guest -> the connection is closed.
    bool listening = uptime_ms() >= m_options.boot_delay.count();
    if (!port || *port != m_options.agent_port || !listening) continue;
    static uint32_t next_host_port = 1073741824;
    if (!fcvm::write_all(conn.get(), fmt::format("OK {}\n", next_host_port++))) continue;
    if (session(conn.get())) {
      conn.reset();
      char b = 1;
      ssize_t ignored = ::write(m_poweroff_write.get(), &b, 1);
      (void)ignored;
      return;
    }
  }
}

bool FakeGuest::session(int fd) {
  if (!wait_running()) return false;
  proto::Hello hello{proto::k_protocol_version, "fake-firecracker guest", uptime_ms()};
  if (!send_control(fd, proto::encode_hello(hello))) return false;
  auto plan_msg = wait_control(fd, proto::k_plan);
  if (!plan_msg) return false;
  auto plan = proto::plan_from_json(plan_msg->value("plan", nlohmann::json::object()));
  if (!plan) {
    send_control(fd, proto::encode_error({"plan", plan.error().message()}));
    return false;
  }
  if (m_options.start_delay.count() > 0 && !sleep_for(m_options.start_delay)) return false;
  for (const char* name : {"network_ready", "image_ready", "container_started"}) {
    if (!wait_running()) return false;
    if (!send_control(fd, proto::encode_event({name, uptime_ms(), ""}))) return false;
  }
  if (!wait_running() || !send_control(fd, proto::encode_ready())) return false;
  auto out = fmt::format("fake guest: running {}\nfake guest: env {}\n", plan->image.ref,
                         fcvm::join(plan->env, " "));
  if (!proto::write_frame(fd, proto::Kind::kStdout, proto::k_main_stream, out)) return false;
  int code = m_options.exit_code;
  if (m_options.run_until_stop) {
    if (!wait_control(fd, proto::k_stop)) return false;
    code = 143;
  }
  if (!wait_running()) return false;
  return static_cast<bool>(proto::write_frame(fd, proto::Kind::kControl, proto::k_main_stream,
                                              proto::encode_exit({proto::k_main_stream, code})));
}

}  // namespace fake_fc
