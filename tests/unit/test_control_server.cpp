#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/control_server.hpp"

using namespace fcvm;
using namespace fcvm::vm;
namespace proto = agent_proto;
using namespace std::chrono_literals;

namespace {
class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fcvm-ctl.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    auto s = ControlServer::listen(m_dir + "/control.sock");
    ASSERT_TRUE(s) << s.error().to_string();
    m_server.emplace(std::move(*s));
  }
  void TearDown() override { std::filesystem::remove_all(m_dir); }
  // One round of the monitor's loop.
  void round(int timeout_ms = 50) {
    std::vector<pollfd> fds;
    m_server->poll_fds(fds);
    ::poll(fds.data(), fds.size(), timeout_ms);
    m_server->on_poll(fds, [this](ControlConnection& c, const proto::Frame& f) {
      m_frames.push_back({c.id, f.payload});
    });
  }
  UniqueFd connect() {
    auto fd = unix_connect(m_dir + "/control.sock", 1s);
    EXPECT_TRUE(fd);
    return std::move(*fd);
  }
  ControlConnection& client(size_t n) {
    for (int i = 0; i < 50 && m_server->clients().size() < n; ++i) round();
    EXPECT_GE(m_server->clients().size(), n);
    return *std::next(m_server->clients().begin(), static_cast<long>(n - 1));
  }
  std::string m_dir;
  std::optional<ControlServer> m_server;
  std::vector<std::pair<uint64_t, std::string>> m_frames;
};
}  // namespace

TEST_F(ControlServerTest, ClientFramesArriveThroughTheHandler) {
  auto fd = connect();
  ASSERT_TRUE(proto::write_frame(fd.get(), proto::Kind::kControl, 0, "{\"type\":\"attach\"}"));
  auto& c = client(1);
  for (int i = 0; i < 50 && m_frames.empty(); ++i) round();
  ASSERT_EQ(m_frames.size(), 1u);
  EXPECT_EQ(m_frames[0].first, c.id);
  EXPECT_EQ(m_frames[0].second, "{\"type\":\"attach\"}");
}

TEST_F(ControlServerTest, AClientThatNeverReadsNeverBlocksAndLosesOnlyOutput) {
  auto stalled_fd = connect();  // never reads
  auto reader_fd = connect();
  auto& stalled = client(1);
  auto& reader = client(2);
  std::string chunk(64 * 1024, 'x');
  auto start = std::chrono::steady_clock::now();
  size_t sent = 0;
  for (int i = 0; i < 400; ++i) {  // 25 MiB of output, far past any socket buffer
    m_server->send(stalled, proto::Kind::kStdout, 0, chunk);
    sent += chunk.size();
  }
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 2s) << "sending to a client that does not read must not block";
  EXPECT_FALSE(stalled.closed) << "an attached client only loses output";
  EXPECT_LE(stalled.queued_bytes,
            ControlServer::k_max_queued_bytes + ControlServer::k_control_reserve);
  EXPECT_GT(stalled.dropped_total, sent / 2);
  // The other client is served meanwhile.
  m_server->send(reader, proto::Kind::kControl, 0, "{\"type\":\"ok\"}");
  auto frame = proto::read_frame(reader_fd.get());
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->payload, "{\"type\":\"ok\"}");
  // Control messages still reach the stalled client once it reads; it is told what it missed.
  m_server->send(stalled, proto::Kind::kControl, 0, "{\"type\":\"exit\",\"code\":0}");
  size_t got = 0;
  bool notice = false, exit_seen = false;
  proto::Decoder d;
  char buf[65536];
  while (!exit_seen) {
    round(10);
    ssize_t n = ::recv(stalled_fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) d.feed(std::string_view(buf, static_cast<size_t>(n)));
    for (;;) {
      auto f = d.next();
      ASSERT_TRUE(f);
      if (!*f) break;
      if ((*f)->kind == proto::Kind::kStdout) got += (*f)->payload.size();
      if ((*f)->kind == proto::Kind::kStderr) notice = true;
      if ((*f)->kind == proto::Kind::kControl) exit_seen = true;
    }
  }
  EXPECT_EQ(got + stalled.dropped_total, sent) << "every byte is either delivered or counted";
  (void)notice;  // a notice comes only with later output
}

TEST_F(ControlServerTest, AnExecClientThatStopsReadingIsDisconnected) {
  auto fd = connect();
  auto& c = client(1);
  c.drop_output = false;
  std::string chunk(64 * 1024, 'y');
  for (int i = 0; i < 200 && !c.closed; ++i) m_server->send(c, proto::Kind::kStdout, 1, chunk);
  EXPECT_TRUE(c.closed);
  int gone = 0;
  m_server->reap([&](ControlConnection&) { ++gone; });
  EXPECT_EQ(gone, 1);
  EXPECT_TRUE(m_server->clients().empty());
}

TEST_F(ControlServerTest, GarbageFromAClientClosesOnlyThatClient) {
  auto bad = connect();
  auto good = connect();
  auto& b = client(1);
  auto& g = client(2);
  const char junk[] = "\xff\xff\xff\xff\x01garbage";
  ASSERT_GT(::write(bad.get(), junk, sizeof junk - 1), 0);
  for (int i = 0; i < 50 && !b.closed; ++i) round();
  EXPECT_TRUE(b.closed);
  EXPECT_FALSE(g.closed);
}

// A client that sends a frame and closes at once (`fcvm run -it` detaching) while the monitor
// writes output to it: the failed write must not lose the frame it sent first.
TEST_F(ControlServerTest, AFrameSentJustBeforeTheClientClosedIsStillRead) {
  auto fd = connect();
  auto& c = client(1);
  ASSERT_TRUE(proto::write_frame(fd.get(), proto::Kind::kControl, 0, "{\"type\":\"detach\"}"));
  fd.reset();
  // The monitor has output for it before it reads: the write fails (the peer is gone).
  for (int i = 0; i < 4; ++i) m_server->send(c, proto::Kind::kStdout, 0, "shell output\n");
  EXPECT_TRUE(c.write_closed);
  int gone = 0;
  bool detach_before_gone = false;
  for (int i = 0; i < 50 && gone == 0; ++i) {
    m_server->reap([&](ControlConnection&) {
      ++gone;
      detach_before_gone = m_frames.size() == 1;
    });
    round(10);
  }
  EXPECT_EQ(gone, 1) << "the client is removed once its end of file is read";
  EXPECT_TRUE(detach_before_gone) << "its detach is handled before it counts as gone";
  ASSERT_EQ(m_frames.size(), 1u);
  EXPECT_EQ(m_frames[0].second, "{\"type\":\"detach\"}");
}
