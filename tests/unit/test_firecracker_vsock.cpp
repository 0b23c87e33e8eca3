// The hybrid vsock handshake against a scripted Unix socket server.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vmm/firecracker/vsock.hpp"
#include "support/firecracker_test_util.hpp"

namespace fcvm::vmm::firecracker {
namespace {

using std::chrono::milliseconds;

std::string read_line(int fd) {
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

// Serves `connections` connections: the first `hang_ups` are closed after reading the CONNECT
// line (the guest is not listening yet), the rest get `reply`.
class ScriptedServer {
 public:
  ScriptedServer(const std::string& path, int hang_ups, std::string reply, int connections = 1)
      : m_listener(*unix_listen(path)) {
    m_thread = std::thread([this, hang_ups, reply = std::move(reply), connections] {
      for (int i = 0; i < connections; ++i) {
        UniqueFd conn(::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) return;
        m_requests.push_back(read_line(conn.get()));
        ++m_accepted;
        if (i < hang_ups) continue;
        (void)write_all(conn.get(), reply);
        char c = 0;
        (void)::read(conn.get(), &c, 1);  // hold the connection until the client is done
      }
    });
  }
  ~ScriptedServer() {
    ::shutdown(m_listener.get(), SHUT_RDWR);
    m_thread.join();
  }
  int accepted() const { return m_accepted; }
  const std::vector<std::string>& requests() const { return m_requests; }

 private:
  UniqueFd m_listener;
  std::atomic<int> m_accepted{0};
  std::vector<std::string> m_requests;
  std::thread m_thread;
};

TEST(FirecrackerVsock, HandshakeLeavesTheGuestBytesUnread) {
  testing::TempDir dir;
  auto path = dir.file("v.sock");
  ScriptedServer server(path, 0, "OK 1073741824\nHELLO");
  // Declared after the server: closed first, which lets the server thread finish.
  auto r = vsock_connect(path, 1024, milliseconds(2000));
  ASSERT_TRUE(r) << r.error().to_string();
  char buf[5] = {};
  ASSERT_TRUE(read_exact(r->get(), buf, sizeof buf));
  EXPECT_EQ(std::string(buf, 5), "HELLO");
  EXPECT_EQ(server.requests().at(0), "CONNECT 1024");
}

TEST(FirecrackerVsock, RetriesWhileTheGuestDoesNotListen) {
  testing::TempDir dir;
  auto path = dir.file("v.sock");
  ScriptedServer server(path, 3, "OK 7\n", 4);
  auto r = vsock_connect(path, 52, milliseconds(5000));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(server.accepted(), 4);
}

TEST(FirecrackerVsock, WaitsForTheSocketToAppear) {
  testing::TempDir dir;
  auto path = dir.file("v.sock");
  std::unique_ptr<ScriptedServer> server;
  std::thread later([&] {
    std::this_thread::sleep_for(milliseconds(200));
    server = std::make_unique<ScriptedServer>(path, 0, "OK 1\n");
  });
  auto r = vsock_connect(path, 1024, milliseconds(5000));
  later.join();
  EXPECT_TRUE(r) << r.error().to_string();
}

TEST(FirecrackerVsock, AnUnexpectedAnswerIsAProtocolError) {
  testing::TempDir dir;
  auto path = dir.file("v.sock");
  ScriptedServer server(path, 0, "NOPE\n");
  auto start = std::chrono::steady_clock::now();
  auto r = vsock_connect(path, 1024, milliseconds(5000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kProtocol);
  EXPECT_NE(r.error().message().find("unexpected answer to CONNECT 1024: \"NOPE\""),
            std::string::npos)
      << r.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

TEST(FirecrackerVsock, GivesUpAtTheDeadlineNamingTheLastReason) {
  testing::TempDir dir;
  auto path = dir.file("v.sock");
  ScriptedServer server(path, 1000, "", 1000);
  auto r = vsock_connect(path, 1024, milliseconds(300));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kTimeout);
  EXPECT_NE(r.error().message().find("guest did not accept within 300 ms"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("guest not listening yet"), std::string::npos)
      << r.error().message();
}

TEST(FirecrackerVsock, StopsWhenTheVmmIsGone) {
  testing::TempDir dir;
  VsockConnectOptions options;
  options.still_alive = []() -> Result<> { return fail(ErrorCode::kSystem, "firecracker exited"); };
  auto start = std::chrono::steady_clock::now();
  auto r = vsock_connect(dir.file("absent.sock"), 1024, milliseconds(5000), options);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("firecracker exited"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
}

}  // namespace
}  // namespace fcvm::vmm::firecracker
